"""`multiflexi backup` and `multiflexi restore`, step by step.

A backup is a folder: the database snapshot, the artifact files it names with their index, and
manifest.json, written last. It is made under a `.partial` name and renamed when complete, so
a backup cut short (disk full, Ctrl-C) is never taken for one. Everything in it is private to
the platform's user. The encryption keys are never in it: the credentials in a backup are
ciphertext, and the key kept apart is what keeps a stolen backup's secrets unreadable.

A restore puts the database and the files back, migrates the database to this version's
schema, and then pauses the whole platform: jobs that were running or due when the backup was
taken may have run since, and running a bank import twice is worse than waiting for an
operator to look (`multiflexi resume --all`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import URL, Text, func, literal, select, update
from sqlalchemy.exc import SQLAlchemyError

from multiflexi_web import __version__
from multiflexi_web.config import PROJECT_ROOT, Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Artifact,
    CredentialValue,
    Job,
    JobStatus,
    PauseScope,
    Worker,
    utcnow,
)
from multiflexi_web.security.secrets import SecretError, cipher
from multiflexi_web.services.backup import files, snapshot
from multiflexi_web.services.backup.manifest import (
    PG_FILE,
    SQLITE_FILE,
    BackupError,
    Manifest,
    create_private,
    read,
)
from multiflexi_web.services.operations import pauses

MIGRATIONS = PROJECT_ROOT / "migrations"


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    files: int
    migrated_from: str | None  # the backup's schema revision, when it was older than ours
    keys_fit: bool | None  # whether this installation's keys read its secrets (None: none)
    running: int  # jobs running in the snapshot: they may have finished since (found lost)
    due: int  # jobs scheduled for before now in the snapshot: they run at the resume


def make_backup(url: URL, settings: Settings, parent: Path, now: datetime) -> tuple[Path, Manifest]:
    """A complete backup folder under `parent`, named by the moment."""
    database = snapshot.kind(url)
    for name, kept in (
        ("MULTIFLEXI_ARTIFACT_DIR", settings.artifact_dir),
        ("MULTIFLEXI_TMP", settings.tmp_dir),
    ):
        # Housekeeping removes files there that no row names: the backups with them.
        if parent.resolve().is_relative_to(Path(kept).resolve()):
            raise BackupError(f"{parent}: inside {name} ({kept}), whose unknown files are pruned")
    folder = parent / f"multiflexi-{now:%Y%m%dT%H%M%S}Z"
    partial = folder.with_name(folder.name + ".partial")
    if folder.exists() or partial.exists():
        raise BackupError(f"{folder}: already exists")
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial.mkdir(mode=0o700)
    try:
        target = partial / (SQLITE_FILE if database == "sqlite" else PG_FILE)
        snap = snapshot.take(url, create_private(target))
        copied = files.save(snap.files, Path(settings.artifact_dir), partial)
        manifest = Manifest(
            created_at=now.isoformat(),
            database=database,
            schema_revision=snap.revision,
            version=__version__,
            artifact_dir=settings.artifact_dir,  # as the rows' storage paths begin
            jobs=snap.jobs,
            artifact_files=copied.files,
            artifact_bytes=copied.bytes,
            missing_files=copied.missing,
        )
        manifest.write(partial)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder, manifest


def keep_newest(parent: Path, keep: int) -> list[Path]:
    """Remove all but the `keep` newest complete backups under `parent` (folders this command
    named and finished: a manifest inside); the removed ones. Anything else there is left."""
    if keep < 1:
        raise BackupError(f"--keep {keep}: keep at least the backup just made")
    done = sorted(
        (p for p in parent.glob("multiflexi-*Z") if p.is_dir() and (p / "manifest.json").is_file()),
        key=lambda p: p.name,  # the name is the UTC moment: names sort as times
    )
    gone = done[:-keep]
    for folder in gone:
        shutil.rmtree(folder)
    return gone


@dataclass(frozen=True)
class Plan:
    """What a restore would do, every check passed (`multiflexi restore --dry-run`)."""

    manifest: Manifest
    source: Path  # the database snapshot
    files: list[files.Restore]
    behind: bool  # the backup's schema is older: it is migrated after


def plan_restore(url: URL, settings: Settings, folder: Path) -> Plan:
    """Every check a restore makes before it changes anything; BackupError at the first that
    fails. Reads only."""
    manifest = read(folder)
    if snapshot.kind(url) != manifest.database:
        raise BackupError(
            f"{folder}: a backup of a {manifest.database} database; DATABASE_URL is "
            f"{url.get_backend_name()}"
        )
    source = folder / manifest.database_file
    if not source.is_file():
        raise BackupError(f"{source}: missing from the backup")
    behind = _schema_check(manifest.schema_revision)
    _refuse_foreign_owner(url, settings)
    _refuse_running_daemons(settings)
    snapshot.check_target(url)
    entries = files.check_restorable(folder, manifest.artifact_dir, settings.artifact_dir)
    return Plan(manifest, source, entries, behind)


def restore_backup(url: URL, settings: Settings, folder: Path, *, actor: str) -> Restored:
    """Put a backup back into the database `url` and the artifact folder; the platform is then
    paused. Everything is checked before anything is changed (plan_restore)."""
    plan = plan_restore(url, settings, folder)
    manifest, source, behind = plan.manifest, plan.source, plan.behind
    # The files first: should one fail, the current database stands and the files already
    # copied are ones its rows do not name (prune removes them), never the other way round.
    count = files.put_back(plan.files)
    db.session.remove()
    db.engine.dispose()  # no pooled connection may outlive the database it was opened on
    snapshot.put_back(url, source)
    reason = (
        f"restored from the backup of {manifest.created_at}: jobs running or due since then "
        "may already have run; check them, then resume"
    )
    try:
        if behind:
            upgrade(directory=str(MIGRATIONS))
        _move_storage_paths(manifest.artifact_dir, settings.artifact_dir)
        pauses.pause(pauses.Target(PauseScope.PLATFORM), actor=actor, user_id=None, reason=reason)
        db.session.flush()
    except Exception as exc:
        db.session.rollback()
        raise BackupError(
            f"the database is restored, but {'migrating it or ' if behind else ''}pausing the "
            f"platform failed ({exc}): run `multiflexi pause --all` before any daemon starts"
        ) from exc
    running, due = _in_flight()
    migrated = manifest.schema_revision if behind else None
    return Restored(manifest, count, migrated, _keys_fit(), running, due)


def _in_flight() -> tuple[int, int]:
    """The restored jobs an operator checks before resuming: those that were running when the
    backup was taken, and those due since (slots or retries the snapshot still waits for)."""
    running = db.session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.RUNNING.value)
    )
    due = db.session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.status == JobStatus.SCHEDULED.value, Job.scheduled_for <= utcnow())
    )
    return int(running or 0), int(due or 0)


def _move_storage_paths(old_dir: str, new_dir: str) -> None:
    """Rows name their files by absolute path: on a host whose artifact folder is elsewhere
    (a new machine, another checkout), they are made to name where the files were put."""
    if old_dir == new_dir:
        return
    old_prefix = old_dir.rstrip("/") + "/"
    db.session.execute(
        update(Artifact)
        .where(Artifact.storage_path.startswith(old_prefix, autoescape=True))
        .values(
            # Typed as text, `+` is `||` on both databases (SQLite has no concat() before 3.44).
            storage_path=literal(new_dir.rstrip("/") + "/", Text)
            + func.substr(Artifact.storage_path, len(old_prefix) + 1, type_=Text)
        )
        .execution_options(synchronize_session=False)
    )


def _keys_fit() -> bool | None:
    """Whether the configured keys decrypt a secret of the restored database (one is enough:
    all were sealed with the same keys); None when it holds none. A backup restored on a new
    host with another ENCRYPTION_MASTER_KEY would otherwise fail each job at its start."""
    sealed = db.session.scalar(
        select(CredentialValue.value).where(CredentialValue.secret.is_(True)).limit(1)
    )
    if sealed is None:
        return None
    try:
        cipher().decrypt(sealed)
    except SecretError:
        return False
    return True


def _schema_check(revision: str | None) -> bool:
    """Whether the backup's schema is behind this version's (it is then migrated); refused when
    this version does not know it (a backup of a newer version). A database without a revision
    was not made by the migrations (create_all), so they are not run on it."""
    script = ScriptDirectory(str(MIGRATIONS))
    if revision is None or revision == script.get_current_head():
        return False
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise BackupError(
            f"schema revision {revision}: unknown to this version ({__version__}); restore it "
            "with the version that made the backup or a newer one"
        )
    return True


def _refuse_foreign_owner(url: URL, settings: Settings) -> None:
    """Root restoring another user's installation would leave files only root can read: the
    artifacts it writes (0600), and SQLite's -wal and -shm when it creates them. The daemons,
    running as their own user, could then open neither."""
    if os.geteuid() != 0:
        return
    places = [Path(settings.artifact_dir)]
    if url.get_backend_name() == "sqlite" and url.database:
        places.append(Path(url.database))
    for place in places:
        try:
            owner = place.stat().st_uid
        except FileNotFoundError:
            continue
        if owner != 0:
            raise BackupError(
                f"{place}: belongs to uid {owner}, and this restore runs as root; run it as "
                "that user (e.g. sudo -u multiflexi multiflexi restore ...)"
            )


def _refuse_running_daemons(settings: Settings) -> None:
    """A daemon writing meanwhile would mix its rows into the restored database, or hold
    PostgreSQL's tables; refused while any has beaten its heart lately."""
    try:
        workers = db.session.scalars(select(Worker).where(Worker.stopped_at.is_(None))).all()
    except SQLAlchemyError:  # an empty database (a new PostgreSQL one): nothing runs on it
        db.session.rollback()
        return
    now = utcnow()
    alive = [w for w in workers if (now - w.heartbeat_at).total_seconds() < settings.lost_after]
    if alive:
        names = ", ".join(f"{w.kind} pid {w.pid} on {w.hostname}" for w in alive[:5])
        wait = max(settings.lost_after - (now - w.heartbeat_at).total_seconds() for w in alive)
        raise BackupError(
            f"daemons are running on this database ({names}): stop them first "
            "(systemctl stop 'multiflexi-*', or Ctrl-C on make run); one killed without a "
            f"clean stop counts as running until its last heartbeat is {settings.lost_after:.0f} "
            f"s old (here: {wait:.0f} s more)"
        )
