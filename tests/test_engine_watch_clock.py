"""The engine watch judges other executors by the database's clock, as heartbeats are stamped
and the reaper judges them: an executor whose host clock runs LOST_AFTER ahead of the database
server's must not take a live executor for dead and remove its running job's container, Pod or
container group (every executor lists all Pods of the namespace and all ACI groups)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from multiflexi_web.executors.base import Leftover
from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus, utcnow
from multiflexi_web.runner import engines
from multiflexi_web.services.jobs import transitions
from tests.executor_support import shell_rt
from tests.factories import make_job, make_worker

LOST_AFTER = 60.0


def test_a_live_executors_running_job_is_not_a_leftover_for_a_host_whose_clock_is_ahead(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("one host shares SQLite's clock; skew between hosts needs PostgreSQL")
    other = make_worker(heartbeat_age=0.0)  # alive: beat just now by the database's clock
    other.hostname = "another-host"
    job = make_job(shell_rt("sleep 600"), status=JobStatus.RUNNING)
    job.worker_id = other.id
    db.session.commit()
    job_id, other_id = job.id, other.id

    # This executor's host clock runs two minutes ahead of the database server's.
    skewed = utcnow() + timedelta(seconds=2 * LOST_AFTER)
    monkeypatch.setattr(engines, "utcnow", lambda: skewed, raising=False)
    monkeypatch.setattr(transitions, "utcnow", lambda: skewed)

    pod = Leftover(ref="pod-of-a-live-job", job_id=job_id, worker_id=other_id)
    found = engines.stale([pod], me=other_id + 1000, mine=set(), lost_after=LOST_AFTER)
    db.session.rollback()
    # The job's executor is alive (fresh heartbeat by the database's clock): its running Pod
    # must not be removed.
    assert found == []
