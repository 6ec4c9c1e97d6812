"""Event rule pages (create, edit, delete) and the access checks the event pages share."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.models import EventRule, EventSource, Role, RunTemplate
from multiflexi_web.services.accounts import access
from multiflexi_web.services.audit import record
from multiflexi_web.services.events import catalog
from multiflexi_web.services.events.catalog import EventSourceError, RuleSpec
from multiflexi_web.services.events.rules import (
    OPERATIONS,
    RuleError,
    format_conditions,
    parse_conditions,
    parse_env_mapping,
)
from multiflexi_web.views._helpers import field_errors, flag, get_or_404, me, text

RULE_FIELDS = ("runtemplate", "name", "priority", "conditions", "env_mapping", "operation")
Page = str | tuple[str, int] | Response


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
    try:
        rule = catalog.create_rule(src, _rule_spec(src))
    except (EventSourceError, RuleError) as exc:
        db.session.rollback()
        return _rule_form(src, None, request.form, field_errors(exc, RULE_FIELDS)), 400
    record("create", "event_rule", rule.id, f"event rule {rule.id} on {src.name} created")
    db.session.commit()
    flash("Rule created.", "info")
    return redirect(url_for("events.source", source_id=src.id))


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
    try:
        catalog.update_rule(rule, _rule_spec(src))
    except (EventSourceError, RuleError) as exc:
        db.session.rollback()
        return _rule_form(src, rule, request.form, field_errors(exc, RULE_FIELDS)), 400
    record("update", "event_rule", rule.id, f"event rule {rule.id} edited")
    db.session.commit()
    flash("Rule saved.", "info")
    return redirect(url_for("events.source", source_id=src.id))


def delete_rule(rule_id: int) -> Response:
    rule = get_or_404(EventRule, rule_id)
    src = source_for(rule.source_id, Role.ADMIN)
    catalog.delete_rule(rule)
    record("delete", "event_rule", rule_id, f"event rule {rule_id} deleted")
    db.session.commit()
    flash("Rule deleted.", "info")
    return redirect(url_for("events.source", source_id=src.id))


def _rule_spec(src: EventSource) -> RuleSpec:
    rt_id = int(text("runtemplate")) if text("runtemplate").isdigit() else 0
    if not any(rt.id == rt_id for rt in _targets(src)):
        raise EventSourceError("runtemplate: choose one of the source's company")
    priority = text("priority", 12)
    if not priority.lstrip("-").isdigit():
        raise EventSourceError("priority: a whole number")
    return RuleSpec(
        rt_id,
        text("name"),
        parse_conditions(request.form.get("conditions", "")),
        text("evidence", 128) or None,
        text("operation", 16) or "any",
        parse_env_mapping(request.form.get("env_mapping", "")),
        int(priority),
        flag("enabled"),
        admin=me().is_admin,
    )


def _targets(src: EventSource) -> list[RunTemplate]:
    """RunTemplates a rule of this source may start: its company's (any, for a global one)."""
    query = select(RunTemplate).order_by(RunTemplate.name)
    if src.company_id is not None:
        query = query.where(RunTemplate.company_id == src.company_id)
    return list(db.session.scalars(query.limit(2000)))


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
