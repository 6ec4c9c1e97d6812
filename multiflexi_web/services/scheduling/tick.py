"""The scheduler's unit of work: due RunTemplates get one job per slot and their next run time.

Due templates are found with one query on the `(active, next_run_at)` index (locked with
SKIP LOCKED on PostgreSQL so concurrent schedulers split the work). The slots of each distinct
schedule are computed once per batch; jobs and next run times are then written set-based
(slots.py). The unique index on job(runtemplate_id, slot_at) is the last word: a slot another
 scheduler already wrote is silently left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import String, cast, func, select, true

from multiflexi_web.extensions import db
from multiflexi_web.models import Interval, JobStatus, MisfirePolicy, RunTemplate
from multiflexi_web.services.operations.paused import not_paused
from multiflexi_web.services.scheduling import slots as slot_jobs
from multiflexi_web.services.scheduling.times import (
    INTERVAL_NAMES,
    Schedule,
    ScheduleError,
    schedule_of,
)

log = logging.getLogger("multiflexi.scheduler")

# A slot enqueued within this time after it was due is on time, not a misfire.
MISFIRE_GRACE = timedelta(seconds=60)
# At most this many missed slots of one template are written as skipped jobs per catch-up.
SKIP_RECORD_CAP = 100
MISSED = "slot missed while no scheduler ran (misfire policy: skip)"
OVER_CATCHUP = "more missed slots than MULTIFLEXI_MAX_CATCHUP (misfire policy: all)"


@dataclass(frozen=True)
class Run:
    """One slot's job: its run time (also its slot key), status and why, when skipped."""

    at: datetime
    status: JobStatus = JobStatus.SCHEDULED
    reason: str | None = None


@dataclass(frozen=True)
class Plan:
    runs: tuple[Run, ...]
    next_run_at: datetime | None

    @property
    def last_slot_at(self) -> datetime | None:
        return self.runs[-1].at if self.runs else None


@dataclass(frozen=True)
class DueRow:
    """What a due template's plan depends on (templates that share it share the plan)."""

    interval: str
    cron: str | None
    delay: int
    timezone: str | None
    misfire_policy: str
    next_run_at: datetime


@dataclass
class BatchResult:
    templates: int = 0
    inserted: int = 0
    planned_skips: int = 0
    invalid: list[int] = field(default_factory=list)
    # (seconds from slot time to this batch's `now`, how many jobs): the scheduler's slot lag
    lags: list[tuple[float, int]] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.templates += other.templates
        self.inserted += other.inserted
        self.planned_skips += other.planned_skips
        self.invalid += other.invalid
        self.lags += other.lags


def plan_slots(
    sched: Schedule | None, misfire: str, due_at: datetime, now: datetime, max_catchup: int
) -> Plan:
    """What to enqueue for a template due at `due_at`, and its next run time after `now`."""
    if sched is None:
        return Plan((), None)
    following = next(sched.runs_after(due_at))
    if following > now:  # the usual case: exactly one slot is due
        return Plan(decide([due_at], misfire, now, max_catchup), following)
    # Only the slots the policy will write are looked up, however long the downtime was.
    lookback = 1 if misfire == MisfirePolicy.LATEST.value else max(SKIP_RECORD_CAP, max_catchup)
    missed = sched.runs_between(due_at, now, lookback)
    return Plan(decide(missed, misfire, now, max_catchup), next(sched.runs_after(now)))


def decide(due: list[datetime], misfire: str, now: datetime, max_catchup: int) -> tuple[Run, ...]:
    """Apply the misfire policy to the due run times (ascending, at least one)."""
    latest = due[-1]
    if misfire == MisfirePolicy.ALL.value:
        kept = due[-max_catchup:]
        dropped = [Run(t, JobStatus.SKIPPED, OVER_CATCHUP) for t in due[: len(due) - len(kept)]]
        return (*dropped, *(Run(t) for t in kept))
    if misfire == MisfirePolicy.SKIP.value:
        skipped = [Run(t, JobStatus.SKIPPED, MISSED) for t in due[:-1]]
        on_time = now - latest <= MISFIRE_GRACE
        return (*skipped, Run(latest) if on_time else Run(latest, JobStatus.SKIPPED, MISSED))
    return (Run(latest),)  # latest (the default): run the most recent slot once


def anything_due(now: datetime) -> bool:
    """A cheap read without a write lock: is any active template due?"""
    # Ordered, so the plan is always a walk along ix_runtemplate_due from its low end (stale
    # statistics could otherwise pick a full scan) and dead entries get marked on the way.
    q = select(RunTemplate.next_run_at).where(_due(now)).order_by(RunTemplate.next_run_at).limit(1)
    return db.session.scalar(q) is not None


def _due(now: datetime):  # type: ignore[no-untyped-def]
    # `active = true` (not IS TRUE) so PostgreSQL can use ix_runtemplate_due. A paused
    # template stays due (next_run_at is left alone): its missed slots meet the misfire policy
    # at the first tick after the resume, so a long pause never bursts into a backlog.
    return (
        (RunTemplate.active == true())
        & (RunTemplate.next_run_at <= now)
        & not_paused(RunTemplate.id, RunTemplate.application_id, RunTemplate.company_id)
    )


def due_groups(now: datetime, limit: int) -> dict[DueRow, list[int]]:
    """Up to `limit` due templates, oldest first, grouped by what their plan depends on.

    Rows another scheduler holds are skipped. The database groups them, so a batch comes back
    as a few rows with a list of ids each (a Python object per template cost ~5 µs).
    """
    key = (
        RunTemplate.interval,
        RunTemplate.cron,
        RunTemplate.delay,
        RunTemplate.timezone,
        RunTemplate.misfire_policy,
        RunTemplate.next_run_at,
    )
    due = select(RunTemplate.id, *key).where(_due(now)).order_by(RunTemplate.next_run_at)
    due = due.limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=RunTemplate)
    sub = due.subquery()
    cols = [sub.c[c.key] for c in key]
    ids = func.aggregate_strings(cast(sub.c.id, String), ",")
    q = select(*cols, ids).group_by(*cols).order_by(cols[-1], func.min(sub.c.id))
    return {
        DueRow(*row[:-1]): sorted(map(int, row[-1].split(",")))
        for row in db.session.connection().execute(q)
    }


def schedule_due(
    now: datetime,
    *,
    limit: int,
    default_tz: str,
    max_catchup: int,
    bulk: bool | None = None,
) -> BatchResult:
    """One batch: lock up to `limit` due templates, write their jobs and next runs (no commit).

    `bulk` None picks set-based SQL for larger batches and the job service for small ones.
    """
    groups = due_groups(now, limit)
    result = BatchResult(templates=sum(len(ids) for ids in groups.values()))
    if not groups:
        return result
    # Templates with the same schedule, policy and due time share one plan: cron math once.
    planned = [
        (ids, k, _plan_row(k, ids, now, default_tz, max_catchup)) for k, ids in groups.items()
    ]
    for ids, row, plan in planned:
        if plan.next_run_at is None and not plan.runs and _schedulable(row):
            result.invalid += ids
        result.planned_skips += len(ids) * sum(r.status is JobStatus.SKIPPED for r in plan.runs)
        result.lags += [
            ((now - r.at).total_seconds(), len(ids))
            for r in plan.runs
            if r.status is JobStatus.SCHEDULED
        ]
    use_bulk = bulk if bulk is not None else result.templates >= slot_jobs.BULK_MIN
    writer = slot_jobs.insert_bulk if use_bulk else slot_jobs.insert_each
    result.inserted = writer([(ids, _type_name(r.interval), p.runs) for ids, r, p in planned], now)
    slot_jobs.store_next_runs([(ids, p.next_run_at, p.last_slot_at) for ids, _, p in planned])
    return result


def _plan_row(
    row: DueRow, ids: list[int], now: datetime, default_tz: str, max_catchup: int
) -> Plan:
    try:
        sched = schedule_of(row.interval, row.cron, row.delay or 0, row.timezone or default_tz)
        return plan_slots(sched, row.misfire_policy, row.next_run_at, now, max_catchup)
    except (ScheduleError, ValueError, ZoneInfoNotFoundError) as exc:
        # A schedule stored around validation: park it (no next run) rather than fail each tick.
        log.warning("action=schedule_invalid runtemplates=%s error=%s", _short(ids), exc)
        return Plan((), None)


def _short(ids: list[int]) -> str:
    return ",".join(map(str, ids[:5])) + (f",... ({len(ids)})" if len(ids) > 5 else "")


def _schedulable(row: DueRow) -> bool:
    return row.interval != Interval.MANUAL.value


def _type_name(interval: str) -> str:
    try:
        return INTERVAL_NAMES[Interval(interval)]
    except ValueError:
        return "scheduled"
