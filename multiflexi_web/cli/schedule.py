"""`multiflexi runtemplate update|next`: change a RunTemplate (schedule, executor); run times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from multiflexi_web.cli.common import (
    ROW_ID,
    domain_errors,
    emit,
    format_option,
    in_range,
    pairs_and_stdin,
    parse_pairs,
    stdin_option,
    writer,
)
from multiflexi_web.cli.policy_options import policies_from, policy_options
from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate, utcnow
from multiflexi_web.models.bounds import DELAY, TIMEOUT
from multiflexi_web.services import audit, settings
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    ScheduleSpec,
    assign_credential,
    get_runtemplate,
    set_config,
    set_executor,
    set_policies,
    set_schedule,
    set_timeout,
)
from multiflexi_web.services.runtemplates.readiness import require_activatable
from multiflexi_web.services.scheduling.times import (
    ScheduleError,
    policies_of,
    schedule_for,
    zone_for,
)

SCHEDULE_KEYS = ("interval", "cron", "delay", "timezone")
OPT_HELP = "Container settings (docker, podman): pull, memory, cpus, pids, network; K= removes."


@click.command("update")
@click.argument("rt_id", type=ROW_ID)
@click.option("--name")
@click.option("--interval", help="n i h d w m y c (c = custom, with --cron).")
@click.option("--cron", help="5-field cron; implies --interval c.")
@click.option(
    "--delay", type=in_range(DELAY), help="Seconds added to each slot (daily + 7200 = 02:00)."
)
@click.option("--timezone", help="IANA zone for cron math; '' = MULTIFLEXI_TIMEZONE.")
@click.option("--timeout", type=in_range(TIMEOUT), help="Seconds before the job is stopped.")
@click.option("--executor", help="Another executor module (refused when it cannot run the app).")
@click.option("--executor-option", "executor_options", multiple=True, metavar="K=V", help=OPT_HELP)
@click.option(
    "--config", "config", multiple=True, metavar="K=V", help="A config value (others are kept)."
)
@stdin_option("--config", "value")
@click.option(
    "--credential",
    "credentials",
    multiple=True,
    type=ROW_ID,
    metavar="ID",
    help="Use this credential for the requirement its prototype meets.",
)
@click.option("--active/--inactive", default=None, help="Enable or disable the schedule.")
@policy_options(update=True)
@format_option
@domain_errors(RunTemplateError)
@writer
def update(
    rt_id: int,
    name: str | None,
    timeout: int | None,
    executor: str | None,
    executor_options: tuple[str, ...],
    config: tuple[str, ...],
    stdin_key: str | None,
    credentials: tuple[int, ...],
    active: bool | None,
    fmt: str,
    **opts: Any,
) -> None:
    """Change a RunTemplate; a schedule change recomputes its next run at once."""
    from multiflexi_web.cli.runtemplates import COLUMNS, runtemplate_row

    rt = get_runtemplate(rt_id)
    if name is not None:
        if not name.strip():
            raise RunTemplateError("name: must not be empty")
        rt.name = name.strip()
    if timeout is not None:
        set_timeout(rt, timeout)
    if executor is not None or executor_options:
        _update_executor(rt, executor, executor_options)
    values = pairs_and_stdin(config, "--config", stdin_key)
    if values:  # the same checks as create: declared names, typed values, secrets encrypted
        set_config(rt, values, admin=True)
    for credential_id in credentials:  # of the template's own company only
        assign_credential(rt, credential_id)
    _update_schedule(rt, active, opts)
    set_policies(rt, policies_from(opts, policies_of(rt)))
    audit.record("update", "runtemplate", rt.id, f"runtemplate {rt.name} updated", actor="cli")
    db.session.commit()
    emit(runtemplate_row(rt), fmt, COLUMNS)


def _update_executor(rt: RunTemplate, executor: str | None, pairs: tuple[str, ...]) -> None:
    """Options merge into the template's (K= removes one); the module checks them."""
    given = parse_pairs(pairs, "--executor-option")
    options = {k: v for k, v in {**(rt.executor_options or {}), **given}.items() if v != ""}
    set_executor(rt, executor or rt.executor, options if pairs else None)


def _update_schedule(rt: RunTemplate, active: bool | None, opts: dict[str, Any]) -> None:
    """Apply schedule options (a due slot stays due unless they change something)."""
    if opts.get("cron") and opts.get("interval") is None:
        opts["interval"] = "c"
    old = ScheduleSpec(rt.interval, rt.cron, rt.delay, rt.timezone)
    new = ScheduleSpec(
        *(opts[k] if opts.get(k) is not None else getattr(old, k) for k in SCHEDULE_KEYS)
    )
    new.timezone = new.timezone or None
    changed_active = active is not None and active != rt.active
    if active and changed_active:
        require_activatable(rt)
    if active is not None:
        rt.active = active
    set_schedule(rt, new)  # which moves the next run only on a real change


@click.command("next")
@click.argument("rt_id", type=ROW_ID)
@click.option("--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option(
    "--after", "after_text", help="Start from this ISO time instead of now (UTC if no zone)."
)
@format_option
@domain_errors(RunTemplateError, ScheduleError)
def next_(rt_id: int, count: int, after_text: str | None, fmt: str) -> None:
    """Print the next run times of a RunTemplate, local and UTC."""
    rt = get_runtemplate(rt_id)
    default_tz = settings().timezone
    sched = schedule_for(rt, default_tz)
    if sched is None:
        raise click.ClickException(f"runtemplate {rt_id}: manual only (interval n), no run times")
    after = _parse_after(after_text) if after_text else utcnow()
    zone = zone_for(rt, default_tz)
    rows = [
        {"local": t.astimezone(zone), "utc": t, "timezone": zone.key}
        for t in sched.next_runs(after, count)
    ]
    if not rt.active:
        click.echo(
            f"runtemplate {rt_id} is inactive: these times apply once it is active", err=True
        )
    if fmt == "json":
        emit(rows, fmt, ["local", "utc"])
        return
    for r in rows:
        click.echo(f"{r['local']:%Y-%m-%d %H:%M:%S %Z (%z)}  =  {r['utc']:%Y-%m-%d %H:%M:%S} UTC")


def _parse_after(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: not an ISO date-time", param_hint="--after") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def attach(group: click.Group) -> None:
    """Add `update` and `next` to the runtemplate group."""
    group.add_command(update)
    group.add_command(next_)
