"""`multiflexi runtemplate create|list|show` (schedule and next live in their own modules)."""

from __future__ import annotations

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
from multiflexi_web.models import RunTemplate
from multiflexi_web.models.bounds import DELAY, TIMEOUT
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.companies import CompanyError, get_company
from multiflexi_web.services.catalogue.applications import ApplicationError, get_application
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    RunTemplateSpec,
    ScheduleSpec,
    create_runtemplate,
    get_runtemplate,
    list_runtemplates,
)
from multiflexi_web.services.runtemplates.manage import delete_runtemplate
from multiflexi_web.services.runtemplates.readiness import (
    inactive_warning,
    require_ready,
    unmet_requirements,
)

OPT_HELP = "Container settings: pull, memory, cpus, pids, network (docker, podman)."
COLUMNS = [
    "id",
    "company_id",
    "app",
    "name",
    "interval",
    "cron",
    "executor",
    "active",
    "next_run_at",
]


def runtemplate_row(rt: RunTemplate) -> dict[str, Any]:
    return {
        "id": rt.id,
        "company_id": rt.company_id,
        "application_id": rt.application_id,
        "app": rt.application.name,
        "name": rt.name,
        "interval": rt.interval,
        "cron": rt.cron,
        "delay": rt.delay,
        "timezone": rt.timezone,
        "executor": rt.executor,
        "executor_options": dict(rt.executor_options or {}),
        "active": rt.active,
        "mask_output": rt.mask_output,
        "timeout": rt.timeout,
        "misfire_policy": rt.misfire_policy,
        "overlap_policy": rt.overlap_policy,
        "max_attempts": rt.max_attempts,
        "retry_backoff": rt.retry_backoff,
        "retry_min_gap": rt.retry_min_gap,
        "next_run_at": rt.next_run_at,
        "last_run_at": rt.last_run_at,
        "config": {c.key: MASK if c.secret else c.value for c in rt.config},
        "credentials": {link.requirement: link.credential_id for link in rt.credentials},
        "unmet_requirements": unmet_requirements(rt),
        "actions": _actions(rt.id),
    }


def _actions(rt_id: int) -> list[dict[str, Any]]:
    from multiflexi_web.services.actions.configure import as_dict, for_runtemplate

    return [as_dict(row) for row in for_runtemplate(rt_id)]


@click.group("runtemplate")
def runtemplate_group() -> None:
    """RunTemplates: an application configured and scheduled for a company."""


@runtemplate_group.command("create")
@click.option("--company", "company_ref", required=True, help="Company id or slug.")
@click.option("--app", "app_ref", required=True, help="Application id or uuid.")
@click.option("--name", required=True)
@click.option("--interval", default="n", show_default=True, help="n i h d w m y c")
@click.option("--cron", help="5-field cron (with --interval c).")
@click.option(
    "--delay",
    type=in_range(DELAY),
    default=0,
    show_default=True,
    help="Seconds added to each slot.",
)
@click.option("--timezone", help="IANA zone for cron math (default MULTIFLEXI_TIMEZONE).")
@click.option("--executor", default="native", show_default=True)
@click.option("--executor-option", "executor_options", multiple=True, metavar="K=V", help=OPT_HELP)
@click.option("--config", "config", multiple=True, metavar="K=V")
@stdin_option("--config", "value")
@click.option("--credential", "credentials", multiple=True, type=ROW_ID, metavar="ID")
@click.option("--timeout", type=in_range(TIMEOUT), help="Seconds before the job is stopped.")
@click.option("--inactive", is_flag=True, help="Create it inactive.")
@click.option("--no-mask-output", is_flag=True, help="Show known secret values in the job output.")
@policy_options()
@format_option
@domain_errors(CompanyError, ApplicationError, RunTemplateError)
@writer
def create(
    company_ref: str,
    app_ref: str,
    name: str,
    interval: str,
    cron: str | None,
    delay: int,
    timezone: str | None,
    executor: str,
    executor_options: tuple[str, ...],
    config: tuple[str, ...],
    stdin_key: str | None,
    credentials: tuple[int, ...],
    timeout: int | None,
    inactive: bool,
    no_mask_output: bool,
    fmt: str,
    **policies: Any,
) -> None:
    """Create a RunTemplate."""
    spec = RunTemplateSpec(
        name=name,
        schedule=ScheduleSpec(interval=interval, cron=cron, delay=delay, timezone=timezone),
        executor=executor,
        executor_options=parse_pairs(executor_options, "--executor-option"),
        config=pairs_and_stdin(config, "--config", stdin_key),
        credential_ids=list(credentials),
        timeout=timeout,
        active=not inactive,
        policies=policies_from(policies),
        mask_output=not no_mask_output,
        admin=True,  # the CLI is the platform operator's
    )
    rt = create_runtemplate(get_company(company_ref), get_application(app_ref), spec)
    unmet = require_ready(rt)
    audit.record("create", "runtemplate", rt.id, f"runtemplate {name} created", actor="cli")
    db.session.commit()
    if unmet:
        click.echo(f"warning: {inactive_warning(unmet)}", err=True)
    emit(runtemplate_row(rt), fmt, COLUMNS)


@runtemplate_group.command("list")
@click.option("--company", "company_ref", help="Company id or slug.")
@format_option
@domain_errors(CompanyError)
def list_(company_ref: str | None, fmt: str) -> None:
    """List RunTemplates."""
    company_id = get_company(company_ref).id if company_ref else None
    emit([runtemplate_row(rt) for rt in list_runtemplates(company_id)], fmt, COLUMNS)


@runtemplate_group.command("show")
@click.argument("rt_id", type=ROW_ID)
@format_option
@domain_errors(RunTemplateError)
def show(rt_id: int, fmt: str) -> None:
    """Show one RunTemplate."""
    emit(runtemplate_row(get_runtemplate(rt_id)), fmt, COLUMNS)


@runtemplate_group.command("delete")
@click.argument("rt_id", type=ROW_ID)
@click.confirmation_option(
    "--yes", prompt="Delete the RunTemplate with its job history, output and artifacts?"
)
@domain_errors(RunTemplateError)
@writer
def delete(rt_id: int) -> None:
    """Delete a RunTemplate with its finished jobs; refused while one is scheduled or running."""
    rt = get_runtemplate(rt_id)
    name = rt.name
    delete_runtemplate(rt)
    audit.record("delete", "runtemplate", rt_id, f"runtemplate {name} deleted", actor="cli")
    db.session.commit()
    click.echo(f"runtemplate {rt_id} deleted")
