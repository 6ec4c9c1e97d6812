"""Turning stored events into jobs, exactly once, whatever the number of eventors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from multiflexi_web.database import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import Event, EventRule, EventSource, EventStatus, Job, RunTemplate, utcnow
from multiflexi_web.services import jobs
from multiflexi_web.services.events.rules import EventFacts, ordered, rule_env, rule_matches

BATCH = 50


@dataclass(frozen=True)
class Outcome:
    event_id: int
    matched_rules: tuple[int, ...]
    job_ids: tuple[int, ...]
    error: str | None = None


def process_batch(limit: int = BATCH) -> list[Outcome]:
    """Claim up to `limit` new events and make their jobs; the caller commits all of it at once.

    PostgreSQL skips rows another eventor holds; SQLite's BEGIN IMMEDIATE serialises writers. The
    conditional UPDATE per event is the last word either way, so no event is handled twice.
    """
    write_session(db.session)
    query = select(Event).where(Event.status == EventStatus.NEW.value).order_by(Event.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [o for o in (_process(ev) for ev in db.session.scalars(query).all()) if o is not None]


def _claim(event: Event) -> bool:
    result = db.session.execute(
        update(Event)
        .where(Event.id == event.id, Event.status == EventStatus.NEW.value)
        .values(status=EventStatus.PROCESSED.value, processed_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _process(event: Event) -> Outcome | None:
    if not _claim(event):
        return None
    try:
        with db.session.begin_nested():
            return _fire(event)
    except (ValueError, RuntimeError, LookupError) as exc:
        # The savepoint undid this event's jobs; it stays claimed and shows why.
        event.status, event.error = EventStatus.FAILED.value, f"{type(exc).__name__}: {exc}"
        return Outcome(event.id, (), (), event.error)


def _fire(event: Event) -> Outcome:
    source = db.session.get(EventSource, event.source_id)
    assert source is not None  # noqa: S101 - the foreign key guarantees it
    facts = EventFacts(event.id, source.name, source.kind, event.payload)
    matched = [r for r in rules_of(source.id) if rule_matches(r, event.payload)]
    job_ids, notes = [], []
    for rule in matched:
        rt = db.session.get(RunTemplate, rule.runtemplate_id)
        if rt is None or not rt.active:
            notes.append(f"rule {rule.id}: RunTemplate {rule.runtemplate_id} is inactive, no job made")
            continue
        job = jobs.enqueue(rt, schedule_type="event", env_override=rule_env(rule, facts), event_id=event.id)
        job_ids.append(job.id)
    event.matched_rules = [r.id for r in matched]
    event.error = "; ".join(notes) or None
    return Outcome(event.id, tuple(event.matched_rules), tuple(job_ids), event.error)


def rules_of(source_id: int) -> list[EventRule]:
    rules = db.session.scalars(
        select(EventRule).where(EventRule.source_id == source_id, EventRule.enabled.is_(True))
    ).all()
    return ordered(rules)


def jobs_of(event_ids: Sequence[int]) -> dict[int, list[Job]]:
    """The jobs each event created."""
    out: dict[int, list[Job]] = {i: [] for i in event_ids}
    if event_ids:
        for job in db.session.scalars(select(Job).where(Job.event_id.in_(event_ids)).order_by(Job.id)):
            out[job.event_id or 0].append(job)
    return out


def pending_count() -> int:
    return len(db.session.scalars(
        select(Event.id).where(Event.status == EventStatus.NEW.value).limit(1)
    ).all())
