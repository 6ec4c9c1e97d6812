"""Creating jobs: one statement per enqueue (no reads of the template first), many at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import event, func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate, utcnow
from multiflexi_web.services.jobs import onetime
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.transitions import JobError
from tests.factories import make_company, make_runtemplate


class _Watched(psycopg.Cursor[Any]):
    seen: list[str]

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self.seen.append(str(query))
        return super().execute(query, params, **kwargs)


def _watch(dbapi_conn: Any, seen: list[str]) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        # Every statement SQLite starts, and again for each run of a trigger (the job state
        # guard's, per inserted row), which Python reports with the outer statement's text:
        # a repeat is a trigger, not a second execution (PostgreSQL's count is exact).
        def traced(sql: str) -> None:
            if not seen or seen[-1] != sql:
                seen.append(sql)

        dbapi_conn.set_trace_callback(traced)
    else:  # psycopg sends BEGIN itself: only the statements run on its cursors are seen
        dbapi_conn.cursor_factory = type("Watched", (_Watched,), {"seen": seen})


def _unwatch(dbapi_conn: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.set_trace_callback(None)
    else:
        dbapi_conn.cursor_factory = psycopg.Cursor


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements sent to the database, seen at the driver's connection: the job service's
    raw statements (db/raw.py) never pass SQLAlchemy's cursor events."""
    seen: list[str] = []
    watched: list[Any] = []

    def checkout(dbapi_conn: Any, *_args: Any) -> None:
        _watch(dbapi_conn, seen)
        watched.append(dbapi_conn)

    event.listen(db.engine, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(db.engine, "checkout", checkout)
        for conn in watched:
            _unwatch(conn)


def test_an_enqueue_after_a_commit_is_one_statement(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    jobs.enqueue(rt, schedule_type="adhoc-cli")  # SQLite: prepared once the schema is read
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


def test_the_returned_job_is_loaded_as_a_query_would_and_its_changes_are_flushed(
    app: Flask,
) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()
    when = utcnow() + timedelta(minutes=5)
    job = jobs.enqueue(rt, schedule_type="adhoc-cli", when=when)
    with statements() as seen:  # every column is there, with the values a query would read
        assert (job.scheduled_for, job.scheduled_for.tzinfo) == (when, when.tzinfo)
        assert (job.cancel_requested, job.chain_depth, job.stdout_bytes) == (False, 0, 0)
        assert (job.status_reason, job.finished_at, job.env) == (None, None, None)
    assert seen == []
    assert job in db.session and not db.session.dirty
    job.chain_depth = 3  # as the chained-job action does before its commit
    job_id = job.id
    db.session.commit()
    db.session.expunge_all()
    assert db.session.get_one(Job, job_id).chain_depth == 3


def test_an_id_handed_out_again_after_a_rolled_back_savepoint_gets_its_job(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()
    with db.session.begin_nested() as nested:  # a scheduler's slot insert, given up
        gone = jobs.enqueue(rt, schedule_type="schedule")
        gone_id = gone.id
        nested.rollback()
    job = jobs.enqueue(rt, schedule_type="adhoc-cli")  # SQLite: the same rowid again
    if db.engine.dialect.name == "sqlite":
        assert job.id == gone_id
    assert (job.schedule_type, job.status) == ("adhoc-cli", "scheduled")
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Job)) == 1


def test_submit_commits_its_job_on_its_own_in_one_statement(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()
    jobs.submit(rt.id, schedule_type="adhoc-cli")  # SQLite: prepared once the schema is read
    used: list[Any] = []
    event.listen(db.engine, "checkout", lambda conn, *_: used.append(conn))
    db.session.scalar(select(func.count()).select_from(Job))  # the caller's read transaction
    with statements() as seen:
        job_id = jobs.submit(
            rt.id, schedule_type="api", env_override={"A": "1", "TOKEN": "s"}, secret_keys={"TOKEN"}
        )
    # One statement (SQLite's trace would show a BEGIN or COMMIT too) in autocommit on
    # PostgreSQL (else psycopg sends BEGIN itself), which the pooled connection leaves again.
    assert len(seen) == 1 and "INSERT INTO job" in seen[0], seen
    submitted = [conn for conn in used if not isinstance(conn, sqlite3.Connection)]
    assert all(conn.autocommit is False for conn in submitted)
    db.session.rollback()  # the caller's transaction: the job was never part of it
    job = db.session.get_one(Job, job_id)
    assert (job.runtemplate_id, job.company_id, job.executor, job.app_version) == (
        rt.id,
        rt.company_id,
        "native",
        "1.0",
    )
    assert (job.status, job.schedule_type, job.attempt) == ("scheduled", "api", 1)
    sealed = onetime.unseal(job.env_override)
    assert (sealed.values, sealed.secret) == ({"A": "1", "TOKEN": "s"}, frozenset({"TOKEN"}))


def test_submit_to_a_template_that_is_gone_makes_nothing(app: Flask) -> None:
    rt = make_runtemplate(make_company())
    db.session.commit()
    rt_id = rt.id
    db.session.execute(RunTemplate.__table__.delete().where(RunTemplate.id == rt_id))
    db.session.commit()
    with pytest.raises(JobError, match=f"RunTemplate {rt_id}: not found"):
        jobs.submit(rt_id, schedule_type="adhoc-cli")
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0
