"""Prune's artifact and output DELETEs repeat the "no action delivery pending" condition, as
its job DELETE does (docs/architecture.md): an operator's retry of a failed action run between
the plan and the delete makes the job's delivery pending again, and the artifacts and output
it will read must stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import ActionRun, Artifact, Job, JobOutput, JobStatus, utcnow
from multiflexi_web.services.actions import runs
from multiflexi_web.services.housekeeping.prune import prune
from tests.conftest import make_settings
from tests.factories import make_artifact, make_company, make_job, make_runtemplate


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        db_url,
        tmp_path,
        retain_jobs_days=0,  # jobs forever
        retain_failed_days=0,
        retain_output_days=7,
        retain_artifacts_days=14,
        prune_batch=500,
    )


def test_artifacts_and_output_of_a_job_whose_action_was_retried_meanwhile(
    app: Flask, settings: Settings
) -> None:
    rt = make_runtemplate(make_company())
    job = make_job(rt, status=JobStatus.SUCCEEDED, output="the tail a webhook sends")
    make_artifact(job, filename="report.csv", content=b"a,b\n")
    make_job(rt, status=JobStatus.SUCCEEDED)  # a newer one: the newest job is never pruned
    due = utcnow() - timedelta(days=20)
    db.session.execute(
        update(Job).where(Job.id == job.id).values(scheduled_for=due, finished_at=due)
    )
    run = ActionRun(
        job_id=job.id, action="web_hook", mode="success", status="failed", finished_at=due
    )
    db.session.add(run)
    db.session.commit()
    run_id, job_id = run.id, job.id

    retried = []

    def stop() -> bool:
        # The operator presses "Retry" on the failed delivery while the pass runs.
        if not retried:
            runs.retry(run_id)
            db.session.commit()
            retried.append(True)
        return False

    prune(db.session(), settings, utcnow(), stop=stop)
    db.session.expire_all()
    assert db.session.get(ActionRun, run_id).status == "pending"
    arts = db.session.scalar(
        select(func.count()).select_from(Artifact).where(Artifact.job_id == job_id)
    )
    outs = db.session.scalar(
        select(func.count()).select_from(JobOutput).where(JobOutput.job_id == job_id)
    )
    # The pending delivery reads the job's artifacts (links) and output tail: both must stay.
    assert arts == 1, "artifact deleted although the job's action delivery is pending again"
    assert outs > 0, "output deleted although the job's action delivery is pending again"
