"""Claiming due jobs: one conditional UPDATE (SKIP LOCKED on PostgreSQL), then the overlap check.

The statements and the (read-only) overlap check live here; transitions.py runs the claim.

SQLite serialises writers (the caller holds BEGIN IMMEDIATE), so the UPDATE alone is atomic.
On PostgreSQL two executors may claim jobs of one RunTemplate at the same moment, each unable to
see the other's uncommitted claim; a transaction-scoped advisory lock per RunTemplate, taken
before the check, orders them so the second sees the first and gives its job back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import ScalarSelect

from multiflexi_web.db.raw import RawStatement, constants, driver
from multiflexi_web.models import FileUpload, Job, JobStatus, OverlapPolicy, RunTemplate, waiting
from multiflexi_web.models.base import UTCDateTime
from multiflexi_web.services.operations.paused import not_paused

LOCK_CLASS = 0x4D46  # advisory lock namespace: 'MF'
# The claim moves waiting() jobs to running: models/job.py derives WAITING (ix_job_waiting's
# statuses) from the job state table's claim transitions.
RUNNING = JobStatus.RUNNING.value


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    runtemplate_id: int
    executor: str
    env_override: str | None
    overlap_policy: str
    started_at: datetime
    has_uploads: bool = False  # input files uploaded with the job (Run now)
    retry_of: int | None = None  # the attempt this one replaces (fenced before it starts)
    # Its planned time as the driver returned it (SQLite: naive UTC text): the start lag metric
    planned: datetime | str | None = None
    # A scheduler slot's time, as the driver returned it: the job's MULTIFLEXI_SLOT_AT
    slot_at: datetime | str | None = None


# The statements are built and compiled once, with bound parameters (raw_sql.RawStatement):
# building or executing them through the ORM per claim cost more CPU than running them, and
# the executor claims hundreds of times a second. Constant lists are literals for the same
# reason (an IN list of bound parameters is re-rendered at every execution).
P_NOW = bindparam("p_now", type_=UTCDateTime())
P_WORKER = bindparam("p_worker", type_=Integer())
P_LIMIT = bindparam("p_limit", type_=Integer())


def _due_filter() -> list[ColumnElement[bool] | TextClause]:
    """Due, claimable jobs whose RunTemplate has no running job (unless it allows overlap)
    and that no pause covers (services/operations/paused.py)."""
    other = aliased(Job)
    no_running = ~exists().where(
        other.runtemplate_id == Job.runtemplate_id, other.status == RUNNING
    )
    lenient = select(RunTemplate.id).where(
        RunTemplate.id == Job.runtemplate_id,
        RunTemplate.overlap_policy.in_(constants(OverlapPolicy.ALLOW, OverlapPolicy.SKIP)),
    )
    return [
        waiting(),
        Job.scheduled_for <= P_NOW,
        or_(exists(lenient), no_running),
        not_paused(Job.runtemplate_id, Job.application_id, Job.company_id),
    ]


class _PickedOnce(ColumnElement[bool]):
    """`column IN (subquery)` whose subquery runs exactly once. On PostgreSQL a planner may
    choose a nested loop that runs `IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` again for each
    row: each run skips the rows this UPDATE changed and locks the next n, so one claim could
    take the whole queue (seen with the action outbox's claim). `= ANY(ARRAY(subquery))` is an
    InitPlan: evaluated once, before the UPDATE reads a row."""

    inherit_cache = False  # compiled once per dialect by RawStatement anyway
    type = Boolean()
    # A condition in its own right: otherwise SQLAlchemy renders `(… IN (…)) = 1` in a WHERE,
    # and SQLite then scans the waiting jobs testing each against the list instead of looking
    # the picked ids up by primary key.
    _is_implicitly_boolean = True

    def __init__(self, column: Any, subquery: ScalarSelect[Any]) -> None:
        self.column, self.subquery = column, subquery


@compiles(_PickedOnce)
def _picked_in(element: _PickedOnce, compiler: Any, **kw: Any) -> str:
    column, subquery = (
        compiler.process(element.column, **kw),
        compiler.process(element.subquery, **kw),
    )
    return f"{column} IN {subquery}"


@compiles(_PickedOnce, "postgresql")
def _picked_any_array(element: _PickedOnce, compiler: Any, **kw: Any) -> str:
    column, subquery = (
        compiler.process(element.column, **kw),
        compiler.process(element.subquery, **kw),
    )
    return f"{column} = ANY(ARRAY{subquery})"


@cache
def _due_stmt() -> Select[int]:
    return select(Job.id).where(*_due_filter()).limit(1)


def _claim_stmt() -> ReturningUpdate[
    int, int, str, str | None, str | None, bool, int | None, datetime, datetime | None
]:
    pick = (
        select(Job.id)
        .where(*_due_filter())
        .order_by(Job.scheduled_for, Job.id)
        .limit(P_LIMIT)
        .with_for_update(of=Job, skip_locked=True)
    )
    policy = select(RunTemplate.overlap_policy).where(RunTemplate.id == Job.runtemplate_id)
    # Asked here rather than per job: most jobs have no uploads and skip the query for them.
    # "job.id" spelt out: SQLite's RETURNING renders columns unqualified, and a bare `id` in
    # the subquery would be file_upload's own.
    uploads = exists().where(FileUpload.job_id == literal_column("job.id"))
    return (
        update(Job)
        .where(_PickedOnce(Job.id, pick.scalar_subquery()), waiting())
        .values(
            status=RUNNING,
            worker_id=P_WORKER,
            claimed_at=P_NOW,
            started_at=P_NOW,
            heartbeat_at=P_NOW,
        )
        .returning(
            Job.id,
            Job.runtemplate_id,
            Job.executor,
            Job.env_override,
            policy.scalar_subquery(),
            uploads,
            Job.retry_of_id,
            Job.scheduled_for,
            Job.slot_at,
        )
        .execution_options(synchronize_session=False)
    )


def anything_due(session: Session, now: datetime) -> bool:
    """A cheap read (no write lock): is there a job to claim?"""
    return session.connection().scalar(_due_stmt(), {"p_now": now}) is not None


CLAIM = RawStatement(_claim_stmt)
# PostgreSQL only: the RunTemplates' advisory locks, taken in the order of the (sorted) array,
# then, in a later statement (a snapshot taken after the locks were granted), their running jobs.
LOCK_ALL = RawStatement(
    lambda: text(
        "SELECT pg_advisory_xact_lock(:p_class, rt) FROM unnest(CAST(:p_rts AS integer[])) AS rt"
    ).bindparams(bindparam("p_class", LOCK_CLASS, type_=Integer()))
)
RUNNING_OF_ALL = RawStatement(
    lambda: select(Job.id, Job.runtemplate_id).where(
        Job.runtemplate_id == func.any(bindparam("p_rts", type_=ARRAY(Integer()))),
        Job.status == RUNNING,
    )
)


def claimed_jobs(rows: list[tuple[Any, ...]], now: datetime) -> list[ClaimedJob]:
    """The rows CLAIM returned (jobs.claim runs it: the job service changes statuses)."""
    return [
        ClaimedJob(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4] or OverlapPolicy.WAIT.value,
            now,
            bool(r[5]),
            r[6],
            r[7],
            r[8],
        )
        for r in rows
    ]


def overlapping(session: Session, claimed: list[ClaimedJob]) -> list[ClaimedJob]:
    """Claimed jobs that must not run now: another job of their RunTemplate runs (or won first)."""
    strict = [c for c in claimed if c.overlap_policy != OverlapPolicy.ALLOW.value]
    if not strict:
        return []
    rt_ids = sorted({c.runtemplate_id for c in strict})
    drv = driver(session)
    running: list[tuple[Any, ...]] = []
    if drv.is_pg:
        # Sorted: two claimers never wait on each other in a cycle. Inside the finisher's
        # pipeline both statements go in one round trip (the second still runs after the first).
        locked = drv.send(LOCK_ALL, {"p_rts": rt_ids})
        running = drv.rows(RUNNING_OF_ALL, {"p_rts": rt_ids})
        locked()  # its answer is in by now: closes its cursor
    else:
        # SQLite: the claim ran as the only writer, so it saw every committed running job and
        # skipped their templates; only two of this claim's own jobs can share a template.
        running = [(c.id, c.runtemplate_id) for c in strict]
    mine = {c.id for c in claimed}
    losers = []
    for c in strict:
        rivals = [jid for jid, rt in running if rt == c.runtemplate_id and jid != c.id]
        # A rival claimed elsewhere always wins; among my own claims the oldest id does.
        if any(jid not in mine or jid < c.id for jid in rivals):
            losers.append(c)
    return losers
