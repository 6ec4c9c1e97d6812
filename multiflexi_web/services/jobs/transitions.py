"""The job service: the only code that creates jobs and changes their status.

Every transition is a conditional UPDATE on the expected status, so of two processes racing
for the same job exactly one wins; terminal statuses never change again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, inspect, select, update
from sqlalchemy.orm import Session, aliased

from multiflexi_web.db import doorbell
from multiflexi_web.db.engine import write_session
from multiflexi_web.db.raw import Driver, driver
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate, Worker, utcnow
from multiflexi_web.models.job import Move, created, move
from multiflexi_web.services.actions import outbox
from multiflexi_web.services.jobs import claim as claiming
from multiflexi_web.services.jobs import onetime
from multiflexi_web.services.jobs import statements as job_sql
from multiflexi_web.services.jobs.claim import ClaimedJob
from multiflexi_web.services.jobs.new_jobs import NOTIFY_CHANNEL as NOTIFY_CHANNEL
from multiflexi_web.services.jobs.new_jobs import insert_committed, insert_jobs

RUNNING = JobStatus.RUNNING.value
FAILURES = {JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.LOST, JobStatus.CANCELLED}
ORPHAN_GRACE = timedelta(seconds=10)

# Each change's WHERE on the status and the status it sets, from the job state table
# (models/job.py TRANSITIONS), built once: a change the table lacks fails at import.
_BY = "jobs.transitions."
_CREATED = frozenset(created(_BY + "enqueue"))
_SKIP_CLAIMED = move(_BY + "claim", JobStatus.SKIPPED)
_RELEASE = move(_BY + "release", JobStatus.SCHEDULED)
_BLOCK = move(_BY + "block", JobStatus.BLOCKED)
_CANCEL = move(_BY + "cancel", JobStatus.CANCELLED)
_IS_RUNNING = Job.status == RUNNING  # the running job's own fields (no status change)


class JobError(ValueError):
    """A job operation was refused; the message names the job and the reason."""


def enqueue(
    rt: RunTemplate,
    *,
    schedule_type: str,
    when: datetime | None = None,
    env_override: dict[str, str] | None = None,
    secret_keys: Iterable[str] = (),
    slot_at: datetime | None = None,
    launched_by_id: int | None = None,
    event_id: int | None = None,
    retry_of: Job | None = None,
    status: JobStatus = JobStatus.SCHEDULED,
) -> Job:
    """Add a job for a RunTemplate (flushed, not committed); executors are woken on commit."""
    [job] = enqueue_many(
        rt,
        1,
        schedule_type=schedule_type,
        when=when,
        env_override=env_override,
        secret_keys=secret_keys,
        slot_at=slot_at,
        launched_by_id=launched_by_id,
        event_id=event_id,
        retry_of=retry_of,
        status=status,
    )
    return job


def enqueue_many(
    rt: RunTemplate,
    count: int,
    *,
    schedule_type: str,
    when: datetime | None = None,
    env_override: dict[str, str] | None = None,
    secret_keys: Iterable[str] = (),
    slot_at: datetime | None = None,
    launched_by_id: int | None = None,
    event_id: int | None = None,
    retry_of: Job | None = None,
    status: JobStatus = JobStatus.SCHEDULED,
) -> list[Job]:
    """`count` alike jobs of a RunTemplate in one INSERT … SELECT … RETURNING (not committed).

    The statement reads the template's and application's values itself, so a caller whose
    objects expired at its last commit pays no SELECT for them; on PostgreSQL it also sends
    the NOTIFY (delivered at commit). One enqueue is BEGIN, this, COMMIT."""
    if status not in _CREATED:
        raise JobError(f"RunTemplate {rt.id}: a job cannot be created {status}")
    if count < 1:
        return []
    values = _new_job(
        status,
        schedule_type,
        when,
        env_override,
        secret_keys,
        launched_by_id,
        slot_at=slot_at,
        event_id=event_id,
        retry_of=retry_of,
    )
    session = db.session()
    if session.autoflush:  # as the ORM's execute would: the statement reads the template
        session.flush()
    rt_id = _rt_id(rt)
    raw = driver(session)
    made = insert_jobs(session, raw, rt_id, count, values, _notify(session, raw))
    if len(made) != count:
        raise JobError(f"RunTemplate {rt_id}: not found")
    return made


def submit(
    rt_id: int,
    *,
    schedule_type: str,
    when: datetime | None = None,
    env_override: dict[str, str] | None = None,
    secret_keys: Iterable[str] = (),
    launched_by_id: int | None = None,
) -> int:
    """One scheduled job of RunTemplate `rt_id`, committed now on a connection of its own, for
    a caller that enqueues and writes nothing else with it (a script, a bridge from another
    queue); the new job's id. Executors are woken as by enqueue().

    The caller's session and its transaction are not used: the job is committed even if the
    caller's transaction rolls back. enqueue() + commit takes three statements (BEGIN, the
    INSERT, COMMIT, each a round trip on PostgreSQL); this takes one. On SQLite, a caller
    that holds a write transaction of its own waits on itself here (up to the busy timeout):
    commit first, or use enqueue(). A connection lost during the call leaves unknown whether
    the job was committed, as for any commit: it is not sent again here (that could make two)."""
    values = _new_job(
        JobStatus.SCHEDULED, schedule_type, when, env_override, secret_keys, launched_by_id
    )
    job_id = insert_committed(db.engine, rt_id, values)
    if job_id is None:
        raise JobError(f"RunTemplate {rt_id}: not found")
    return job_id


def _new_job(
    status: JobStatus,
    schedule_type: str,
    when: datetime | None,
    env_override: dict[str, str] | None,
    secret_keys: Iterable[str],
    launched_by_id: int | None,
    *,
    slot_at: datetime | None = None,
    event_id: int | None = None,
    retry_of: Job | None = None,
) -> dict[str, Any]:
    """A new job's own values (new_jobs.VALUES), the same for enqueue_many() and submit()."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": status.value,
        "schedule_type": schedule_type,
        "scheduled_for": when or now,
        "slot_at": slot_at,
        "env_override": onetime.seal(env_override, secret_keys),  # once: alike jobs share it
        "launched_by_id": launched_by_id,
        "event_id": event_id,
        "attempt": (retry_of.attempt + 1) if retry_of else 1,
        "retry_of_id": retry_of.id if retry_of else None,
        "created_at": now,
    }
    if status is JobStatus.SKIPPED:
        values["finished_at"] = now
        values["status_reason"] = "slot missed while no scheduler ran (misfire policy: skip)"
    return values


def _rt_id(rt: RunTemplate) -> int:
    # The identity survives expiry: reading rt.id after a commit would SELECT the whole row.
    key = inspect(rt).identity
    if key is None:  # added in this unit of work and not flushed yet: its id comes with it
        db.session.flush()
        return rt.id
    return int(key[0])


def _notify(session: Session, raw: Driver) -> str | None:
    """The channel the INSERT notifies itself (PostgreSQL), else None after a doorbell is set
    to ring on commit (SQLite, as listen.announce does): either way executors hear of the jobs
    once they commit."""
    if raw.is_pg:
        return NOTIFY_CHANNEL
    doorbell.ring_on_commit(session, NOTIFY_CHANNEL)
    return None


# -- claiming and running ---------------------------------------------------------------------


def claim(
    worker_id: int, limit: int, now: datetime | None = None, *, commit: bool = True
) -> list[ClaimedJob]:
    """scheduled|blocked -> running for up to `limit` due jobs.

    Commits unless `commit` is false: the executor then claims a finished job's successor in
    the same transaction that records the finish (one commit per job instead of two).
    """
    now = now or utcnow()
    write_session(db.session())
    params = {"p_now": now, "p_worker": worker_id, "p_limit": limit}
    claimed = claiming.claimed_jobs(driver(db.session()).rows(claiming.CLAIM, params), now)
    losers = claiming.overlapping(db.session(), claimed) if claimed else []
    for c in losers:
        _give_back(c, now)
    if commit:
        db.session.commit()
    lost = {c.id for c in losers}
    return [c for c in claimed if c.id not in lost]


def _give_back(c: ClaimedJob, now: datetime) -> None:
    """Undo a claim inside the claiming transaction (nobody else ever saw it running)."""
    if c.overlap_policy == "skip":
        _move(
            c.id,
            _SKIP_CLAIMED,
            finished_at=now,
            status_reason="another job of this RunTemplate was running (overlap policy: skip)",
        )
    else:
        release(c.id)


def _change(job_id: int, expected: ColumnElement[bool], **values: Any) -> bool:
    """Change a job in the expected status, and only then (a conditional UPDATE): whether it
    was. `expected` is a WHERE on the status built above from the job state table."""
    res = db.session.execute(update(Job).where(Job.id == job_id, expected).values(**values))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def _move(job_id: int, change: Move, **values: Any) -> bool:
    """A status change from the table, with the other columns it sets."""
    return _change(job_id, change.where, status=change.to, **values)


def release(job_id: int) -> bool:
    """running -> scheduled for a claimed job that never started (its claim is undone)."""
    return _move(
        job_id,
        _RELEASE,
        worker_id=None,
        claimed_at=None,
        started_at=None,
        heartbeat_at=None,
    )


def anything_due(now: datetime | None = None) -> bool:
    return claiming.anything_due(db.session(), now or utcnow())


def start(
    job_id: int,
    *,
    pid: int | None,
    command: list[str],
    env: list[dict[str, Any]],
    container_id: str | None = None,
) -> bool:
    """Record what a running job runs (its status is already running since the claim)."""
    return _change(
        job_id, _IS_RUNNING, pid=pid, command=command, env=env, container_id=container_id
    )


def heartbeat(job_id: int, now: datetime | None = None) -> bool | None:
    """Beat a running job; returns whether a cancel was requested, None if it no longer runs."""
    row = db.session.execute(
        update(Job)
        .where(Job.id == job_id, _IS_RUNNING)
        .values(heartbeat_at=now or utcnow())
        .returning(Job.cancel_requested)
    ).first()
    return None if row is None else bool(row[0])


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """What the executor learned while running a job, written with its final status."""

    pid: int | None
    command: list[str]
    env: list[dict[str, Any]]
    counters: dict[str, int]


def _finish_params(job_id: int, outcome: Outcome, record: RunRecord | None, now: datetime) -> Any:
    params: dict[str, Any] = {
        "p_id": job_id,
        "p_status": outcome.status.value,
        "p_exit": outcome.exit_code,
        "p_now": now,
        "p_reason": outcome.reason,
    }
    if record is not None:
        params.update(p_pid=record.pid, p_command=record.command, p_env=record.env)
        params.update({f"p_{c}": record.counters.get(c, 0) for c in job_sql.COUNTERS})
    return params


# The action runs a finish queued already claimed (outbox.py), as the statement returned them.
Queued = list[tuple[Any, ...]]


def send_success(
    job_id: int,
    record: RunRecord,
    *,
    actions: bool = False,
    conditional: bool = True,
    deliver_by: int | None = None,
) -> Callable[[], tuple[bool, Queued]]:
    """running -> succeeded, sent without waiting for the answer (a PostgreSQL pipeline); the
    returned function says, once the answer is in, whether the job was still running, and
    gives the action runs queued claimed by `deliver_by` (see queue_actions).

    Only for successes: a failure may need a retry, which reads the job first (finish()).
    The caller adds the counters (add_counts) and must roll back if any answer is False.
    """
    params = _finish_params(job_id, Outcome(JobStatus.SUCCEEDED, 0), record, utcnow())
    drv = driver(db.session())
    rowcount = drv.send(job_sql.FINISH_WITH_RECORD, params)
    queued: Callable[[], Queued] = list
    if actions:  # rolled back with the status
        claimed = deliver_by is not None
        stmt = outbox.statement(conditional=conditional, claimed=claimed)
        if claimed:
            queued = drv.send_rows(stmt, {**params, "p_owner": deliver_by})
        else:
            drv.send(stmt, params)
    return lambda: (rowcount() == 1, queued())


def finish(
    job_id: int,
    rt_id: int,
    started_at: datetime,
    outcome: Outcome,
    record: RunRecord | None = None,
    then: Callable[[], None] | None = None,
    *,
    count: bool = True,
    actions: bool = True,
    conditional: bool = True,
    deliver_by: int | None = None,
    queued: Queued | None = None,
) -> bool:
    """running -> a terminal status; counters and a retry follow. False if it was not running.
    Action runs queued claimed by `deliver_by` are appended to `queued` (see queue_actions).

    `then` runs between the job's row and the RunTemplate's counters: the counters row is
    shared by every job of the template, so it is locked last, just before the commit. With
    count=False the caller adds the counters itself (add_counts, once for many finishes).
    """
    now = utcnow()
    params = _finish_params(job_id, outcome, record, now)
    stmt = job_sql.FINISH_WITH_RECORD if record is not None else job_sql.FINISH
    if not driver(db.session()).run(stmt, params):
        return False
    if actions:
        found = queue_actions(params, conditional=conditional, deliver_by=deliver_by)
        if queued is not None:
            queued += found
    if then is not None:
        then()
    if count:
        ok = outcome.status is JobStatus.SUCCEEDED
        add_counts(rt_id, int(ok), int(not ok), started_at)
    if outcome.status in FAILURES and outcome.status is not JobStatus.CANCELLED:
        _maybe_retry(job_id, now)
    return True


def queue_actions(
    params: dict[str, Any], *, conditional: bool = True, deliver_by: int | None = None
) -> Queued:
    """The outbox: the finished job's action runs, in the transaction of its final status.
    With `deliver_by` (an executor's worker id, whose dispatcher takes them in memory) they are
    inserted claimed by it and returned; otherwise pending, for any dispatcher to claim."""
    if deliver_by is None:
        driver(db.session()).run(outbox.statement(conditional=conditional, claimed=False), params)
        return []
    stmt = outbox.statement(conditional=conditional, claimed=True)
    return driver(db.session()).rows(stmt, {**params, "p_owner": deliver_by})


def add_counts(rt_id: int, ok: int, failed: int, last_started: datetime) -> None:
    """The RunTemplate's success/failure counters and last run (finishes counted together)."""
    driver(db.session()).run(
        job_sql.COUNTS, {"p_rt": rt_id, "p_ok": ok, "p_failed": failed, "p_started": last_started}
    )


def _maybe_retry(job_id: int, now: datetime) -> Job | None:
    from multiflexi_web.services.jobs.retry import plan_retry

    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None:
        return None
    when = plan_retry(job, now)
    if when is None:
        return None
    override = onetime.unseal(job.env_override)
    return enqueue(
        job.runtemplate,
        schedule_type="retry",
        when=when,
        env_override=override.values,
        secret_keys=override.secret,
        retry_of=job,
        launched_by_id=job.launched_by_id,
        event_id=job.event_id,
    )


def block(job_id: int, reason: str, until: datetime) -> bool:
    """running -> blocked (a credential is unavailable): claimable again from `until`."""
    return _move(
        job_id,
        _BLOCK,
        block_reason=reason,
        blocked_at=utcnow(),
        scheduled_for=until,
        worker_id=None,
        started_at=None,
    )


# -- cancelling and reaping -------------------------------------------------------------------


def cancel(job_id: int, by: str = "cli") -> str:
    """Cancel a waiting job at once, or ask the executor to stop a running one."""
    res = db.session.execute(
        update(Job)
        .where(Job.id == job_id, _CANCEL.where)
        .values(
            status=_CANCEL.to,
            finished_at=utcnow(),
            status_reason=f"cancelled by {by} before it started",
        )
    )
    if res.rowcount:  # type: ignore[attr-defined]
        queue_actions({"p_id": job_id, "p_now": utcnow()})
        return "cancelled"
    res = db.session.execute(
        update(Job).where(Job.id == job_id, _IS_RUNNING).values(cancel_requested=True)
    )
    if res.rowcount:  # type: ignore[attr-defined]
        return "cancel requested"
    status = db.session.scalar(select(Job.status).where(Job.id == job_id))
    if status is None:
        raise JobError(f"job {job_id}: not found")
    raise JobError(f"job {job_id}: already {status}, nothing to cancel")


def mark_lost(job_id: int, reason: str) -> bool:
    """running -> lost (its executor died); counters and a retry follow."""
    row = db.session.execute(
        select(Job.runtemplate_id, Job.started_at).where(Job.id == job_id)
    ).first()
    if row is None:
        return False
    return finish(job_id, row[0], row[1] or utcnow(), Outcome(JobStatus.LOST, None, reason))


def database_now() -> datetime:
    """The database's clock (PostgreSQL's; on SQLite, one file on this host, the local one):
    heartbeats of every host are stamped and judged by it, never by a local clock."""
    if driver(db.session()).is_pg:
        found = db.session.scalar(select(func.clock_timestamp()))
        if isinstance(found, datetime):
            return found
    return utcnow()


def heartbeat_clock() -> Any:
    """What a worker heartbeat is stamped with: the database's now() where it has one."""
    return func.clock_timestamp() if driver(db.session()).is_pg else utcnow()


def still_claimed(job_id: int, worker_id: int) -> bool:
    """Is the job still running under this worker's claim (not reaped, not given back)?"""
    found = db.session.scalar(
        select(Job.id).where(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)
    )
    return found is not None


def mark_dead_workers(lost_after: float, now: datetime | None = None) -> list[int]:
    """Workers that say they run but have not beaten for lost_after (database time): dead.
    A worker that was only cut off sets itself running again with its next beat."""
    cutoff = (now or database_now()) - timedelta(seconds=lost_after)
    dead = db.session.scalars(
        update(Worker)
        .where(Worker.status.in_(("running", "stopping")), Worker.heartbeat_at < cutoff)
        .values(status="dead", stopped_at=Worker.heartbeat_at)
        .returning(Worker.id)
    ).all()
    return list(dead)


def reap_lost(lost_after: float, now: datetime | None = None) -> list[int]:
    """Mark lost every running job whose own and whose worker's heartbeats are both stale
    (by the database's clock)."""
    now = now or database_now()
    cutoff = now - timedelta(seconds=lost_after)
    w = aliased(Worker)
    stale = db.session.execute(
        select(Job.id, w.id, w.heartbeat_at)
        .outerjoin(w, w.id == Job.worker_id)
        .where(
            Job.status == RUNNING,
            Job.heartbeat_at < cutoff,
            (w.id.is_(None)) | (w.heartbeat_at < cutoff) | (w.status.in_(("stopped", "dead"))),
        )
    ).all()
    reaped = []
    for job_id, worker_id, beat in stale:
        reason = (
            f"executor worker {worker_id} stopped heartbeating (last {beat:%Y-%m-%d %H:%M:%S}Z)"
            if beat
            else "its executor worker is gone"
        )
        if mark_lost(job_id, reason):
            reaped.append(job_id)
    return reaped


def reap_orphans(worker_id: int, running: set[int], now: datetime | None = None) -> list[int]:
    """Jobs claimed by this worker that it does not run (a claim whose reply was lost)."""
    now = now or utcnow()
    ids = db.session.scalars(
        select(Job.id).where(
            Job.worker_id == worker_id, Job.status == RUNNING, Job.claimed_at < now - ORPHAN_GRACE
        )
    ).all()
    reason = "claimed by this executor but never started (claim interrupted)"
    return [i for i in ids if i not in running and mark_lost(i, reason)]
