"""The `multiflexi` command: click groups registered on the Flask app's CLI."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from multiflexi_web.config import ConfigError


def register_cli(app: Flask) -> None:
    from multiflexi_web.cli.companies import company_group
    from multiflexi_web.cli.credentials import credential_group
    from multiflexi_web.cli.runtemplates import runtemplate_group
    from multiflexi_web.cli.schedule import attach as attach_schedule_commands
    from multiflexi_web.cli.secrets import secrets_group
    from multiflexi_web.cli.tokens import token_group
    from multiflexi_web.cli.users import user_group

    attach_schedule_commands(runtemplate_group)  # runtemplate update / next
    groups = (
        user_group, company_group, credential_group, runtemplate_group, secrets_group, token_group,
    )  # fmt: skip
    for group in groups:
        app.cli.add_command(group)
    for extra in _feature_groups():
        app.cli.add_command(extra)


def _feature_groups() -> list[click.Command]:
    """Groups contributed by feature modules (apps, jobs, events...), listed explicitly."""
    from multiflexi_web.cli.actions import action_group
    from multiflexi_web.cli.actions import attach as attach_action_commands
    from multiflexi_web.cli.apps import app_group, credproto_group
    from multiflexi_web.cli.housekeeping import installation_command, prune_command, worker_group
    from multiflexi_web.cli.jobs import artifact_group, job_group
    from multiflexi_web.cli.runtemplates import runtemplate_group

    attach_action_commands(runtemplate_group, job_group)  # runtemplate action / job actions
    from multiflexi_web.cli.upstream import upstream_group

    groups: list[click.Command] = [app_group, credproto_group, job_group, artifact_group]
    groups += [action_group, upstream_group, prune_command, worker_group, installation_command]
    from multiflexi_web.cli.operations import attach as attach_operations

    groups += attach_operations(runtemplate_group, job_group)  # job retry, backfill, sla
    from multiflexi_web.cli.maintenance import COMMANDS as maintenance_commands

    groups += maintenance_commands  # pause, resume, drain
    from multiflexi_web.cli.events import GROUPS as event_groups

    groups += event_groups
    from multiflexi_web.cli.backup import COMMANDS as backup_commands

    groups += backup_commands  # backup, restore
    return groups


def _create_app() -> Flask:
    from multiflexi_web import create_app

    return create_app()


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from multiflexi_web import __version__

    click.echo(f"multiflexi {__version__}")
    ctx.exit()


cli = FlaskGroup(
    create_app=_create_app,
    help="MultiFlexi administration.",
    add_version_option=False,  # Flask's printed Python's, Flask's and Werkzeug's versions
    params=[
        click.Option(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_version,
            help="Show the MultiFlexi version.",
        )
    ],
)
# Flask's own options (--app, --env-file, --debug) keep working, but the help no longer offers
# an operator "the Flask application or factory function to load".
for _option in cli.params:
    if _option.name in {"app", "env_file", "debug"} and isinstance(_option, click.Option):
        _option.hidden = True


def main() -> None:
    from multiflexi_web.security.process import private_umask

    private_umask()  # `multiflexi db upgrade` may create the SQLite file: the platform's only
    try:
        cli.main(prog_name="multiflexi")
    except ConfigError as exc:
        click.echo(f"Error: configuration: {exc}", err=True)
        sys.exit(2)
