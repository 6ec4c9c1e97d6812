"""Claiming action runs: a claim takes at most its limit, claims never overlap, leases expire,
and a run the dispatcher cannot perform fails alone."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import utcnow
from multiflexi_web.models.action import ActionConfig, ActionRun
from multiflexi_web.services.actions import runs
from tests.action_support import FAST, dispatch_all, http_peer
from tests.executor_support import shell_rt
from tests.factories import make_job


def _queue(count: int) -> None:
    rt = shell_rt("exit 0")
    now = utcnow()
    for _ in range(count):
        job = make_job(rt)
        db.session.add(
            ActionRun(
                job_id=job.id,
                action="WebHook",
                mode="success",
                idempotency_key=f"claim-{job.id}",
                next_attempt_at=now,
            )
        )
    db.session.commit()


def test_a_claim_takes_its_limit_and_the_next_claim_the_following_runs(app: Flask) -> None:
    # 200 due runs in a fresh table: the plan PostgreSQL picks for so small a table ran the
    # picking subquery again per row and one claim took all 200 (fixed: a CTE, run once).
    _queue(200)
    first = runs.claim(1, 8, FAST)
    db.session.commit()
    second = runs.claim(2, 8, FAST)
    db.session.commit()
    assert len(first) == 8 and len(second) == 8
    assert not {c.id for c in first} & {c.id for c in second}
    running = select(func.count()).where(ActionRun.status == "running")
    assert db.session.scalar(running) == 16
    assert {c.attempts for c in first + second} == {1}


def test_an_expired_lease_is_claimed_again_by_another_owner(app: Flask) -> None:
    _queue(3)
    taken = runs.claim(1, 10, FAST)
    db.session.commit()
    assert len(taken) == 3
    assert runs.claim(2, 10, FAST) == []  # leased
    later = utcnow() + timedelta(seconds=FAST.lease + 1)
    again = runs.claim(2, 10, FAST, now=later)
    db.session.commit()
    assert sorted(c.id for c in again) == sorted(c.id for c in taken)
    assert {(c.owner_id, c.attempts) for c in again} == {(2, 2)}


def test_a_run_of_an_unknown_kind_fails_alone(app: Flask) -> None:
    """Its kind was removed (a downgrade, a renamed plug-in): the run is recorded failed with
    why, the other runs of the pass are delivered, and the dispatcher is not stuck on it."""
    rt = shell_rt("exit 0")
    now = utcnow()
    with http_peer() as peer:
        for kind, config in (("Gone", {}), ("WebHook", {"url": peer.url})):
            cfg = ActionConfig(runtemplate_id=rt.id, mode="success", action=kind, config=config)
            db.session.add(cfg)
            db.session.flush()
            job = make_job(rt)
            db.session.add(
                ActionRun(job_id=job.id, action=kind, mode="success", config_id=cfg.id,
                          idempotency_key=f"kind-{job.id}", next_attempt_at=now)
            )  # fmt: skip
        db.session.commit()
        dispatch_all(app)
        got = {a: s for a, s in db.session.execute(select(ActionRun.action, ActionRun.status))}
        [error] = db.session.scalars(select(ActionRun.error).where(ActionRun.action == "Gone"))
    assert got == {"Gone": "failed", "WebHook": "succeeded"}
    assert error is not None and "'Gone': unknown" in error
    assert len(peer.hits) == 1
