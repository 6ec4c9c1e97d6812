"""Turning stored events into jobs, exactly once, whatever the number of eventors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Event,
    EventRule,
    EventSource,
    EventStatus,
    Job,
    RunTemplate,
    utcnow,
)
from multiflexi_web.services.events.rules import EventFacts, ordered, rule_env, rule_matches
from multiflexi_web.services.jobs import transitions as jobs

BATCH = 50
# What one bad event (a rule edited by hand into nonsense, a key that cannot encrypt) may raise
# without taking the batch down: it is marked failed with the reason; the others go on.
EVENT_ERRORS = (ValueError, RuntimeError, LookupError, TypeError, AttributeError)


@dataclass(frozen=True)
class Outcome:
    event_id: int
    matched_rules: tuple[int, ...]
    job_ids: tuple[int, ...]
    error: str | None = None
    source_id: int = 0  # for the eventor's intake metric, per source


@dataclass
class _Batch:
    """Sources, rules and RunTemplates loaded once per batch, not once per event."""

    sources: dict[int, EventSource] = field(default_factory=dict)
    rules: dict[int, list[EventRule]] = field(default_factory=dict)
    templates: dict[int, RunTemplate | None] = field(default_factory=dict)

    def rules_of(self, source_id: int) -> list[EventRule]:
        if source_id not in self.rules:
            self.rules[source_id] = rules_of(source_id)
        return self.rules[source_id]

    def template(self, rt_id: int) -> RunTemplate | None:
        if rt_id not in self.templates:
            self.templates[rt_id] = db.session.scalar(
                select(RunTemplate)
                .where(RunTemplate.id == rt_id)
                .options(selectinload(RunTemplate.application))
            )
        return self.templates[rt_id]


def process_batch(limit: int = BATCH, *, careful: bool = False) -> list[Outcome]:
    """Claim up to `limit` new events and make their jobs; the caller commits all of it at once.

    PostgreSQL skips rows another eventor holds; SQLite's BEGIN IMMEDIATE serialises writers. The
    conditional UPDATE is the last word either way, so no event is handled twice, and its jobs
    and its new status are committed together or not at all. The fast path has no savepoints;
    when one event fails, the batch is rolled back and redone with a savepoint per event.
    """
    write_session(db.session())
    query = select(Event.id).where(Event.status == EventStatus.NEW.value).order_by(Event.id)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = _claim(list(db.session.scalars(query.limit(limit))))
    if not claimed:
        return []
    batch = _Batch()
    events = list(db.session.scalars(select(Event).where(Event.id.in_(claimed)).order_by(Event.id)))
    if careful:
        return [_process_alone(ev, batch) for ev in events]
    try:
        return [_fire(ev, batch) for ev in events]
    except EVENT_ERRORS:
        db.session.rollback()
        return process_batch(limit, careful=True)


def _claim(ids: list[int]) -> list[int]:
    if not ids:
        return []
    result = db.session.execute(
        update(Event)
        .where(Event.id.in_(ids), Event.status == EventStatus.NEW.value)
        .values(status=EventStatus.PROCESSED.value, processed_at=utcnow())
        .returning(Event.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars())


def _process_alone(event: Event, batch: _Batch) -> Outcome:
    try:
        with db.session.begin_nested():
            return _fire(event, batch)
    except EVENT_ERRORS as exc:
        # The savepoint undid this event's jobs; it stays claimed and shows why.
        event.status, event.error = EventStatus.FAILED.value, f"{type(exc).__name__}: {exc}"
        return Outcome(event.id, (), (), event.error, event.source_id)


def _fire(event: Event, batch: _Batch) -> Outcome:
    source = batch.sources.get(event.source_id) or db.session.get(EventSource, event.source_id)
    if source is None:
        raise LookupError(f"event source {event.source_id} is gone")
    batch.sources[source.id] = source
    if not source.enabled:
        # Waiting when the source was disabled (a backlog, or stored before its consumer
        # stopped): disabling a source stops it acting, so it is closed with a note, no job.
        event.matched_rules = []
        event.error = f"source {source.name} is disabled, no job"
        return Outcome(event.id, (), (), event.error, event.source_id)
    facts = EventFacts(event.id, source.name, source.kind, event.payload)
    rules = batch.rules_of(source.id)
    matched = [r for r in rules if rule_matches(r, event.payload)]
    job_ids, notes = [], []
    if not matched:
        # Said on the event: "processed" alone reads as if something ran.
        notes.append(f"no rule matched ({len(rules)} enabled rule(s) on {source.name}), no job")
    for rule in matched:
        rt = batch.template(rule.runtemplate_id)
        if rt is None or not rt.active:
            notes.append(f"rule {rule.id}: RunTemplate {rule.runtemplate_id} is inactive, no job")
            continue
        if not starts_for(source, rt):
            # Rules are checked when written; this holds for one written before that check.
            notes.append(
                f"rule {rule.id}: RunTemplate {rt.id} belongs to another company than the "
                "source, no job"
            )
            continue
        env = rule_env(rule, facts)
        job = jobs.enqueue(rt, schedule_type="event", env_override=env, event_id=event.id)
        job_ids.append(job.id)
    event.matched_rules = [r.id for r in matched]
    event.error = "; ".join(notes) or None
    return Outcome(
        event.id, tuple(event.matched_rules), tuple(job_ids), event.error, event.source_id
    )


def starts_for(source: EventSource, rt: RunTemplate) -> bool:
    """Whether a rule of `source` may start `rt`: a company's source only its own company's
    RunTemplates (their jobs get values from the source's payloads), a global one any."""
    return source.company_id is None or source.company_id == rt.company_id


def rules_of(source_id: int) -> list[EventRule]:
    rules = db.session.scalars(
        select(EventRule).where(EventRule.source_id == source_id, EventRule.enabled.is_(True))
    ).all()
    return ordered(rules)


def jobs_of(event_ids: Sequence[int]) -> dict[int, list[Job]]:
    """The jobs each event created."""
    out: dict[int, list[Job]] = {i: [] for i in event_ids}
    if event_ids:
        query = select(Job).where(Job.event_id.in_(event_ids)).order_by(Job.id)
        for job in db.session.scalars(query):
            out[job.event_id or 0].append(job)
    return out


def has_pending() -> bool:
    found = db.session.scalar(
        select(Event.id).where(Event.status == EventStatus.NEW.value).limit(1)
    )
    return found is not None
