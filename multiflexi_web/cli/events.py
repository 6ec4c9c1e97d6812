"""`multiflexi event-source|event-rule|event ...`: event sources, rules and received events."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask import current_app

from multiflexi_web.cli.common import (
    ROW_ID,
    domain_errors,
    emit,
    format_option,
    parse_pairs,
    printable,
    writer,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventRule, EventSource
from multiflexi_web.models.bounds import RULE_PRIORITY, SIGNATURE_TOLERANCE
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.companies import CompanyError, get_company
from multiflexi_web.services.events import catalog
from multiflexi_web.services.events.catalog import EventSourceError, RuleSpec
from multiflexi_web.services.events.process import jobs_of
from multiflexi_web.sources import KINDS

SOURCE_COLUMNS = ["id", "name", "kind", "enabled", "webhook_path", "last_error"]
RULE_COLUMNS = ["id", "source_id", "name", "priority", "enabled", "runtemplate_id", "conditions"]
EVENT_COLUMNS = ["id", "source_id", "status", "received_at", "matched_rules", "jobs", "error"]


def webhook_path(source: EventSource) -> str | None:
    if source.kind != "webhook" or not source.token:
        return None
    # A path, not a full URL: the CLI does not know the portal's public address.
    adapter = current_app.url_map.bind("localhost")
    return adapter.build("webhook.receive_webhook", {"token": source.token})


def source_row(s: EventSource) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "enabled": s.enabled,
        "company_id": s.company_id,
        "config": catalog.redacted_config(s.config),
        "has_secret": bool(s.secret),
        "require_timestamp": s.require_timestamp,
        "signature_tolerance": s.signature_tolerance,
        "webhook_path": webhook_path(s),
        "last_processed_id": s.last_processed_id,
        "last_error": s.last_error,
        "last_error_at": s.last_error_at,
    }


def rule_row(r: EventRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "source_id": r.source_id,
        "name": r.name,
        "priority": r.priority,
        "enabled": r.enabled,
        "runtemplate_id": r.runtemplate_id,
        "conditions": r.conditions,
        "evidence": r.evidence,
        "operation": r.operation,
        "env_mapping": r.env_mapping,
    }


def _value(raw: str) -> Any:
    """A config or condition value: JSON when it parses (42, true, [..]), else the text."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or a number or nesting JSON cannot take
        return raw


@click.group("event-source")
def source_group() -> None:
    """Event sources: webhook, directory, redis, amqp, mqtt, changes-db."""


@source_group.command("create")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(list(KINDS)))
@click.option(
    "--config", "config", multiple=True, metavar="K=V", help="Config value (JSON or text)."
)
@click.option("--company", "company_ref", help="Company id or slug.")
@click.option("--secret-stdin", is_flag=True, help="Read the HMAC secret or password from stdin.")
@click.option(
    "--require-timestamp",
    is_flag=True,
    help="Webhook: accept only X-MultiFlexi-Signature (signed time; replays refused).",
)
@click.option(
    "--signature-tolerance",
    type=click.IntRange(SIGNATURE_TOLERANCE.low, SIGNATURE_TOLERANCE.high),
    default=300,
    show_default=True,
    help="Webhook: seconds the signed time may differ from this machine's clock.",
)
@click.option("--disabled", is_flag=True)
@format_option
@domain_errors(EventSourceError, CompanyError)
@writer
def create_source(
    name: str,
    kind: str,
    config: tuple[str, ...],
    company_ref: str | None,
    secret_stdin: bool,
    require_timestamp: bool,
    signature_tolerance: int,
    disabled: bool,
    fmt: str,
) -> None:
    """Create an event source; a webhook source prints its URL path (the token is in it)."""
    values = {k: _value(v) for k, v in parse_pairs(config, "--config").items()}
    secret = sys.stdin.readline().rstrip("\r\n") if secret_stdin else None
    company_id = get_company(company_ref).id if company_ref else None
    source = catalog.create_source(
        name, kind, values, secret=secret or None, company_id=company_id, enabled=not disabled
    )
    catalog.set_signing(source, require_timestamp=require_timestamp, tolerance=signature_tolerance)
    audit.record("create", "event_source", source.id, f"event source {name} created", actor="cli")
    db.session.commit()
    emit({**source_row(source), "token": source.token}, fmt, SOURCE_COLUMNS)


@source_group.command("list")
@format_option
def list_sources(fmt: str) -> None:
    """List event sources with their last error."""
    emit([source_row(s) for s in catalog.list_sources()], fmt, SOURCE_COLUMNS)


@click.group("event-rule")
def rule_group() -> None:
    """Event rules: which events start which RunTemplate, with what environment."""


@rule_group.command("create")
@click.option("--source", "source_ref", required=True, help="Source id or name.")
@click.option("--runtemplate", "runtemplate_id", required=True, type=ROW_ID)
@click.option("--name", default="")
@click.option("--when", "equals", multiple=True, metavar="PATH=VALUE", help="$.a.b equals VALUE.")
@click.option("--exists", "exists", multiple=True, metavar="PATH", help="$.a.b is present.")
@click.option("--in", "in_list", multiple=True, metavar="PATH=V1,V2", help="$.a.b is one of.")
@click.option("--evidence", help="changes-db: entity type (empty = any).")
@click.option("--operation", default="any", show_default=True, help="any create update delete")
@click.option("--env", "env", multiple=True, metavar="KEY=$.a.b", help="Payload value to env.")
@click.option(
    "--priority",
    type=click.IntRange(RULE_PRIORITY.low, RULE_PRIORITY.high),
    default=0,
    show_default=True,
)
@click.option("--disabled", is_flag=True)
@format_option
@domain_errors(EventSourceError)
@writer
def create_rule(
    source_ref: str,
    runtemplate_id: int,
    name: str,
    equals: tuple[str, ...],
    exists: tuple[str, ...],
    in_list: tuple[str, ...],
    evidence: str | None,
    operation: str,
    env: tuple[str, ...],
    priority: int,
    disabled: bool,
    fmt: str,
) -> None:
    """Create an event rule."""
    conditions = [
        {"path": p, "op": "equals", "value": _value(v)}
        for p, v in parse_pairs(equals, "--when").items()
    ]
    conditions += [{"path": p, "op": "exists"} for p in exists]
    conditions += [
        {"path": p, "op": "in", "value": [_value(x) for x in v.split(",")]}
        for p, v in parse_pairs(in_list, "--in").items()
    ]
    spec = RuleSpec(
        runtemplate_id,
        name,
        conditions,
        evidence,
        operation,
        parse_pairs(env, "--env"),
        priority,
        not disabled,
        admin=True,  # the CLI is the platform operator's
    )
    rule = catalog.create_rule(catalog.get_source(source_ref), spec)
    audit.record("create", "event_rule", rule.id, f"event rule {rule.id} created", actor="cli")
    db.session.commit()
    emit(rule_row(rule), fmt, RULE_COLUMNS)


@rule_group.command("list")
@click.option("--source", "source_ref", help="Source id or name.")
@format_option
@domain_errors(EventSourceError)
def list_rules(source_ref: str | None, fmt: str) -> None:
    """List event rules, highest priority first within each source."""
    source_id = catalog.get_source(source_ref).id if source_ref else None
    emit([rule_row(r) for r in catalog.list_rules(source_id)], fmt, RULE_COLUMNS)


@rule_group.command("test")
@click.option("--source", "source_ref", required=True, help="Source id or name.")
@click.option("--payload", required=True, help="Payload JSON, or @FILE, or @- for stdin.")
@format_option
@domain_errors(EventSourceError)
def test_rules(source_ref: str, payload: str, fmt: str) -> None:
    """Show which rules a payload would fire and the environment each would produce."""
    source = catalog.get_source(source_ref)
    hits = catalog.try_payload(source, _read_payload(payload))
    rows = [
        {
            "rule_id": h.rule.id,
            "name": h.rule.name,
            "priority": h.rule.priority,
            "runtemplate_id": h.rule.runtemplate_id,
            "env": h.env,
        }
        for h in hits
    ]
    if fmt == "json":
        emit(rows, fmt, [])
        return
    if not rows:
        click.echo("no rule matches")
    for hit in hits:
        rule = hit.rule
        click.echo(f"rule {rule.id} {rule.name!r} -> runtemplate {rule.runtemplate_id}")
        for key, value in hit.env.items():  # taken from the payload: anyone's input
            click.echo(printable(f"  {key}={value}"))


def _read_payload(arg: str) -> Any:
    text = arg
    if arg.startswith("@"):
        name = arg[1:]
        text = sys.stdin.read() if name == "-" else click.open_file(name).read()
    try:
        return catalog.parse_test_payload(text)
    except EventSourceError as exc:
        raise click.BadParameter(str(exc), param_hint="--payload") from None


@click.group("event")
def event_group() -> None:
    """Received events."""


@event_group.command("list")
@click.option("--source", "source_ref", help="Source id or name.")
@click.option("--status", type=click.Choice(["new", "processed", "failed"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@format_option
@domain_errors(EventSourceError)
def list_events(source_ref: str | None, status: str | None, limit: int, fmt: str) -> None:
    """Recent events, newest first, with the rules they matched and the jobs they created."""
    source_id = catalog.get_source(source_ref).id if source_ref else None
    events = catalog.recent_events(source_id, status, limit)
    made = jobs_of([e.id for e in events])
    emit([event_row(e, [j.id for j in made[e.id]]) for e in events], fmt, EVENT_COLUMNS)


def event_row(e: Event, job_ids: list[int]) -> dict[str, Any]:
    return {
        "id": e.id,
        "source_id": e.source_id,
        "status": e.status,
        "delivery_id": e.delivery_id,
        "received_at": e.received_at,
        "processed_at": e.processed_at,
        "payload": e.payload,
        "matched_rules": e.matched_rules,
        "jobs": job_ids,
        "error": e.error,
    }


GROUPS: list[click.Command] = [source_group, rule_group, event_group]
