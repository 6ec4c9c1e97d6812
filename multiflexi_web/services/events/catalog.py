"""Event sources and rules: create, find, list, test a payload against a source's rules."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventRule, EventSource, RunTemplate
from multiflexi_web.models.bounds import RULE_PRIORITY, SIGNATURE_TOLERANCE, BoundError, parse_id
from multiflexi_web.security import env_names
from multiflexi_web.security.secrets import MASK, cipher
from multiflexi_web.services.events.bodies import expected_format, read_body
from multiflexi_web.services.events.process import rules_of, starts_for
from multiflexi_web.services.events.rules import (
    EventFacts,
    RuleError,
    rule_env,
    rule_matches,
    validate_rule_fields,
)
from multiflexi_web.services.events.store import parse_payload
from multiflexi_web.sources import KINDS, validate_config
from multiflexi_web.sources.base import SourceConfigError, SourceSpec


class EventSourceError(ValueError):
    """An event source operation was refused; the message names the field and the reason."""


def create_source(
    name: str,
    kind: str,
    config: dict[str, Any] | None = None,
    *,
    secret: str | None = None,
    company_id: int | None = None,
    enabled: bool = True,
    admin: bool = True,
) -> EventSource:
    """`admin`: the caller is a global administrator (the CLI is the host's); the portal passes
    whether its user is one, and a company admin may only set up kinds without host reach."""
    name = name.strip()
    if not name:
        raise EventSourceError("name: must not be empty")
    if db.session.scalar(select(EventSource.id).where(EventSource.name == name)) is not None:
        raise EventSourceError(f"name {name!r}: another event source has it")
    try:
        merged = validate_config(kind, config or {})
    except SourceConfigError as exc:
        raise EventSourceError(str(exc)) from None
    reach = KINDS[kind].admin_only
    if reach and not admin:
        raise EventSourceError(
            f"kind {kind!r}: only a global administrator may set up this kind ({reach})"
        )
    source = EventSource(
        name=name, kind=kind, config=merged, company_id=company_id, enabled=enabled
    )
    source.token = secrets.token_urlsafe(32) if kind == "webhook" else None
    source.secret = cipher().encrypt(secret) if secret else None
    db.session.add(source)
    db.session.flush()
    return source


def redacted_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config for display: a password inside a URL (amqp://u:p@h) is masked."""
    out = dict(config)
    for key, value in config.items():
        if isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            if parts.password:
                netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
                out[key] = urlunsplit(parts._replace(netloc=netloc))
    return out


def unmasked_config(config: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """A config sent back from the edit form, which shows redacted_config: a URL whose
    password is the mask keeps the stored URL's password (the field is write-only)."""
    out = dict(config)
    for key, value in config.items():
        old = stored.get(key)
        if not (isinstance(value, str) and "://" in value and isinstance(old, str)):
            continue
        parts, kept = urlsplit(value), urlsplit(old)
        if parts.password == MASK and kept.password is not None:
            netloc = parts.netloc.replace(f":{MASK}@", f":{kept.password}@", 1)
            out[key] = urlunsplit(parts._replace(netloc=netloc))
    return out


def get_source(ref: str | int) -> EventSource:
    source = None
    # An id in ASCII digits within the column's range; else a name ("²" is not an id).
    number = ref if isinstance(ref, int) else parse_id(str(ref))
    if number is not None:
        source = db.session.get(EventSource, number)
    if source is None:
        source = db.session.scalar(select(EventSource).where(EventSource.name == str(ref)))
    if source is None:
        raise EventSourceError(f"event source {ref!r}: not found")
    return source


def list_sources() -> list[EventSource]:
    return list(db.session.scalars(select(EventSource).order_by(EventSource.id)))


def spec_of(source: EventSource) -> SourceSpec:
    """A plain copy for a consumer thread; the secret is decrypted here, not in the consumer."""
    secret = cipher().decrypt(source.secret) if source.secret else None
    return SourceSpec(source.id, source.name, source.kind, dict(source.config or {}), secret)


def consumed_sources() -> list[EventSource]:
    """Enabled sources the eventor consumes (every kind but webhook)."""
    kinds = [k for k, info in KINDS.items() if info.consumer is not None]
    return list(
        db.session.scalars(
            select(EventSource)
            .where(EventSource.enabled.is_(True), EventSource.kind.in_(kinds))
            .order_by(EventSource.id)
        )
    )


@dataclass
class RuleSpec:
    runtemplate_id: int
    name: str = ""
    conditions: list[dict[str, Any]] = field(default_factory=list)
    evidence: str | None = None
    operation: str = "any"
    env_mapping: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    enabled: bool = True
    admin: bool = False  # a global admin may map names the application does not declare


def _validate_rule(spec: RuleSpec) -> None:
    try:
        validate_rule_fields(spec.conditions, spec.env_mapping, spec.operation)
        RULE_PRIORITY.check(spec.priority)
    except (RuleError, BoundError) as exc:
        raise EventSourceError(str(exc)) from None


def create_rule(source: EventSource, spec: RuleSpec) -> EventRule:
    _validate_rule(spec)
    _check_target(source, spec)
    rule = EventRule(
        source_id=source.id,
        runtemplate_id=spec.runtemplate_id,
        name=spec.name.strip(),
        conditions=spec.conditions,
        evidence=spec.evidence or None,
        operation=spec.operation,
        env_mapping=spec.env_mapping,
        priority=spec.priority,
        enabled=spec.enabled,
    )
    db.session.add(rule)
    db.session.flush()
    return rule


def _check_target(source: EventSource, spec: RuleSpec) -> None:
    """The RunTemplate exists, is of the source's company (a global source may start any
    company's), and the mapped names are ones this actor may set for its app: declared fields,
    EVENT_* and the allow-list (security/env_names.py).

    The company rule is the service's, not only the portal's choice list: whoever writes the
    rule (portal, CLI, upstream import), a company's webhook must never start another company's
    job with values from its payload in that job's environment."""
    rt = db.session.get(RunTemplate, spec.runtemplate_id)
    if rt is None and source.company_id is None:
        raise EventSourceError(f"runtemplate {spec.runtemplate_id}: not found")
    if rt is None or not starts_for(source, rt):
        # A missing id and another company's answer alike: no other tenant's id shows.
        raise EventSourceError(
            f"runtemplate {spec.runtemplate_id}: not a RunTemplate of the company of source "
            f"{source.name!r} (a company's source starts only its own company's RunTemplates)"
        )
    names = [k for k in spec.env_mapping if not k.startswith("EVENT_")]
    declared = {f.keyname for f in rt.application.fields}
    try:
        env_names.check_all(
            names,
            what="env_mapping key",
            admin=spec.admin,
            declared=declared,
            allow=env_names.allowed(),
        )
    except env_names.EnvNameError as exc:
        raise EventSourceError(str(exc)) from None


def list_rules(source_id: int | None = None) -> list[EventRule]:
    query = select(EventRule).order_by(EventRule.source_id, EventRule.priority.desc(), EventRule.id)
    if source_id is not None:
        query = query.where(EventRule.source_id == source_id)
    return list(db.session.scalars(query))


@dataclass(frozen=True)
class RuleHit:
    rule: EventRule
    env: dict[str, str]


TEST_PAYLOAD_MAX = 1024 * 1024


def parse_test_payload(raw: str) -> Any:
    """A payload typed into the rule tester (portal or CLI); EventSourceError says what is wrong."""
    if len(raw) > TEST_PAYLOAD_MAX:
        raise EventSourceError(f"payload: larger than {TEST_PAYLOAD_MAX} characters")
    try:
        return parse_payload(raw.encode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise EventSourceError(f"payload: not valid JSON ({str(exc)[:200]})") from None


def read_test_body(source: EventSource, raw: str, content_type: str = "") -> tuple[Any, str]:
    """A body typed into the rule tester read the way its source reads one: (payload, read as)."""
    if source.kind != "webhook":
        return parse_test_payload(raw), "JSON"
    if len(raw) > TEST_PAYLOAD_MAX:
        raise EventSourceError(f"payload: larger than {TEST_PAYLOAD_MAX} characters")
    headers = {"Content-Type": content_type} if content_type else {}
    body = raw.encode("utf-8", errors="replace")
    reading = read_body(body, headers, expected_format(source.config))
    if reading.item.error:
        raise EventSourceError(f"payload: {reading.item.error}")
    return reading.item.payload, reading.read_as


def try_payload(source: EventSource, payload: Any) -> list[RuleHit]:
    """The enabled rules of the source that this payload would fire, with their environment."""
    facts = EventFacts(None, source.name, source.kind, payload)
    return [RuleHit(r, rule_env(r, facts)) for r in rules_of(source.id) if rule_matches(r, payload)]


def recent_events(
    source_id: int | None = None, status: str | None = None, limit: int = 50
) -> list[Event]:
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if source_id is not None:
        query = query.where(Event.source_id == source_id)
    if status:
        query = query.where(Event.status == status)
    return list(db.session.scalars(query))


def update_source(
    source: EventSource,
    *,
    name: str,
    config: dict[str, Any],
    enabled: bool,
    secret: str | None = None,
    clear_secret: bool = False,
    admin: bool = True,
) -> None:
    """Change a source; an empty `secret` keeps the stored one (write-only field). Only a
    global administrator (`admin`) may change the config of a kind with host reach."""
    name = name.strip()
    if not name:
        raise EventSourceError("name: must not be empty")
    taken = db.session.scalar(
        select(EventSource.id).where(EventSource.name == name, EventSource.id != source.id)
    )
    if taken is not None:
        raise EventSourceError(f"name {name!r}: another event source has it")
    try:
        merged = validate_config(source.kind, unmasked_config(config, dict(source.config or {})))
    except SourceConfigError as exc:
        raise EventSourceError(str(exc)) from None
    reach = KINDS[source.kind].admin_only
    if reach and not admin and merged != dict(source.config or {}):
        raise EventSourceError(
            f"config: only a global administrator may change a {source.kind} source's config "
            f"({reach})"
        )
    source.config = merged
    source.name, source.enabled = name, enabled
    if clear_secret:
        source.secret = None
    elif secret:
        source.secret = cipher().encrypt(secret)
    db.session.flush()


def set_signing(source: EventSource, *, require_timestamp: bool, tolerance: int) -> None:
    """Webhook signing: require the signed-time header, and the clock difference it allows."""
    try:
        SIGNATURE_TOLERANCE.check(tolerance)
    except BoundError as exc:
        raise EventSourceError(str(exc)) from None
    if require_timestamp and source.kind != "webhook":
        raise EventSourceError("require_timestamp: only webhook requests are signed")
    if require_timestamp and not source.secret:
        raise EventSourceError("require_timestamp: set a secret first (the signature's key)")
    source.require_timestamp, source.signature_tolerance = require_timestamp, tolerance
    db.session.flush()


def delete_source(source: EventSource) -> None:
    """The source goes with its rules and events (jobs keep running; they lose the link)."""
    db.session.delete(source)
    db.session.flush()


def update_rule(rule: EventRule, spec: RuleSpec) -> None:
    _validate_rule(spec)
    source = db.session.get(EventSource, rule.source_id)
    if source is None:
        raise EventSourceError(f"rule {rule.id}: its event source is gone")
    _check_target(source, spec)
    rule.runtemplate_id, rule.name = spec.runtemplate_id, spec.name.strip()
    rule.conditions, rule.env_mapping = spec.conditions, spec.env_mapping
    rule.evidence, rule.operation = spec.evidence or None, spec.operation
    rule.priority, rule.enabled = spec.priority, spec.enabled
    db.session.flush()


def delete_rule(rule: EventRule) -> None:
    db.session.delete(rule)
    db.session.flush()
