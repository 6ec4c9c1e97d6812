"""Event sources, rules and received events over the API (read-only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import defer

from multiflexi_web.api.v1 import access
from multiflexi_web.api.v1 import serialize as out
from multiflexi_web.api.v1.blueprint import bp
from multiflexi_web.api.v1.errors import ApiError
from multiflexi_web.api.v1.params import int_arg, page
from multiflexi_web.models import Event, EventRule, EventSource


def _source(source_id: int) -> EventSource:
    """A source the caller may see: its company's, or a global one for an unscoped admin."""
    src = access.get(EventSource, source_id)
    if src.company_id is None:
        if access.visible() is not None:
            raise ApiError(404, "")
    else:
        access.require(src.company_id)
    return src


@bp.get("/event-sources")
def event_sources() -> dict[str, Any]:
    query = access.scoped(select(EventSource), EventSource.company_id)  # type: ignore[arg-type]
    return page(query, EventSource.id, out.event_source)


@bp.get("/event-sources/<int:source_id>")
def event_source(source_id: int) -> dict[str, Any]:
    return out.event_source(_source(source_id), detail=True)


@bp.get("/event-rules")
def event_rules() -> dict[str, Any]:
    query = select(EventRule).join(EventSource, EventSource.id == EventRule.source_id)
    query = access.scoped(query, EventSource.company_id)  # type: ignore[arg-type]
    source_id = int_arg("source")
    if source_id is not None:
        query = query.where(EventRule.source_id == source_id)
    return page(query, EventRule.id, out.event_rule)


@bp.get("/event-rules/<int:rule_id>")
def event_rule(rule_id: int) -> dict[str, Any]:
    rule = access.get(EventRule, rule_id)
    _source(rule.source_id)
    return out.event_rule(rule)


@bp.get("/events")
def events() -> dict[str, Any]:
    query = select(Event).options(defer(Event.payload), defer(Event.raw_body))
    query = query.join(EventSource, EventSource.id == Event.source_id)
    query = access.scoped(query, EventSource.company_id)  # type: ignore[arg-type]
    source_id = int_arg("source")
    if source_id is not None:
        query = query.where(Event.source_id == source_id)
    return page(query, Event.id, out.event)


@bp.get("/events/<int:event_id>")
def event(event_id: int) -> dict[str, Any]:
    found = access.get(Event, event_id)
    _source(found.source_id)
    return out.event(found, detail=True)
