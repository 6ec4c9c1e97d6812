"""`multiflexi runtemplate action ...`, `multiflexi job actions`, `multiflexi action ...`."""

from __future__ import annotations

import click

from multiflexi_web.actions import registry
from multiflexi_web.cli.common import (
    BIG_ID,
    ROW_ID,
    domain_errors,
    emit,
    format_option,
    parse_pairs,
)
from multiflexi_web.extensions import db
from multiflexi_web.services import audit
from multiflexi_web.services.actions import configure, runs, values
from multiflexi_web.services.actions.configure import ActionConfigError, When
from multiflexi_web.services.runtemplates.configure import RunTemplateError, get_runtemplate

CONFIG_COLUMNS = ["id", "mode", "kind", "trigger", "enabled", "config"]
RUN_COLUMNS = ["id", "kind", "mode", "status", "attempts", "response", "error"]


@click.group("action")
def rt_action_group() -> None:
    """A RunTemplate's post-job actions (success and failure)."""


@rt_action_group.command("add")
@click.argument("rt_id", type=ROW_ID)
@click.option("--on", "mode", type=click.Choice(["success", "failure"]), required=True)
@click.option(
    "--kind", required=True, help="Action kind, e.g. WebHook (see: multiflexi action kinds)."
)
@click.option("--config", "config", multiple=True, metavar="K=V")
@click.option(
    "--trigger",
    type=click.Choice(["always", "recovery", "failures"]),
    default="always",
    show_default=True,
)
@click.option("--after-failures", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option(
    "--timed-out/--no-timed-out",
    default=True,
    show_default=True,
    help="Failure actions: fire on timed_out.",
)
@click.option(
    "--lost/--no-lost", default=True, show_default=True, help="Failure actions: fire on lost."
)
@click.option(
    "--cancelled/--no-cancelled",
    default=False,
    show_default=True,
    help="Failure actions: fire on cancelled.",
)
@format_option
@domain_errors(ActionConfigError, RunTemplateError)
def add(
    rt_id: int,
    mode: str,
    kind: str,
    config: tuple[str, ...],
    trigger: str,
    after_failures: int,
    timed_out: bool,
    lost: bool,
    cancelled: bool,
    fmt: str,
) -> None:
    """Add (or update) the RunTemplate's KIND action for success or failure."""
    rt = get_runtemplate(rt_id)
    when = When(timed_out, lost, cancelled, trigger, after_failures)
    row = configure.put(rt, mode, kind, parse_pairs(config, "--config"), when, is_admin=True)
    shown = configure.as_dict(row)
    audit.record(
        "action.configure",
        "runtemplate",
        rt.id,
        f"{mode} action {kind} set",
        {"config": shown["config"]},
        actor="cli",
    )
    db.session.commit()
    emit(shown, fmt, CONFIG_COLUMNS)


@rt_action_group.command("remove")
@click.argument("rt_id", type=ROW_ID)
@click.option("--on", "mode", type=click.Choice(["success", "failure"]), required=True)
@click.option("--kind", required=True)
@domain_errors(ActionConfigError, RunTemplateError)
def remove(rt_id: int, mode: str, kind: str) -> None:
    """Remove the RunTemplate's KIND action for success or failure."""
    rt = get_runtemplate(rt_id)
    configure.remove(rt, mode, kind)
    audit.record(
        "action.remove", "runtemplate", rt.id, f"{mode} action {kind} removed", actor="cli"
    )
    db.session.commit()
    click.echo(f"removed {mode} action {kind} of RunTemplate {rt_id}")


@rt_action_group.command("list")
@click.argument("rt_id", type=ROW_ID)
@format_option
@domain_errors(RunTemplateError)
def list_(rt_id: int, fmt: str) -> None:
    """The RunTemplate's actions (secrets masked)."""
    get_runtemplate(rt_id)
    emit([configure.as_dict(r) for r in configure.for_runtemplate(rt_id)], fmt, CONFIG_COLUMNS)


@click.command("actions")
@click.argument("job_id", type=BIG_ID)
@format_option
def job_actions(job_id: int, fmt: str) -> None:
    """The job's action runs: kind, mode, status, attempts, response or error."""
    emit([runs.as_dict(r) for r in runs.for_job(job_id)], fmt, RUN_COLUMNS)


@click.group("action")
def action_group() -> None:
    """Post-job action kinds, global defaults, and retrying runs."""


@action_group.command("kinds")
@format_option
def kinds(fmt: str) -> None:
    """The action kinds and their config keys."""
    rows = [
        {
            "kind": k.name,
            "description": k.description,
            "fields": [
                {"key": f.key, "type": f.type, "required": f.required, "secret": f.secret}
                for f in k.fields
            ],
        }
        for k in registry.REGISTRY.values()
    ]
    emit(rows, fmt, ["kind", "description"])


@action_group.command("default")
@click.argument("kind")
@click.option("--config", "config", multiple=True, metavar="K=V")
@format_option
@domain_errors(ActionConfigError)
def default(kind: str, config: tuple[str, ...], fmt: str) -> None:
    """Set global default config values of a kind (RunTemplates' own values override them)."""
    row = configure.put_default(kind, parse_pairs(config, "--config"), is_admin=True)
    audit.record("action.default", "action_default", kind, f"defaults of {kind} set", actor="cli")
    db.session.commit()
    emit({"kind": kind, "config": values.masked(row.config)}, fmt, ["kind", "config"])


@action_group.command("retry")
@click.argument("run_id", type=BIG_ID)
@format_option
@domain_errors(runs.RunError)
def retry(run_id: int, fmt: str) -> None:
    """Retry a failed action run."""
    run = runs.retry(run_id)
    audit.record("action.retry", "action_run", run_id, f"action run {run_id} retried", actor="cli")
    db.session.commit()
    emit(runs.as_dict(run), fmt, RUN_COLUMNS)


def attach(runtemplate_group: click.Group, job_group: click.Group) -> None:
    runtemplate_group.add_command(rt_action_group)
    job_group.add_command(job_actions)
