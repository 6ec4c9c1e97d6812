"""The executor end to end in this process: a job runs, its output and artifacts are stored."""

from __future__ import annotations

from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus, RunTemplate
from multiflexi_web.services.jobs import artifacts
from tests.executor_support import drain, job, output_of, schedule, shell_rt


def test_a_job_runs_and_is_recorded(app: Flask) -> None:
    rt = shell_rt("echo hello; echo err >&2; exit 0")
    [job_id] = schedule(rt)
    drain(app)
    j = job(job_id)
    assert j.status == JobStatus.SUCCEEDED.value, j.status_reason
    assert j.exit_code == 0
    assert output_of(job_id) == b"hello\n"
    assert output_of(job_id, "stderr") == b"err\n"
    assert j.command == ["/bin/sh", "-c", "echo hello; echo err >&2; exit 0"]
    names = {a.filename: a for a in artifacts.list_for_job(db.session(), job_id)}
    assert set(names) == {"stdout.txt", "stderr.txt"}
    assert names["stdout.txt"].content == b"hello\n"
    assert names["stdout.txt"].mime_type == "text/plain"
    assert j.started_at and j.finished_at and j.worker_id
    fresh = db.session.get(RunTemplate, rt.id)
    assert fresh is not None and fresh.success_count == 1 and fresh.last_run_at is not None
