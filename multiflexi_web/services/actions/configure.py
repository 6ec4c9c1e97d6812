"""Choosing a RunTemplate's success and failure actions, and the global defaults per kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from multiflexi_web.actions import registry
from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate
from multiflexi_web.models.action import TRIGGERS, ActionConfig, ActionDefault
from multiflexi_web.models.bounds import parse_id
from multiflexi_web.security.env_names import NUL_REASON
from multiflexi_web.services.actions import mail_credential, values

MODES = ("success", "failure")


class ActionConfigError(ValueError):
    """A configuration was refused; the message names the field and the reason."""


@dataclass(frozen=True)
class When:
    """Besides the mode: the non-zero outcomes a failure action fires on, and its trigger."""

    on_timed_out: bool = True
    on_lost: bool = True
    on_cancelled: bool = False
    trigger: str = "always"
    after_failures: int = 1


def check(kind: str, mode: str, when: When, *, is_admin: bool) -> None:
    if kind not in registry.REGISTRY:
        raise ActionConfigError(f"kind {kind!r}: unknown (known: {', '.join(registry.names())})")
    if mode not in MODES:
        raise ActionConfigError(f"mode {mode!r}: must be success or failure")
    if when.trigger not in TRIGGERS:
        raise ActionConfigError(f"trigger {when.trigger!r}: must be one of {', '.join(TRIGGERS)}")
    if when.trigger == "recovery" and mode != "success":
        raise ActionConfigError("trigger recovery: only for success actions")
    if when.trigger == "failures" and (mode != "failure" or when.after_failures < 1):
        raise ActionConfigError("trigger failures: a failure action with after_failures >= 1")
    if registry.admin_only(kind) and not is_admin:
        raise ActionConfigError(
            f"kind {kind}: runs a command; only a global administrator may set it"
        )


def _check_given(kind: str, given: Mapping[str, str]) -> None:
    """Every key one of the kind's, no value with a NUL (PostgreSQL's JSON stores none), a
    number where the field is one (a port within 1-65535): refused when saved, not found out
    by a failing delivery (a port of 70000 was even taken as 4464 by getaddrinfo)."""
    fields = {f.key: f for f in registry.get(kind).fields}
    for key, value in given.items():
        field = fields.get(key)
        if field is None:
            raise ActionConfigError(
                f"{kind} config {key!r}: unknown (known: {', '.join(fields) or 'none'})"
            )
        if "\x00" in value:
            raise ActionConfigError(f"{kind} config {key!r}: {NUL_REASON}")
        if field.type == "integer" and value.strip():
            _check_number(kind, key, value.strip())


def _check_number(kind: str, key: str, value: str) -> None:
    number = parse_id(value, 10**12 - 1)
    if number is None:
        raise ActionConfigError(f"{kind} config {key!r}: {value!r} is not a whole number >= 0")
    if key.endswith("port") and not 1 <= number <= 65535:
        raise ActionConfigError(f"{kind} config {key!r}: {value} is not a port (1-65535)")


def _check_values(
    kind: str, given: Mapping[str, str], current: Mapping[str, Any], defaults: Mapping[str, Any]
) -> None:
    _check_given(kind, given)
    fields = registry.get(kind).fields
    own = {**current, **given}
    effective = values.merged(kind, defaults, own)
    for f in fields:
        if not f.required or f.default is not None or effective.get(f.key):
            continue
        if f.secret and defaults.get(f.key):
            # values.merged left the default's secret out: it goes only to the default's place.
            raise ActionConfigError(
                f"{kind} config {f.key!r}: required here, since this action is sent elsewhere "
                "than the global default's, which keeps its own"
            )
        raise ActionConfigError(f"{kind} config {f.key!r}: required")


def _check_credentials(kind: str, given: Mapping[str, str], company_id: int) -> None:
    """A chosen credential must be a mail credential of the RunTemplate's own company."""
    for key in mail_credential.credential_keys(kind):
        if given.get(key):
            try:
                mail_credential.check(db.session(), company_id, given[key])
            except mail_credential.MailCredentialError as exc:
                raise ActionConfigError(f"{kind} config {key!r}: {exc}") from None


def _check_targets(kind: str, given: Mapping[str, str], company_id: int) -> None:
    """A RunTemplate to start must be one of the configuring RunTemplate's company: refused
    when configured, not only when a job's action first runs (services/actions/effects.py).
    A missing id and another company's answer alike, so no id of another tenant shows."""
    for key in registry.keys_of_type(kind, "runtemplate"):
        raw = given.get(key, "").strip()
        if not raw:
            continue
        rt_id = parse_id(raw)
        target = db.session.get(RunTemplate, rt_id) if rt_id is not None else None
        if target is None or target.company_id != company_id:
            raise ActionConfigError(
                f"{kind} config {key!r}: {raw!r} is not a RunTemplate of this company"
            )


def put(
    rt: RunTemplate,
    mode: str,
    kind: str,
    given: Mapping[str, str],
    when: When = When(),
    *,
    is_admin: bool = False,
) -> ActionConfig:
    """Add or update the RunTemplate's `kind` action for `mode` (flushed)."""
    check(kind, mode, when, is_admin=is_admin)
    row = _find(rt.id, mode, kind)
    current = dict(row.config) if row else {}
    _check_values(kind, given, current, _defaults(kind))
    _check_credentials(kind, given, rt.company_id)
    _check_targets(kind, given, rt.company_id)
    sealed = values.seal(kind, given, current)
    if row is None:
        row = ActionConfig(
            runtemplate_id=rt.id, mode=mode, action=kind, position=_next_position(rt.id, mode)
        )
        db.session.add(row)
    row.config = {**current, **sealed}
    row.enabled = True
    row.on_timed_out, row.on_lost, row.on_cancelled = (
        when.on_timed_out,
        when.on_lost,
        when.on_cancelled,
    )
    row.trigger, row.after_failures = when.trigger, when.after_failures
    db.session.flush()
    return row


def remove(rt: RunTemplate, mode: str, kind: str) -> None:
    row = _find(rt.id, mode, kind)
    if row is None:
        raise ActionConfigError(f"RunTemplate {rt.id}: no {mode} action {kind}")
    db.session.delete(row)
    db.session.flush()


def put_default(kind: str, given: Mapping[str, str], *, is_admin: bool = False) -> ActionDefault:
    check(kind, "success", When(), is_admin=is_admin)
    _check_given(kind, given)
    # What belongs to one company is chosen per RunTemplate, never as every company's default.
    for field_type, what in (("credential", "a credential"), ("runtemplate", "a RunTemplate")):
        for key in registry.keys_of_type(kind, field_type):
            if given.get(key):
                raise ActionConfigError(
                    f"{kind} config {key!r}: {what} belongs to one company; "
                    "choose it per RunTemplate, not as a global default"
                )
    row = db.session.scalar(select(ActionDefault).where(ActionDefault.action == kind))
    if row is None:
        row = ActionDefault(action=kind, config={})
        db.session.add(row)
    current = dict(row.config or {})
    row.config = {**current, **values.seal(kind, given, current)}
    db.session.flush()
    return row


def for_runtemplate(rt_id: int) -> list[ActionConfig]:
    return list(
        db.session.scalars(
            select(ActionConfig)
            .where(ActionConfig.runtemplate_id == rt_id)
            .order_by(ActionConfig.mode.desc(), ActionConfig.position, ActionConfig.id)
        )
    )


def as_dict(row: ActionConfig) -> dict[str, Any]:
    """For CLI, API and pages: secrets masked."""
    return {
        "id": row.id,
        "kind": row.action,
        "mode": row.mode,
        "enabled": row.enabled,
        "config": values.masked(row.config or {}),
        "on_timed_out": row.on_timed_out,
        "on_lost": row.on_lost,
        "on_cancelled": row.on_cancelled,
        "trigger": row.trigger,
        "after_failures": row.after_failures,
    }


def _find(rt_id: int, mode: str, kind: str) -> ActionConfig | None:
    return db.session.scalar(
        select(ActionConfig).where(
            ActionConfig.runtemplate_id == rt_id,
            ActionConfig.mode == mode,
            ActionConfig.action == kind,
        )
    )


def _defaults(kind: str) -> dict[str, Any]:
    found = db.session.scalar(select(ActionDefault.config).where(ActionDefault.action == kind))
    return dict(found or {})


def _next_position(rt_id: int, mode: str) -> int:
    last = db.session.scalar(
        select(func.max(ActionConfig.position)).where(
            ActionConfig.runtemplate_id == rt_id, ActionConfig.mode == mode
        )
    )
    return (last or 0) + 1
