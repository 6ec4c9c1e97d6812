"""Read models of the event pages: visible sources, recent events, rules' RunTemplates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventSource, RunTemplate, User
from multiflexi_web.services.accounts import access
from multiflexi_web.services.events.process import jobs_of


def visible_sources(user: User) -> list[EventSource]:
    query = select(EventSource).order_by(EventSource.name)
    ids = access.visible_company_ids(user)
    if ids is not None:
        query = query.where(EventSource.company_id.in_(ids))
    return list(db.session.scalars(query))


def recent(source_ids: list[int], limit: int = 50) -> list[tuple[Event, list[Any]]]:
    """The newest events of these sources, each with the jobs it made."""
    if not source_ids:
        return []
    query = select(Event).where(Event.source_id.in_(source_ids))
    events = list(db.session.scalars(query.order_by(Event.id.desc()).limit(limit)))
    made = jobs_of([e.id for e in events])
    return [(e, made[e.id]) for e in events]


def runtemplates_by_id(ids: list[int]) -> dict[int, RunTemplate]:
    query = (
        select(RunTemplate)
        .where(RunTemplate.id.in_(ids))
        .options(selectinload(RunTemplate.company))
    )
    return {rt.id: rt for rt in db.session.scalars(query)}


def rule_targets(company_id: int | None) -> list[RunTemplate]:
    """RunTemplates a rule of a source may start: its company's (any, for a global source)."""
    query = select(RunTemplate).order_by(RunTemplate.name)
    if company_id is not None:
        query = query.where(RunTemplate.company_id == company_id)
    return list(db.session.scalars(query.limit(2000)))
