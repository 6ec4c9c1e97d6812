"""`multiflexi backup DIR` and `multiflexi restore BACKUP --yes` (services/backup/)."""

from __future__ import annotations

from pathlib import Path

import click

from multiflexi_web.cli.common import domain_errors, emit, format_option
from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import utcnow
from multiflexi_web.services import audit, settings
from multiflexi_web.services.backup import history
from multiflexi_web.services.backup.archive import (
    Plan,
    keep_newest,
    make_backup,
    plan_restore,
    restore_backup,
)
from multiflexi_web.services.backup.manifest import BackupError
from multiflexi_web.services.operations.pauses import PauseBusy


@click.command("backup")
@click.argument("parent", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    help="Then remove all but the KEEP newest complete backups under PARENT.",
)
@format_option
@domain_errors(BackupError)
def backup_command(parent: Path, keep: int | None, fmt: str) -> None:
    """Write a consistent backup (database snapshot and artifact files) into a new folder under
    PARENT, while the daemons run. The encryption keys are not in it: keep them apart."""
    folder, manifest = make_backup(db.engine.url, settings(), parent, utcnow())
    removed = keep_newest(parent, keep) if keep else []
    begin_write()
    summary = f"backup of {manifest.created_at} written to {folder}"
    audit.record(history.ACTION, history.ENTITY, None, summary, actor="cli")
    db.session.commit()
    data = {
        "folder": str(folder),
        "created_at": manifest.created_at,
        "database": manifest.database,
        "schema_revision": manifest.schema_revision,
        "jobs": manifest.jobs,
        "artifact_files": manifest.artifact_files,
        "artifact_bytes": manifest.artifact_bytes,
        "missing_files": manifest.missing_files,
        "removed": [str(p) for p in removed],
    }
    if fmt == "json":
        emit(data, fmt, [])
        return
    click.echo(f"backup written to {folder}")
    for old in removed:
        click.echo(f"  removed the older backup {old}")
    click.echo(
        f"  {manifest.database} snapshot of {manifest.created_at}: {manifest.jobs} jobs, "
        f"{manifest.artifact_files} artifact files ({manifest.artifact_bytes} bytes)"
    )
    for missing in manifest.missing_files:
        click.echo(f"  warning: not copied: {missing}", err=True)
    click.echo("  the credentials in it are encrypted: keep ENCRYPTION_MASTER_KEY apart from it")


@click.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace this installation's database and files.")
@click.option("--dry-run", is_flag=True, help="Only make every check and say what would happen.")
@format_option
@domain_errors(BackupError, PauseBusy)
def restore_command(folder: Path, yes: bool, dry_run: bool, fmt: str) -> None:
    """Replace the database and artifact files with a backup's, then pause the platform.

    The daemons must be stopped. A PostgreSQL backup goes into an empty database. Jobs that
    were running or due when the backup was taken may have run since: every job waits until
    `multiflexi resume --all`."""
    if dry_run:
        _show_plan(plan_restore(db.engine.url, settings(), folder), fmt)
        return
    if not yes:
        raise click.UsageError(
            "restore replaces this installation's database and artifact files: add --yes"
        )
    done = restore_backup(db.engine.url, settings(), folder, actor="cli")
    audit.record(
        "restore",
        "platform",
        None,
        f"restored from the backup of {done.manifest.created_at} ({folder})",
        actor="cli",
    )
    db.session.commit()
    data = {
        "restored_from": done.manifest.created_at,
        "jobs": done.manifest.jobs,
        "artifact_files": done.files,
        "migrated_from": done.migrated_from,
        "keys_fit": done.keys_fit,
        "jobs_running_in_backup": done.running,
        "jobs_due_since": done.due,
        "paused": "platform",
    }
    if fmt == "json":
        emit(data, fmt, [])
        return
    click.echo(f"restored the backup of {done.manifest.created_at}: {done.manifest.jobs} jobs, "
               f"{done.files} artifact files")  # fmt: skip
    if done.migrated_from:
        click.echo(f"  its schema ({done.migrated_from}) was migrated to this version's")
    if done.keys_fit is False:
        click.echo(
            "  warning: this installation's ENCRYPTION_MASTER_KEY does not decrypt the backup's "
            "credentials: set the key it was made with (or add it to ENCRYPTION_OLD_KEYS)",
            err=True,
        )
    if done.running or done.due:
        click.echo(
            f"  in the backup, {done.running} jobs were running (they may have finished since; "
            f"the executors will find them lost) and {done.due} are due since (they run at the "
            "resume): `multiflexi job list --status running` and `--status scheduled`"
        )
    click.echo("  the platform is paused: check the jobs, then `multiflexi resume --all`")


def _show_plan(plan: Plan, fmt: str) -> None:
    m = plan.manifest
    data = {
        "restores_from": m.created_at,
        "database": m.database,
        "schema_revision": m.schema_revision,
        "migrated": plan.behind,
        "jobs": m.jobs,
        "artifact_files": len(plan.files),
        "then": "platform paused",
    }
    if fmt == "json":
        emit(data, fmt, [])
        return
    click.echo(f"would restore the {m.database} backup of {m.created_at}: {m.jobs} jobs, "
               f"{len(plan.files)} artifact files")  # fmt: skip
    if plan.behind:
        click.echo(f"  its schema ({m.schema_revision}) would be migrated to this version's")
    click.echo("  then the platform would be paused; every check passed (nothing was changed)")


COMMANDS = [backup_command, restore_command]
