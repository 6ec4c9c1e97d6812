"""`multiflexi upstream import`: move an upstream (PHP) MultiFlexi installation in."""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from multiflexi_web.cli.common import echo_json, format_option, printable, writer
from multiflexi_web.extensions import db
from multiflexi_web.services import audit, settings
from multiflexi_web.services.upstream_import import (
    ImportOptions,
    UpstreamKeyError,
    UpstreamReadError,
    import_upstream,
)


@click.group("upstream")
def upstream_group() -> None:
    """Upstream (PHP) MultiFlexi installations."""


@upstream_group.command("import")
@click.option(
    "--from",
    "url",
    required=True,
    help="Upstream database URL (mysql://, postgresql://, sqlite:///).",
)
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option(
    "--include-history", is_flag=True, help="Also finished jobs, their output and artifacts."
)
@click.option(
    "--upstream-key",
    envvar="MULTIFLEXI_UPSTREAM_KEY",
    help="Upstream's ENCRYPTION_MASTER_KEY (or MULTIFLEXI_UPSTREAM_KEY) to open its credentials.",
)
@click.option(
    "--timezone", help="Zone of upstream's local timestamps (default MULTIFLEXI_TIMEZONE)."
)
@format_option
@writer
def import_(
    url: str,
    dry_run: bool,
    include_history: bool,
    upstream_key: str | None,
    timezone: str | None,
    fmt: str,
) -> None:
    """Import companies, apps, credentials, RunTemplates, users and events (all or nothing)."""
    options = ImportOptions(
        url, upstream_key or None, dry_run, include_history, timezone or settings().timezone
    )
    try:
        report = import_upstream(options)
    except (UpstreamKeyError, UpstreamReadError) as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc}; nothing was written") from None
    except SQLAlchemyError as exc:
        db.session.rollback()
        raise click.ClickException(f"import failed: {exc}; nothing was written") from None
    except BaseException:
        db.session.rollback()
        raise
    if dry_run:
        db.session.rollback()
    else:
        summary = {name: vars(c) for name, c in report.tables.items()}
        audit.record("import", "upstream", None, f"moved in from {report.source}", summary, "cli")
        db.session.commit()
        report.committed = True
    if fmt == "json":
        echo_json(report.as_dict(), default=None)
    else:  # names read from the upstream database: other people's text
        click.echo("\n".join(printable(line) for line in report.lines()))
