"""Prune never gives a job id again: SQLite's job id is a plain INTEGER PRIMARY KEY (no
AUTOINCREMENT), so once prune removed the newest job, the next job got its id, and with it the
idempotency keys ('multiflexi-<job id>-<config id>') the pruned job's deliveries had sent (a
peer deduplicating by them dropped the new notification) and the /jobs/<id> links already sent
in mails. Prune now keeps the newest job, whatever its age."""

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
    return make_settings(db_url, tmp_path, retain_jobs_days=7)


def _finish(rt, status: JobStatus) -> Job:  # type: ignore[no-untyped-def]
    j = make_job(rt, status=JobStatus.RUNNING)
    jobs.finish(j.id, rt.id, j.started_at, jobs.Outcome(status, 0))
    db.session.commit()
    return j


def test_the_newest_job_is_kept_so_no_id_or_key_is_given_again(
    app: Flask, settings: Settings
) -> None:
    rt = shell_rt("exit 0")
    configure.put(rt, "success", "WebHook", {"url": "http://127.0.0.1:9/s"}, When())
    db.session.commit()
    older, newest = _finish(rt, JobStatus.SUCCEEDED), _finish(rt, JobStatus.SUCCEEDED)
    older_id, newest_id = older.id, newest.id
    sent = {r.idempotency_key for r in db.session.scalars(select(ActionRun))}
    db.session.execute(update(ActionRun).values(status="succeeded", finished_at=utcnow()))
    due = utcnow() - timedelta(days=10)
    db.session.execute(update(Job).values(scheduled_for=due, finished_at=due))
    db.session.commit()
    prune(db.session(), settings, utcnow())
    db.session.expire_all()
    assert db.session.get(Job, older_id) is None  # past retention: gone
    assert db.session.get(Job, newest_id) is not None  # as old, but the newest: kept
    new = _finish(rt, JobStatus.SUCCEEDED)
    assert new.id > newest_id
    [new_run] = db.session.scalars(select(ActionRun).where(ActionRun.job_id == new.id))
    assert new_run.idempotency_key not in sent
