"""SLA: how each slot of a period ended, per RunTemplate and per day.

A slot is a run time of a template's schedule (times.py). Its outcome:
- fulfilled: its job succeeded and started at most `late_after` seconds after the slot;
- late: its job succeeded but started later, or it failed and an automatic retry succeeded;
- failed: its job (and every retry of it) failed, timed out or was lost;
- skipped: recorded as skipped (misfire or overlap policy) or cancelled before it ran;
- missed: the schedule had the slot but no job exists for it (nothing was running then);
- pending: its job (or a retry) is still waiting or running.
Slots are read through the unique index job(runtemplate_id, slot_at), retries through
ix_job_retry_of_id: a period of one template is an index range, however many jobs there are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import LIVE_STATUSES, Job, JobStatus, RunTemplate
from multiflexi_web.services.scheduling.times import Schedule, schedule_for

MAX_DAYS = 366
# Expected slots computed per report (schedule math is ~100 µs a slot), once per distinct
# schedule: beyond it a template's missed slots are not counted (shown as unknown) rather than
# stall the page.
EXPECT_BUDGET = 20_000
PROBLEMS_SHOWN = 500
RETRY_DEPTH = 20  # chains of automatic retries are followed this far (max_attempts is capped)
_FAILED = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.LOST})
_LIVE = frozenset(s.value for s in LIVE_STATUSES)


class Outcome(StrEnum):
    FULFILLED = "fulfilled"
    PENDING = "pending"
    SKIPPED = "skipped"
    LATE = "late"
    FAILED = "failed"
    MISSED = "missed"


# Worst last: a day's colour is its worst slot's outcome.
SEVERITY = {o: i for i, o in enumerate(Outcome)}
PROBLEMS = frozenset({Outcome.LATE, Outcome.FAILED, Outcome.MISSED, Outcome.SKIPPED})


class SlaError(ValueError):
    """A period or filter was refused; the message names the field."""


@dataclass(frozen=True)
class SlotResult:
    runtemplate_id: int
    slot_at: datetime
    outcome: Outcome
    job_id: int | None = None
    status: str | None = None


@dataclass
class TemplateSla:
    runtemplate_id: int
    name: str
    company_id: int
    counts: dict[Outcome, int] = field(default_factory=dict)
    days: dict[date, Outcome] = field(default_factory=dict)
    missed_unknown: bool = False

    def count_values(self) -> dict[str, int | None]:
        """Counts by outcome name; missed is None when it could not be counted."""
        out: dict[str, int | None] = {o.value: self.counts.get(o, 0) for o in Outcome}
        if self.missed_unknown:
            out[Outcome.MISSED.value] = None
        return out


@dataclass
class Report:
    start: datetime
    end: datetime
    days: list[date]
    templates: list[TemplateSla]
    totals: dict[Outcome, int]
    day_worst: dict[date, Outcome]
    problems: list[SlotResult]
    problems_more: int = 0


@dataclass(frozen=True)
class _Row:
    id: int
    runtemplate_id: int
    slot_at: datetime
    status: JobStatus
    started_at: datetime | None


def report(
    rts: Sequence[RunTemplate],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    zone: str,
    late_after: int,
) -> Report:
    """The SLA of these templates over [start, end), days in `zone`."""
    if start >= end:
        raise SlaError("from: must be before to")
    if end - start > timedelta(days=MAX_DAYS):
        raise SlaError(f"to: a period is at most {MAX_DAYS} days")
    rows = _slot_rows([rt.id for rt in rts], start, end)
    settled = _settle_retries([r for r in rows if r.status in _FAILED])
    by_rt: dict[int, list[_Row]] = {}
    for r in rows:
        by_rt.setdefault(r.runtemplate_id, []).append(r)
    slots = _Expected(start, min(end, now))
    results: list[SlotResult] = []
    per_rt: list[TemplateSla] = []
    for rt in rts:
        mine = by_rt.get(rt.id, [])
        found, unknown = _judge(rt, mine, settled, slots, zone, late_after)
        if not found and not unknown and schedule_for(rt, zone) is None:
            continue  # a manual template has no slots to judge
        results += found
        per_rt.append(_summary(rt, found, unknown, zone))
    return _assemble(start, end, zone, per_rt, results)


def templates(
    company_ids: set[int] | None, company: int | None = None, runtemplate: int | None = None
) -> list[RunTemplate]:
    """The templates a report covers: those of the visible companies (None: all), narrowed to
    one company or one template; another company's never appear."""
    q = select(RunTemplate).order_by(RunTemplate.company_id, RunTemplate.name, RunTemplate.id)
    if company_ids is not None:
        q = q.where(RunTemplate.company_id.in_(company_ids or {-1}))
    if company is not None:
        q = q.where(RunTemplate.company_id == company)
    if runtemplate is not None:
        q = q.where(RunTemplate.id == runtemplate)
    return list(db.session.scalars(q))


def _slot_rows(rt_ids: list[int], start: datetime, end: datetime) -> list[_Row]:
    if not rt_ids:
        return []
    q = select(Job.id, Job.runtemplate_id, Job.slot_at, Job.status, Job.started_at).where(
        Job.runtemplate_id.in_(rt_ids), Job.slot_at >= start, Job.slot_at < end
    )
    out = []
    for i, rt, at, st, began in db.session.execute(q):
        if at is not None:  # the WHERE on slot_at already excludes NULL
            out.append(_Row(i, rt, at, JobStatus(st), began))
    return out


def _settle_retries(failed: list[_Row]) -> dict[int, Outcome]:
    """For failed slot jobs, what their automatic retries came to: late (one succeeded),
    pending (one still waits or runs) or failed."""
    out: dict[int, Outcome] = {}
    origin = {r.id: r.id for r in failed}
    frontier = list(origin)
    for _ in range(RETRY_DEPTH):
        if not frontier:
            break
        found = db.session.execute(
            select(Job.id, Job.retry_of_id, Job.status).where(Job.retry_of_id.in_(frontier))
        ).all()
        frontier = []
        for job_id, parent, status in found:
            if parent is None:
                continue
            root = origin[parent]
            origin[job_id] = root
            if status == JobStatus.SUCCEEDED.value:
                out[root] = Outcome.LATE
            elif status in _LIVE and out.get(root) is not Outcome.LATE:
                out[root] = Outcome.PENDING
            frontier.append(job_id)
    return out


def _outcome(row: _Row, settled: dict[int, Outcome], late_after: int) -> Outcome:
    if row.status is JobStatus.SUCCEEDED:
        began = row.started_at or row.slot_at
        on_time = began - row.slot_at <= timedelta(seconds=late_after)
        return Outcome.FULFILLED if on_time else Outcome.LATE
    if row.status in _FAILED:
        return settled.get(row.id, Outcome.FAILED)
    if row.status in (JobStatus.SKIPPED, JobStatus.CANCELLED):
        return Outcome.SKIPPED
    return Outcome.PENDING


def _judge(
    rt: RunTemplate,
    rows: list[_Row],
    settled: dict[int, Outcome],
    slots: _Expected,
    zone: str,
    late_after: int,
) -> tuple[list[SlotResult], bool]:
    """The template's slot results (missed ones included) and whether missed is unknown."""
    results = [
        SlotResult(rt.id, r.slot_at, _outcome(r, settled, late_after), r.id, r.status.value)
        for r in rows
    ]
    sched = schedule_for(rt, zone) if rt.active else None
    expected = slots.of(sched) if sched is not None else []
    if expected is None:
        return results, True
    have = {r.slot_at for r in rows}
    born = rt.created_at
    results += [
        SlotResult(rt.id, at, Outcome.MISSED) for at in expected if at >= born and at not in have
    ]
    return results, False


class _Expected:
    """Each schedule's slots in [start, until), computed once per report: templates sharing
    a schedule (every hourly one) share the list; None once the report's budget ran out."""

    def __init__(self, start: datetime, until: datetime) -> None:
        self.start, self.until = start, until
        self.budget = EXPECT_BUDGET
        self.known: dict[Schedule, list[datetime] | None] = {}

    def of(self, sched: Schedule) -> list[datetime] | None:
        if sched not in self.known:
            self.known[sched] = self._compute(sched)
        return self.known[sched]

    def _compute(self, sched: Schedule) -> list[datetime] | None:
        out: list[datetime] = []
        if self.start >= self.until:
            return out
        for at in sched.runs_after(self.start - timedelta(microseconds=1)):
            if at >= self.until:
                return out
            if self.budget <= 0:
                return None
            self.budget -= 1
            out.append(at)
        return out  # pragma: no cover - runs_after never ends


def _summary(rt: RunTemplate, found: list[SlotResult], unknown: bool, zone: str) -> TemplateSla:
    tz = ZoneInfo(zone)
    days: dict[date, Outcome] = {}
    for r in found:
        day = r.slot_at.astimezone(tz).date()
        if day not in days or SEVERITY[r.outcome] > SEVERITY[days[day]]:
            days[day] = r.outcome
    counts = Counter(r.outcome for r in found)
    return TemplateSla(rt.id, rt.name, rt.company_id, dict(counts), days, unknown)


def _assemble(
    start: datetime, end: datetime, zone: str, per_rt: list[TemplateSla], results: list[SlotResult]
) -> Report:
    tz = ZoneInfo(zone)
    first, last = start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz)
    days = [first + timedelta(days=i) for i in range((last.date() - first).days + 1)]
    totals: Counter[Outcome] = Counter()
    worst: dict[date, Outcome] = {}
    for t in per_rt:
        totals.update(t.counts)
        for day, o in t.days.items():
            if day not in worst or SEVERITY[o] > SEVERITY[worst[day]]:
                worst[day] = o
    problems = sorted(
        (r for r in results if r.outcome in PROBLEMS), key=lambda r: (r.slot_at, r.runtemplate_id)
    )
    more = max(0, len(problems) - PROBLEMS_SHOWN)
    return Report(start, end, days, per_rt, dict(totals), worst, problems[:PROBLEMS_SHOWN], more)


def as_json(rep: Report, late_after: int) -> dict[str, Any]:
    """The report as plain JSON (the CLI's and the API's)."""
    return {
        "from": rep.start.isoformat(),
        "to": rep.end.isoformat(),
        "late_after_seconds": late_after,
        "totals": {o.value: rep.totals.get(o, 0) for o in Outcome},
        "days": {d.isoformat(): rep.day_worst[d].value for d in rep.days if d in rep.day_worst},
        "templates": [
            {
                "runtemplate_id": t.runtemplate_id,
                "name": t.name,
                "company_id": t.company_id,
                "counts": t.count_values(),
                "missed_unknown": t.missed_unknown,
                "days": {d.isoformat(): o.value for d, o in sorted(t.days.items())},
            }
            for t in rep.templates
        ],
        "problems": [
            {
                "runtemplate_id": p.runtemplate_id,
                "slot_at": p.slot_at.isoformat(),
                "outcome": p.outcome.value,
                "job_id": p.job_id,
                "status": p.status,
            }
            for p in rep.problems
        ],
        "problems_more": rep.problems_more,
    }
