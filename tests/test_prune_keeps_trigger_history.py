"""Prune keeps what the "recovery" and "N failures in a row" triggers read: a template's last
success and its last result. Retention keeps failed jobs longer than succeeded ones, so pruning
the success that ended an old streak left the failures before it, and the next single failure
counted them again and fired the "N failures in a row" action falsely."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, utcnow
from multiflexi_web.models.action import ActionRun
from multiflexi_web.services.actions import configure
from multiflexi_web.services.actions.configure import When
from multiflexi_web.services.housekeeping.prune import prune
from multiflexi_web.services.jobs import transitions as jobs
from tests.conftest import make_settings
from tests.executor_support import shell_rt
from tests.factories import make_job


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The documented pattern: failures kept longer than successes.
    return make_settings(db_url, tmp_path, retain_jobs_days=30, retain_failed_days=90)


def _aged(job: Job, days: float) -> None:
    due = utcnow() - timedelta(days=days)
    db.session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(scheduled_for=due, started_at=due, finished_at=due + timedelta(seconds=1))
    )
    db.session.commit()


def test_pruned_success_revives_an_ended_failure_streak(app: Flask, settings: Settings) -> None:
    rt = shell_rt("exit 1")
    configure.put(
        rt, "failure", "WebHook", {"url": "http://127.0.0.1:9/n"},
        When(trigger="failures", after_failures=3),
    )  # fmt: skip
    db.session.commit()
    # Two failures, then a success ended that streak (no alert: 2 < 3).
    _aged(make_job(rt, status=JobStatus.FAILED, exit_code=1), 60)
    _aged(make_job(rt, status=JobStatus.FAILED, exit_code=1), 50)
    ok = make_job(rt, status=JobStatus.SUCCEEDED)
    _aged(ok, 40)
    ok_id = ok.id
    other = shell_rt("exit 0")  # another template's newer job: ok is not the newest of all
    make_job(other, status=JobStatus.SUCCEEDED)

    prune(db.session(), settings, utcnow())
    db.session.expire_all()
    # Past 30 days, but the template's last success (and result): kept, as the failures are.
    assert db.session.get(Job, ok_id) is not None

    # Today: one single failure after a success.
    j = make_job(rt, status=JobStatus.RUNNING)
    jobs.finish(j.id, rt.id, j.started_at, jobs.Outcome(JobStatus.FAILED, 1))
    db.session.commit()
    fired = list(db.session.scalars(select(ActionRun).where(ActionRun.job_id == j.id)))
    assert fired == [], "one failure after a success fired the '3 failures in a row' action"


def test_a_template_s_older_successes_are_still_pruned(app: Flask, settings: Settings) -> None:
    rt = shell_rt("exit 0")
    older, last = make_job(rt, status=JobStatus.SUCCEEDED), make_job(rt, status=JobStatus.SUCCEEDED)
    _aged(older, 50)
    _aged(last, 40)
    older_id, last_id = older.id, last.id
    make_job(shell_rt("exit 0"), status=JobStatus.SUCCEEDED)  # the newest of all, elsewhere
    prune(db.session(), settings, utcnow())
    db.session.expire_all()
    assert db.session.get(Job, older_id) is None
    assert db.session.get(Job, last_id) is not None
