"""The htmx polling fragments build only what they render: a small, fixed number of queries."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, Role, User
from tests.factories import (
    isolate_requests,
    make_artifact,
    make_company,
    make_job,
    make_runtemplate,
    make_worker,
)
from tests.portal_b_helpers import add_output, member_client

HX = {"HX-Request": "true"}
# The login session's user row and the membership check come with every poll.
SUMMARY_MAX = 5  # + the job with its RunTemplate, application and company; who launched it; where
DETAILS_MAX = 6  # + the job; its artifacts, uploads and post-job actions
LIST_MAX = 3  # + one page of jobs
QUEUE_MAX = 4  # + the queued jobs and their count
DASHBOARD_MAX = 8  # + five counts and the recent jobs
OUTPUT_MAX = 3  # + one read of the job and its new output


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Each request in its own app context and session, as in production."""
    isolate_requests(app)
    return app.test_client()


def selects(client: FlaskClient, url: str) -> tuple[str, list[str]]:
    """The fragment an htmx poll of `url` gets, and every SELECT the request ran for it."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        resp = client.get(url, headers=HX)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert resp.status_code == 200, resp.text
    return resp.text, [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def live_job(client: FlaskClient) -> tuple[Job, User]:
    """A running job with all the job page can show (artifact, output, worker, who launched it),
    logged in as an operator of its company."""
    company = make_company()
    user = member_client(client, company, Role.OPERATOR)
    job = make_job(make_runtemplate(company), status=JobStatus.RUNNING)
    make_artifact(job, filename="report.pdf")
    add_output(job, ("stdout", b"hello\n"))
    job.worker_id, job.launched_by_id = make_worker().id, user.id
    make_job(make_runtemplate(company), status=JobStatus.SCHEDULED)
    db.session.commit()
    return job, user


def test_an_output_poll_that_sees_a_new_status_brings_header_and_details(
    app: Flask, client: FlaskClient
) -> None:
    job, user = live_job(client)
    names = (job.runtemplate.name, job.application.name, job.company.name, user.login, "testhost")
    html, sql = selects(client, f"/jobs/{job.id}/output?after=0&shown=scheduled")
    assert '<div id="job-summary" hx-swap-oob="true" data-status="running"' in html
    assert "<html" not in html and f"Job {job.id}" in html and "shown=running" in html
    assert all(name in html for name in names), names
    assert "Cancel job" in html and "Re-run" not in html and "report.pdf" in html
    assert '<div id="job-details" hx-swap-oob="true"' in html
    # One login and membership check; the details' job is the summary's.
    assert len(sql) <= OUTPUT_MAX + SUMMARY_MAX + DETAILS_MAX - 5, sql
    same, quiet = selects(client, f"/jobs/{job.id}/output?after=0&shown=running")
    assert "job-summary" not in same and "job-details" not in same
    assert len(quiet) <= OUTPUT_MAX, quiet  # no new status: no header, no details


def test_job_details_poll_builds_only_the_details(app: Flask, client: FlaskClient) -> None:
    job, _ = live_job(client)
    html, sql = selects(client, f"/jobs/{job.id}?part=details")
    assert html.lstrip().startswith('<div id="job-details"') and "report.pdf" in html
    assert "/bin/echo hello" in html and 'hx-trigger="every 2s"' in html
    assert len(sql) <= DETAILS_MAX, sql
    assert not [s for s in sql if "FROM runtemplate" in s or "FROM worker" in s]


def test_the_full_job_page_still_has_both_parts(app: Flask, client: FlaskClient) -> None:
    job, user = live_job(client)
    page = client.get(f"/jobs/{job.id}").text
    assert 'id="job-summary"' in page and 'id="job-details"' in page and "hello" in page
    assert "report.pdf" in page and user.login in page and "Cancel job" in page


def test_list_queue_dashboard_and_output_polls_stay_small(app: Flask, client: FlaskClient) -> None:
    job, _ = live_job(client)
    for url, bound, marker in (
        ("/jobs/", LIST_MAX, f'id="job-row-{job.id}"'),
        ("/queue/", QUEUE_MAX, "scheduled"),
        ("/", DASHBOARD_MAX, 'id="dashboard-live"'),
        (f"/jobs/{job.id}/output?after=0&shown=running", OUTPUT_MAX, "hello"),
    ):
        html, sql = selects(client, url)
        assert marker in html and "<html" not in html, url
        assert len(sql) <= bound, (url, sql)
