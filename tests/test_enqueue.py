"""Creating jobs: one statement per enqueue (no reads of the template first), many at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate, utcnow
from multiflexi_web.services.jobs import onetime
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.transitions import JobError
from tests.factories import make_company, make_runtemplate


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def test_an_enqueue_after_a_commit_is_one_statement(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()  # rt expired, as in a caller that commits after each job
    with statements() as seen:
        job = jobs.enqueue(rt, schedule_type="adhoc-cli")
    assert len([s for s in seen if not s.startswith("BEGIN")]) == 1, seen
    db.session.commit()
    assert (job.runtemplate_id, job.company_id, job.application_id) == (
        rt.id,
        rt.company_id,
        rt.application_id,
    )
    assert (job.executor, job.app_version, job.status) == ("native", "1.0", "scheduled")


def test_enqueue_many_makes_alike_jobs_in_one_statement(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    rt.executor = "docker"  # not yet flushed: the statement still sees it
    when = utcnow() + timedelta(hours=1)
    with statements() as seen:
        made = jobs.enqueue_many(
            rt,
            250,
            schedule_type="adhoc-cli",
            when=when,
            env_override={"A": "1", "TOKEN": "s"},
            secret_keys={"TOKEN"},
        )
    assert len([s for s in seen if "INSERT INTO job" in s]) == 1
    db.session.commit()
    assert len({j.id for j in made}) == 250
    stored = db.session.scalars(select(Job).where(Job.runtemplate_id == rt.id)).all()
    assert len(stored) == 250
    assert {(j.executor, j.scheduled_for, j.attempt, j.status) for j in stored} == {
        ("docker", when, 1, "scheduled")
    }
    sealed = onetime.unseal(stored[0].env_override)
    assert (sealed.values, sealed.secret) == ({"A": "1", "TOKEN": "s"}, frozenset({"TOKEN"}))


def test_a_skipped_slot_job_is_finished_with_its_reason(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    job = jobs.enqueue(rt, schedule_type="schedule", status=JobStatus.SKIPPED)
    db.session.commit()
    assert job.finished_at is not None and "misfire" in (job.status_reason or "")


def test_a_deleted_template_gets_no_job(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()
    db.session.execute(RunTemplate.__table__.delete().where(RunTemplate.id == rt.id))
    with pytest.raises(JobError, match="not found"):
        jobs.enqueue(rt, schedule_type="adhoc-cli")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_no_jobs_asked_none_made(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    assert jobs.enqueue_many(rt, 0, schedule_type="adhoc-cli") == []


def test_a_template_not_yet_flushed_gets_its_job(app: Flask) -> None:
    company = make_company()
    base = make_runtemplate(company)
    rt = RunTemplate(company_id=company.id, application_id=base.application_id, name="fresh")
    db.session.add(rt)
    job = jobs.enqueue(rt, schedule_type="adhoc-cli")
    db.session.commit()
    assert job.runtemplate_id == rt.id
