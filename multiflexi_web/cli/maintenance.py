"""`multiflexi pause`, `resume` and `drain`: holding work back for maintenance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from multiflexi_web.cli.common import (
    ROW_ID,
    application_id,
    company_id,
    domain_errors,
    emit,
    format_option,
    writer,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import PauseScope
from multiflexi_web.services import audit
from multiflexi_web.services.operations.drain import request_drain
from multiflexi_web.services.operations.pauses import Target, all_pauses, pause, resume

PAUSE_COLUMNS = ["scope", "target_id", "created_at", "actor", "reason"]


def _scope_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--all", "everything", is_flag=True, help="The whole platform.")(fn)
    fn = click.option("--company", metavar="ID|SLUG", help="Every job of a company.")(fn)
    fn = click.option("--app", metavar="ID|UUID", help="Every job of an application.")(fn)
    return click.option("--runtemplate", type=ROW_ID, metavar="ID", help="One RunTemplate.")(fn)


def _target(
    runtemplate: int | None, app: str | None, company: str | None, everything: bool
) -> Target:
    chosen = [
        Target(scope, value)
        for scope, value in (
            (PauseScope.RUNTEMPLATE, runtemplate),
            (PauseScope.APPLICATION, application_id(app)),
            (PauseScope.COMPANY, company_id(company)),
        )
        if value is not None
    ]
    if everything:
        chosen.append(Target(PauseScope.PLATFORM))
    if len(chosen) != 1:
        raise click.UsageError("name one scope: --runtemplate ID, --app ID, --company ID or --all")
    return chosen[0]


@click.command("pause")
@_scope_options
@click.option("--reason", default="", help="Why (shown with the pause and in the audit log).")
@click.option("--list", "listing", is_flag=True, help="Only list what is paused.")
@format_option
@writer
@domain_errors(ValueError)
def pause_command(
    runtemplate: int | None,
    app: str | None,
    company: str | None,
    everything: bool,
    reason: str,
    listing: bool,
    fmt: str,
) -> None:
    """Claim no new jobs of a scope: its jobs wait, scheduled, until it is resumed."""
    if listing:
        rows = [{c: getattr(p, c) for c in PAUSE_COLUMNS} for p in all_pauses()]
        emit(rows, fmt, PAUSE_COLUMNS)
        return
    target = _target(runtemplate, app, company, everything)
    if not pause(target, actor="cli", user_id=None, reason=reason):
        click.echo(f"{target.label} was already paused.")
        return
    audit.record("pause", target.scope.value, target.id, f"paused {target.label}", actor="cli")
    db.session.commit()
    click.echo(f"paused {target.label}.")


@click.command("resume")
@_scope_options
@writer
@domain_errors(ValueError)
def resume_command(
    runtemplate: int | None, app: str | None, company: str | None, everything: bool
) -> None:
    """Lift a pause: the scope's waiting jobs are claimed again (slots missed meanwhile follow
    the misfire policy)."""
    target = _target(runtemplate, app, company, everything)
    if not resume(target):
        raise click.ClickException(f"{target.label} is not paused")
    audit.record("resume", target.scope.value, target.id, f"resumed {target.label}", actor="cli")
    db.session.commit()
    click.echo(f"resumed {target.label}.")


@click.command("drain")
@click.argument("worker_id", type=ROW_ID)
@writer
@domain_errors(ValueError)
def drain_command(worker_id: int) -> None:
    """Ask an executor to claim nothing more, finish its running jobs, then idle until stopped."""
    worker = request_drain(worker_id)
    audit.record("drain", "worker", worker.id, f"drain requested for {worker.label}", actor="cli")
    db.session.commit()
    click.echo(
        f"{worker.label} is draining: it finishes its running jobs, claims nothing more, then"
        " shows 'drained' and idles until it is stopped."
    )


COMMANDS: list[click.Command] = [pause_command, resume_command, drain_command]
