"""Event rule pages (create, edit, delete) and the access checks the event pages share."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from multiflexi_web.models import EventRule, EventSource, Role, RunTemplate
from multiflexi_web.models.bounds import RULE_PRIORITY, BoundError, parse_id
from multiflexi_web.services.accounts import access
from multiflexi_web.services.events import catalog
from multiflexi_web.services.events.catalog import EventSourceError, RuleSpec
from multiflexi_web.services.events.rules import (
    OPERATIONS,
    RuleError,
    format_conditions,
    parse_conditions,
    parse_env_mapping,
)
from multiflexi_web.views._change import Audit, Page, commit_change, flash_redirect
from multiflexi_web.views._helpers import field_errors, flag, get_or_404, me, text
from multiflexi_web.views.events.queries import rule_targets

RULE_FIELDS = ("runtemplate", "name", "priority", "conditions", "env_mapping", "operation")


def source_for(source_id: int, minimum: Role = Role.VIEWER) -> EventSource:
    """The source when the user may see it (manage it, with ADMIN); a global one is admins' only."""
    source = get_or_404(EventSource, source_id)
    if source.company_id is None:
        if not me().is_admin:
            abort(404)
    else:
        access.require_role(me(), source.company_id, minimum)
    return source


def can_manage(company_id: int | None) -> bool:
    if company_id is None:
        return me().is_admin
    return access.has_role(me(), company_id, Role.ADMIN)


def create_rule(source_id: int) -> Page:
    src = source_for(source_id, Role.ADMIN)
    if request.method == "GET":
        return _rule_form(src, None, {"operation": "any", "enabled": True, "priority": 0}, {})
    return commit_change(
        lambda: catalog.create_rule(src, _rule_spec(src)),
        lambda r: Audit("create", "event_rule", r.id, f"event rule {r.id} on {src.name} created"),
        lambda _: flash_redirect("Rule created.", "events.source", source_id=src.id),
        lambda exc: _rule_refused(src, None, exc),
        (EventSourceError, RuleError),
    )


def edit_rule(rule_id: int) -> Page:
    rule = get_or_404(EventRule, rule_id)
    src = source_for(rule.source_id, Role.ADMIN)
    if request.method == "GET":
        form = {
            "name": rule.name,
            "runtemplate": rule.runtemplate_id,
            "priority": rule.priority,
            "evidence": rule.evidence or "",
            "operation": rule.operation,
            "enabled": rule.enabled,
            "conditions": format_conditions(rule.conditions),
            "env_mapping": "\n".join(f"{k}={v}" for k, v in rule.env_mapping.items()),
        }
        return _rule_form(src, rule, form, {})
    return commit_change(
        lambda: catalog.update_rule(rule, _rule_spec(src)),
        lambda _: Audit("update", "event_rule", rule.id, f"event rule {rule.id} edited"),
        lambda _: flash_redirect("Rule saved.", "events.source", source_id=src.id),
        lambda exc: _rule_refused(src, rule, exc),
        (EventSourceError, RuleError),
    )


def delete_rule(rule_id: int) -> Page:
    rule = get_or_404(EventRule, rule_id)
    src = source_for(rule.source_id, Role.ADMIN)
    return commit_change(
        lambda: catalog.delete_rule(rule),
        lambda _: Audit("delete", "event_rule", rule_id, f"event rule {rule_id} deleted"),
        lambda _: flash_redirect("Rule deleted.", "events.source", source_id=src.id),
    )


def _rule_refused(src: EventSource, rule: EventRule | None, exc: ValueError) -> tuple[str, int]:
    return _rule_form(src, rule, request.form, field_errors(exc, RULE_FIELDS)), 400


def _rule_spec(src: EventSource) -> RuleSpec:
    rt_id = parse_id(text("runtemplate"))
    if rt_id is None:
        raise EventSourceError("runtemplate: choose one of the source's company")
    # Whether it is one the source may start, the service decides (catalog._check_target).
    try:
        priority = RULE_PRIORITY.parse(text("priority", 40) or "0")
    except BoundError as exc:
        raise EventSourceError(str(exc)) from None
    return RuleSpec(
        rt_id,
        text("name"),
        parse_conditions(request.form.get("conditions", "")),
        text("evidence", 128) or None,
        text("operation", 16) or "any",
        parse_env_mapping(request.form.get("env_mapping", "")),
        priority,
        flag("enabled"),
        admin=me().is_admin,
    )


def _targets(src: EventSource) -> list[RunTemplate]:
    return rule_targets(src.company_id)


def _rule_form(src: EventSource, rule: EventRule | None, form: Any, errors: dict[str, str]) -> str:
    return render_template(
        "events/rule_form.html",
        source=src,
        rule=rule,
        form=form,
        errors=errors,
        targets=_targets(src),
        operations=OPERATIONS,
    )
