"""Action runs: claiming due ones under a lease, recording attempts, retries and listing.

A run is claimed like a job: one UPDATE ... RETURNING over a subquery that skips rows other
executors hold (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer at a time, and the
outer WHERE repeats the condition). Each claim counts an attempt and stamps the lease
(claimed_at, owner_id), which the claiming dispatcher stamps again while the delivery goes on;
the attempt's result is recorded only by the claim that made it, so a delivery whose lease
expired (its executor was killed or cut off) is another executor's to retry. The
claim and the record of an attempt are statements.py's, compiled once per dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from multiflexi_web.actions.base import Outcome
from multiflexi_web.actions.delivery import bounded
from multiflexi_web.db.raw import driver
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, utcnow
from multiflexi_web.models.action import ActionRun
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.actions import effects, statements
from multiflexi_web.services.actions.settings import ActionSettings

WAITING = statements.WAITING


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


def claim(
    owner_id: int, limit: int, s: ActionSettings, now: datetime | None = None
) -> list[Claimed]:
    """Claim up to `limit` due runs (the caller commits); statements.CLAIM, on the session's
    connection."""
    now = now or utcnow()
    rows = driver(db.session()).rows(
        statements.CLAIM,
        {
            "p_now": now,
            "p_expired": now - timedelta(seconds=s.lease),
            "p_owner": owner_id,
            "p_limit": limit,
        },
    )
    return [Claimed(r[0], r[1], r[2], r[3], r[4], r[5], owner_id) for r in rows]


def renew(ids: Sequence[int], owner_id: int, now: datetime | None = None) -> int:
    """Stamp again the leases `owner_id` holds on runs it is still delivering (the caller
    commits); how many it still held."""
    params = {"p_ids": list(ids), "p_owner": owner_id, "p_now": now or utcnow()}
    return driver(db.session()).run(statements.RENEW, params)


def release(ids: Sequence[int], owner_id: int) -> int:
    """Runs `owner_id` holds and never started (a stopping dispatcher's handed ones) become
    pending again, their claim's attempt not counted (the caller commits); how many."""
    res = db.session.execute(
        update(ActionRun)
        .where(
            ActionRun.id.in_(list(ids)),
            ActionRun.owner_id == owner_id,
            ActionRun.status == "running",
        )
        .values(
            status="pending",
            attempts=ActionRun.attempts - 1,
            owner_id=None,
            claimed_at=None,
            next_attempt_at=utcnow(),
        )
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


def masked(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, MASK)
    return bounded(text)


def record_all(
    ended: Sequence[tuple[Claimed, Outcome, list[str]]], s: ActionSettings
) -> list[str | None]:
    """Record a pass's attempts; per attempt the status written, None where its lease was lost.

    Attempts with the same result (status, response, error, attempt number: a pass's
    deliveries to one peer mostly are) are written by one statement: a statement per attempt
    was about a fifth of the delivery process's CPU under load. Effects are applied first, each
    in its own savepoint (a refused one fails its run), and only to a run this claim still
    holds, locked until the commit: a run whose lease lapsed was claimed again by another
    executor, whose attempt applies them; applied here too, a chained job would run twice."""
    now = utcnow()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (c, outcome, secrets) in enumerate(ended):
        # Not held: the RECORD below matches nothing either (None), unless a retried record
        # finds its first commit's status, which had applied them.
        if outcome.ok and outcome.effects and _held(c):
            outcome = _apply(c, outcome, s)
        response, error = masked(outcome.response, secrets), masked(outcome.error, secrets)
        if outcome.ok:
            status, retry_at = "succeeded", None
        elif outcome.retryable and c.attempts < s.max_attempts:
            status, retry_at = "retrying", now + timedelta(seconds=s.backoff_for(c.attempts))
        else:
            status, retry_at = "failed", None
        key = (status, response, error, retry_at, c.owner_id, c.attempts)
        groups.setdefault(key, []).append(i)
    written: list[str | None] = [None] * len(ended)
    drv = driver(db.session())
    for (status, response, error, retry_at, owner, attempts), members in groups.items():
        params = {
            "p_owner": owner,
            "p_attempts": attempts,
            "p_status": status,
            "p_response": response,
            "p_error": error,
            "p_at": retry_at or now,
        }
        ids = [ended[i][0].id for i in members]
        stmt = statements.RECORD_RETRY if retry_at else statements.RECORD_ENDED
        if drv.run(stmt, {**params, "p_ids": ids}) == len(ids):
            for i in members:
                written[i] = status
            continue
        # Some lease was lost (another executor took the run): these rows are written
        # already, the others were not; which is which is read back.
        mine = _still_mine(ids, owner, attempts, status)
        for i in members:
            if ended[i][0].id in mine:
                written[i] = status
    return written


def _held(c: Claimed) -> bool:
    """Whether this claim still holds the run, which stays locked until the caller commits (on
    SQLite the writer's transaction holds the whole file); a retried record whose first
    commit reached the server finds the run ended and applies nothing twice."""
    found = db.session.execute(
        select(ActionRun.id)
        .where(
            ActionRun.id == c.id,
            ActionRun.owner_id == c.owner_id,
            ActionRun.attempts == c.attempts,
            ActionRun.status == "running",
        )
        .with_for_update()
    ).first()
    return found is not None


def _still_mine(ids: list[int], owner: int, attempts: int, status: str) -> set[int]:
    rows = db.session.execute(
        select(ActionRun.id).where(
            ActionRun.id.in_(ids),
            ActionRun.owner_id == owner,
            ActionRun.attempts == attempts,
            ActionRun.status == status,
        )
    )
    return {r[0] for r in rows}


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
