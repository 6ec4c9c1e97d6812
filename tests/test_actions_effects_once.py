"""An action attempt's effects (ChainRuntemplate, LaunchJob, Reschedule: a job enqueued) are
applied once: not by an attempt whose lease lapsed and whose run another executor claimed
again, and not again by a record retried after its first commit reached the server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.actions.base import EnqueueJob, Outcome
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, utcnow
from multiflexi_web.models.action import ActionRun
from multiflexi_web.services.actions import runs
from tests.action_support import FAST
from tests.executor_support import shell_rt
from tests.factories import make_job


def _chain_run() -> tuple[Outcome, Callable[[], int | None]]:
    """A pending ChainRuntemplate run of a fresh job; the outcome that enqueues its target, and
    a count of the target's jobs."""
    rt = shell_rt("exit 0")
    target = shell_rt("exit 0", rt.company)
    job = make_job(rt)
    db.session.add(
        ActionRun(job_id=job.id, action="ChainRuntemplate", mode="success",
                  idempotency_key=f"eo-{job.id}", next_attempt_at=utcnow())
    )  # fmt: skip
    db.session.commit()
    ok = Outcome(True, response="chained", effects=(EnqueueJob(target.id, "chained"),))
    count = select(func.count()).select_from(Job).where(Job.runtemplate_id == target.id)
    return ok, lambda: db.session.scalar(count)


def test_a_lost_lease_applies_no_effect_so_a_chained_job_is_enqueued_once(app: Flask) -> None:
    ok, chained = _chain_run()
    [a] = runs.claim(1, 10, FAST)  # executor A claims and performs the chain
    db.session.commit()
    later = utcnow() + timedelta(seconds=FAST.lease + 1)
    [b] = runs.claim(2, 10, FAST, now=later)  # A's lease lapsed: executor B claims it again
    db.session.commit()

    # A's pass records its (late) attempt: the lease is lost, so nothing is written...
    [status_a] = runs.record_all([(a, ok, [])], FAST)
    db.session.commit()
    assert status_a is None
    # ... and B's attempt is recorded and enqueues the chained job.
    [status_b] = runs.record_all([(b, ok, [])], FAST)
    db.session.commit()
    assert status_b == "succeeded"
    assert chained() == 1  # one run succeeded once: exactly one chained job


def test_a_record_retried_after_its_commit_applies_no_effect_twice(app: Flask) -> None:
    ok, chained = _chain_run()
    [claimed] = runs.claim(1, 10, FAST)
    db.session.commit()
    assert runs.record_all([(claimed, ok, [])], FAST) == ["succeeded"]
    db.session.commit()  # reached the server; the client saw an error and records again:
    assert runs.record_all([(claimed, ok, [])], FAST) == ["succeeded"]
    db.session.commit()
    assert chained() == 1
