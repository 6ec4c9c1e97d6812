"""Retry policy, table-driven: backoff arithmetic, what is retried, and a retry on a real DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AppExitCode, Application, Job, JobStatus, RunTemplate
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.retry import (
    MAX_RETRY_DELAY,
    plan_retry,
    retry_delay,
    retry_refusal,
)
from tests.factories import make_app, make_company, make_job

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("backoff", "gap", "attempt", "expected"),
    [
        ("none", 0, 1, 0),
        ("none", 30, 1, 30),  # no growth, as upstream: the min gap is still kept
        ("none", 30, 4, 30),
        ("fixed", 60, 1, 60),
        ("fixed", 60, 5, 60),
        ("linear", 60, 1, 60),
        ("linear", 60, 2, 120),
        ("linear", 60, 3, 180),
        ("exponential", 60, 1, 60),
        ("exponential", 60, 2, 120),
        ("exponential", 60, 3, 240),
        ("exponential", 60, 4, 480),
        ("exponential", 0, 5, 0),
        ("exponential", 60, 1000, MAX_RETRY_DELAY),  # capped, no overflow
        ("linear", 10**9, 2, MAX_RETRY_DELAY),
        ("fixed", -5, 1, 0),  # a negative gap is treated as none
    ],
)
def test_retry_delay(backoff: str, gap: int, attempt: int, expected: int) -> None:
    assert retry_delay(backoff, gap, attempt) == expected


def test_unknown_backoff_is_refused() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        retry_delay("sometimes", 1, 1)


def job_of(
    status: str = "failed",
    *,
    attempt: int = 1,
    exit_code: int | None = 1,
    max_attempts: int = 3,
    backoff: str = "linear",
    gap: int = 60,
    codes: dict[int, bool | None] | None = None,
    active: bool = True,
    schedule_type: str = "hourly",
) -> Job:
    app = Application(name="a", executable="/bin/false")
    app.exit_codes = [AppExitCode(code=c, retry=r) for c, r in (codes or {}).items()]
    rt = RunTemplate(
        name="r",
        max_attempts=max_attempts,
        retry_backoff=backoff,
        retry_min_gap=gap,
        active=active,
    )
    rt.application = app
    job = Job(status=status, attempt=attempt, exit_code=exit_code, schedule_type=schedule_type)
    job.runtemplate = rt
    return job


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (job_of(), NOW + timedelta(seconds=60)),
        (job_of(attempt=2), NOW + timedelta(seconds=120)),
        (job_of(attempt=3), None),  # no attempts left
        (job_of(max_attempts=1), None),  # the default: never retried
        (job_of("timed_out", exit_code=None), NOW + timedelta(seconds=60)),
        (job_of("lost", exit_code=None), NOW + timedelta(seconds=60)),
        (job_of("succeeded", exit_code=0), None),
        (job_of("cancelled"), None),
        (job_of("skipped", exit_code=None), None),
        (job_of(codes={1: False}), None),  # exit code marked final by the app
        (job_of(codes={1: True}), NOW + timedelta(seconds=60)),  # marked retryable
        (job_of(codes={1: None}), NOW + timedelta(seconds=60)),  # listed, no opinion
        (job_of(exit_code=2, codes={1: False}), NOW + timedelta(seconds=60)),  # another code
        (job_of(backoff="none", gap=0), NOW),
        (job_of(backoff="exponential", gap=10, attempt=2), NOW + timedelta(seconds=20)),
        (job_of(active=False), None),  # a disabled schedule stops retrying its jobs
        (job_of(active=False, schedule_type="adhoc-cli"), NOW + timedelta(seconds=60)),
    ],
)
def test_plan_retry(job: Job, expected: datetime | None) -> None:
    assert plan_retry(job, NOW) == expected


def test_refusal_names_the_reason() -> None:
    assert retry_refusal(job_of(codes={1: False})) == (
        "exit code 1 is marked final by the application"
    )
    assert retry_refusal(job_of(attempt=3)) == "attempt 3 of 3: no attempts left"
    assert retry_refusal(job_of()) is None


def test_a_failed_job_gets_a_linked_retry_that_leaves_the_cadence_alone(app: Flask) -> None:
    company, application = make_company(), make_app()
    rt = RunTemplate(
        company_id=company.id,
        application_id=application.id,
        name="retrying",
        interval="h",
        max_attempts=2,
        retry_backoff="fixed",
        retry_min_gap=300,
        next_run_at=NOW + timedelta(hours=1),
    )
    db.session.add(rt)
    db.session.commit()
    first = make_job(rt, status=JobStatus.RUNNING, schedule_type="hourly")
    assert jobs.finish(first.id, rt.id, NOW, jobs.Outcome(JobStatus.FAILED, 1))
    db.session.commit()
    db.session.expire_all()
    retry = db.session.scalars(select(Job).where(Job.retry_of_id == first.id)).one()
    assert (retry.schedule_type, retry.attempt, retry.status, retry.slot_at) == (
        "retry",
        2,
        "scheduled",
        None,
    )
    assert retry.scheduled_for > datetime.now(UTC) + timedelta(seconds=250)
    assert db.session.get(RunTemplate, rt.id).next_run_at == NOW + timedelta(hours=1)  # type: ignore[union-attr]
