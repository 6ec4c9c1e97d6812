"""Backfill: one job per slot of a past time range, with the slot's time passed to the job.

Slots come from the scheduler's own schedule math (times.py), in [start, end). A slot that
already has a job (the scheduler's, or an earlier backfill's) is left alone: the unique index on
job(runtemplate_id, slot_at) is the last word, so a race with a scheduler cannot duplicate it.
The jobs are all due now, in slot order; the claim applies the template's overlap policy to
them like to any job (wait: one after another, skip: skipped while another runs, allow: side by
side).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, RunTemplate
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.environment import SLOT_AT
from multiflexi_web.services.scheduling.times import schedule_for

SCHEDULE_TYPE = "backfill"
_TINY = timedelta(microseconds=1)


class BackfillError(ValueError):
    """A backfill was refused; the message names the field and the reason."""


@dataclass(frozen=True)
class Slot:
    at: datetime
    job_id: int | None  # the job this slot already has, if any

    @property
    def is_new(self) -> bool:
        return self.job_id is None


@dataclass(frozen=True)
class Window:
    """Slots in [start, end), read in `zone` (a template without its own), at most `cap`."""

    start: datetime
    end: datetime
    now: datetime
    zone: str
    cap: int


def plan(rt: RunTemplate, w: Window) -> list[Slot]:
    """Every slot of the template in the window, each with the job it already has."""
    start, end, now, cap = w.start, w.end, w.now, w.cap
    if start >= end:
        raise BackfillError("from: must be before to")
    if end > now:
        raise BackfillError("to: must not be in the future (the scheduler runs those slots)")
    sched = schedule_for(rt, w.zone)
    if sched is None:
        raise BackfillError(f"runtemplate {rt.id}: runs manually only, so it has no slots")
    times: list[datetime] = []
    for at in sched.runs_after(start - _TINY):
        if at >= end:
            break
        if len(times) == cap:
            raise BackfillError(
                f"range: more than {cap} slots (MULTIFLEXI_BACKFILL_MAX_SLOTS); shorten it"
            )
        times.append(at)
    rows = db.session.execute(
        select(Job.slot_at, Job.id).where(
            Job.runtemplate_id == rt.id, Job.slot_at >= start, Job.slot_at < end
        )
    )
    existing = {at: job_id for at, job_id in rows}
    return [Slot(at, existing.get(at)) for at in times]


def run(rt: RunTemplate, w: Window, launched_by_id: int | None) -> list[Job]:
    """Create a job for every new slot of the plan, in slot order; returns them."""
    made = []
    for slot in plan(rt, w):
        if slot.is_new:
            job = _insert(rt, slot.at, launched_by_id)
            if job is not None:
                made.append(job)
    return made


def _insert(rt: RunTemplate, at: datetime, launched_by_id: int | None) -> Job | None:
    try:
        with db.session.begin_nested():
            return jobs.enqueue(
                rt,
                schedule_type=SCHEDULE_TYPE,
                slot_at=at,
                env_override={SLOT_AT: at.isoformat()},
                launched_by_id=launched_by_id,
            )
    except IntegrityError:
        return None  # a scheduler wrote this slot a moment ago
