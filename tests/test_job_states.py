"""The job state table (models/job.py): complete, true to its writers and its doc, enforced."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from multiflexi_web.extensions import db
from multiflexi_web.models import LIVE_STATUSES, TERMINAL_STATUSES, JobStatus, utcnow
from multiflexi_web.models.job import TRANSITIONS, WAITING, allowed, created, made, sources
from multiflexi_web.services.jobs import statements
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.scheduling import slots
from multiflexi_web.services.scheduling.tick import Run
from tests import state_guard
from tests.executor_support import shell_rt
from tests.factories import make_job

DOC = Path(__file__).parent.parent / "docs" / "job-states.md"
ROW = re.compile(r"^\| (.+?) \| (\S+) \| `(\S+)` \| (.+?) \|$")


def test_every_status_is_reached_and_every_by_is_a_function() -> None:
    assert {t.to for t in TRANSITIONS} == set(JobStatus)
    for t in TRANSITIONS:
        module, _, name = t.by.rpartition(".")
        fn = getattr(importlib.import_module(f"multiflexi_web.services.{module}"), name, None)
        assert inspect.isfunction(fn), f"{t}: multiflexi_web.services.{t.by} is no function"
        assert t.why.strip(), f"{t}: say why"
    assert len({(t.frm, t.to, t.by) for t in TRANSITIONS}) == len(TRANSITIONS)


def test_the_status_sets_follow_from_the_table() -> None:
    leaving = {t.frm for t in TRANSITIONS}
    assert {s for s in JobStatus if s not in leaving} == TERMINAL_STATUSES
    assert {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.TIMED_OUT,
        JobStatus.CANCELLED,
        JobStatus.LOST,
        JobStatus.SKIPPED,
    } == TERMINAL_STATUSES
    assert set(JobStatus) - TERMINAL_STATUSES == LIVE_STATUSES
    assert all(s.is_terminal is (s in TERMINAL_STATUSES) for s in JobStatus)
    # The claim is the only way to running, and it takes exactly the waiting jobs.
    assert {t.by for t in TRANSITIONS if t.to is JobStatus.RUNNING} == {"jobs.transitions.claim"}
    assert WAITING == ("scheduled", "blocked")
    assert statements.FINISHED_FROM == (JobStatus.RUNNING,)
    assert {JobStatus.SCHEDULED, JobStatus.SKIPPED} == slots.CREATED


def test_the_look_ups_refuse_changes_the_table_lacks() -> None:
    assert allowed(None, JobStatus.SCHEDULED) and allowed(JobStatus.RUNNING, JobStatus.LOST)
    assert not allowed(JobStatus.SUCCEEDED, JobStatus.RUNNING)
    assert not allowed(None, JobStatus.RUNNING)
    assert sources("jobs.transitions.cancel", to=JobStatus.CANCELLED) == (
        JobStatus.SCHEDULED,
        JobStatus.BLOCKED,
    )
    with pytest.raises(LookupError, match=r"jobs\.transitions\.cancel never moves a job to lost"):
        sources("jobs.transitions.cancel", to=JobStatus.LOST)
    with pytest.raises(LookupError, match="from succeeded to running"):
        made("jobs.transitions.claim", JobStatus.SUCCEEDED, JobStatus.RUNNING)
    with pytest.raises(LookupError, match=r"jobs\.transitions\.finish creates no job"):
        created("jobs.transitions.finish")


def test_the_doc_shows_the_table() -> None:
    rows = [ROW.match(line) for line in DOC.read_text().splitlines()]
    doc = [(m[1], m[2], m[3], m[4]) for m in rows if m]
    model = [(t.frm.value if t.frm else "(new)", t.to.value, t.by, t.why) for t in TRANSITIONS]
    assert doc == model, "docs/job-states.md and models/job.py TRANSITIONS differ"


def test_writers_refuse_to_create_a_job_the_table_does_not(app: Flask) -> None:
    rt = shell_rt("true")
    with pytest.raises(jobs.JobError, match=f"RunTemplate {rt.id}: .* cannot be created running"):
        jobs.enqueue(rt, schedule_type="adhoc-cli", status=JobStatus.RUNNING)
    with pytest.raises(ValueError, match="slot jobs cannot be created lost"):
        slots.insert_bulk([([rt.id], "hourly", [Run(utcnow(), JobStatus.LOST)])], utcnow())


def _refused(sql: str, **params: object) -> bool:
    """Whether the database refuses the statement as a change outside the table (its effect
    is rolled back either way)."""
    nested = db.session.begin_nested()
    try:
        db.session.execute(text(sql), params)
    except DBAPIError as exc:
        assert state_guard.MESSAGE in str(exc.orig)
        return True
    finally:
        nested.rollback()
    return False


def test_the_test_database_refuses_what_the_table_lacks(app: Flask) -> None:
    rt = shell_rt("true")
    done = make_job(rt, status=JobStatus.SUCCEEDED)
    assert _refused("UPDATE job SET status = 'running' WHERE id = :id", id=done.id)
    assert not _refused("UPDATE job SET status = 'succeeded' WHERE id = :id", id=done.id)
    insert = (
        "INSERT INTO job (runtemplate_id, company_id, application_id, status, schedule_type,"
        " scheduled_for, attempt, executor, cancel_requested, stdout_bytes, stderr_bytes,"
        " stdout_dropped, stderr_dropped, created_at)"
        " VALUES (:rt, :c, :a, :s, 'adhoc', :now, 1, 'native', false, 0, 0, 0, 0, :now)"
    )
    keys = {"rt": rt.id, "c": rt.company_id, "a": rt.application_id, "now": utcnow()}
    for status in JobStatus:
        assert _refused(insert, s=status.value, **keys) is (not allowed(None, status)), status


def test_every_pair_of_statuses_is_refused_or_allowed_as_the_table_says(app: Flask) -> None:
    rt = shell_rt("true", overlap_policy="allow")
    jobs_in = {s: make_job(rt, status=s).id for s in JobStatus}  # all reachable (factories)
    status_of = "SELECT status FROM job WHERE id = :id"
    for frm, job_id in jobs_in.items():
        for to in JobStatus:
            assert db.session.scalar(text(status_of), {"id": job_id}) == frm
            legal = frm is to or allowed(frm, to)
            sql = "UPDATE job SET status = :to WHERE id = :id"
            assert _refused(sql, to=to.value, id=job_id) is not legal, (frm, to)
