"""Action runs: claiming due ones under a lease, recording attempts, retries and listing.

A run is claimed like a job: one UPDATE ... RETURNING over a subquery that skips rows other
executors hold (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer at a time, and the
outer WHERE repeats the condition). Each claim counts an attempt and stamps the lease
(claimed_at, owner_id); the attempt's result is recorded only by the claim that made it, so a
delivery whose lease expired (its executor was killed) is another executor's to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import DBAPIError

from multiflexi_web.actions.base import Outcome
from multiflexi_web.actions.delivery import bounded
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, utcnow
from multiflexi_web.models.action import ActionRun
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.actions import effects
from multiflexi_web.services.actions.settings import ActionSettings

WAITING = ("pending", "retrying")


class RunError(ValueError):
    """An operation on an action run was refused; the message says which and why."""


@dataclass(frozen=True)
class Claimed:
    id: int
    job_id: int
    action: str
    config_id: int | None
    idempotency_key: str | None
    attempts: int
    owner_id: int


def _due(now: datetime, lease: float) -> ColumnElement[bool]:
    return or_(
        and_(ActionRun.status.in_(WAITING), ActionRun.next_attempt_at <= now),
        and_(ActionRun.status == "running", ActionRun.claimed_at < now - timedelta(seconds=lease)),
    )


def claim(
    owner_id: int, limit: int, s: ActionSettings, now: datetime | None = None
) -> list[Claimed]:
    """Claim up to `limit` due runs (flushed, the caller commits)."""
    now = now or utcnow()
    due = _due(now, s.lease)
    # A CTE, evaluated once. As `id IN (subquery)` PostgreSQL may plan a nested loop that runs
    # the subquery again for each row: every run skips the rows this UPDATE already changed and
    # locks the next `limit`, so one claim took every due run (one executor delivered them all).
    picked = (
        select(ActionRun.id)
        .where(due)
        .order_by(ActionRun.next_attempt_at, ActionRun.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        update(ActionRun)
        .where(ActionRun.id == picked.c.id, due)
        .values(
            status="running", claimed_at=now, owner_id=owner_id, attempts=ActionRun.attempts + 1
        )
        .returning(
            ActionRun.id,
            ActionRun.job_id,
            ActionRun.action,
            ActionRun.config_id,
            ActionRun.idempotency_key,
            ActionRun.attempts,
        )
    )
    rows = db.session.execute(stmt, execution_options={"synchronize_session": False}).all()
    return [Claimed(*row, owner_id=owner_id) for row in rows]


def _mine(c: Claimed) -> ColumnElement[bool]:
    return and_(
        ActionRun.id == c.id,
        ActionRun.status == "running",
        ActionRun.owner_id == c.owner_id,
        ActionRun.attempts == c.attempts,
    )


def masked(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, MASK)
    return bounded(text)


def record(c: Claimed, outcome: Outcome, s: ActionSettings, secrets: list[str]) -> str | None:
    """Record the attempt (and apply its effects, in a savepoint: a refused one fails the run).
    Returns the status written, None if the lease was lost meanwhile."""
    now = utcnow()
    if outcome.ok and outcome.effects:
        outcome = _apply(c, outcome, s)
    values: dict[str, object] = {
        "response": masked(outcome.response, secrets),
        "error": masked(outcome.error, secrets),
    }
    if outcome.ok:
        values.update(status="succeeded", finished_at=now)
    elif outcome.retryable and c.attempts < s.max_attempts:
        wait = s.backoff_for(c.attempts)
        values.update(status="retrying", next_attempt_at=now + timedelta(seconds=wait))
    else:
        values.update(status="failed", finished_at=now)
    res = db.session.execute(update(ActionRun).where(_mine(c)).values(values))
    return str(values["status"]) if res.rowcount else None  # type: ignore[attr-defined]


def _apply(c: Claimed, outcome: Outcome, s: ActionSettings) -> Outcome:
    job = db.session.get(Job, c.job_id)
    if job is None:
        return Outcome(False, error=f"job {c.job_id}: gone")
    savepoint = db.session.begin_nested()
    try:
        done = effects.apply(job, outcome.effects, s.chain_max_depth)
    except DBAPIError:
        raise  # the database: the caller retries the whole record
    except Exception as exc:  # refused (another company, too deep) or broken: the run fails
        savepoint.rollback()
        return Outcome(False, response=outcome.response, error=f"{exc}")
    savepoint.commit()
    text = "; ".join(filter(None, [outcome.response, *done]))
    return Outcome(True, response=text)


def retry(run_id: int) -> ActionRun:
    """An operator's retry of a failed run: due again now, its attempts keep counting."""
    res = db.session.execute(
        update(ActionRun)
        .where(ActionRun.id == run_id, ActionRun.status == "failed")
        .values(status="pending", next_attempt_at=utcnow(), finished_at=None)
    )
    run = db.session.get(ActionRun, run_id, populate_existing=True)
    if run is None:
        raise RunError(f"action run {run_id}: not found")
    if not res.rowcount:  # type: ignore[attr-defined]
        raise RunError(f"action run {run_id}: is {run.status}; only failed runs can be retried")
    return run


def for_job(job_id: int) -> list[ActionRun]:
    return list(
        db.session.scalars(
            select(ActionRun).where(ActionRun.job_id == job_id).order_by(ActionRun.id)
        )
    )


def as_dict(run: ActionRun) -> dict[str, object]:
    return {
        "id": run.id,
        "job_id": run.job_id,
        "kind": run.action,
        "mode": run.mode,
        "status": run.status,
        "attempts": run.attempts,
        "response": run.response,
        "error": run.error,
        "next_attempt_at": run.next_attempt_at.isoformat() if run.next_attempt_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
