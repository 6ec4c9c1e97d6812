"""Job list, detail, live output, cancel and re-run pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    CANCELLABLE_STATUSES,
    TERMINAL_STATUSES,
    FileUpload,
    Job,
    JobStatus,
    Role,
    utcnow,
)
from multiflexi_web.models.job import WAITING
from multiflexi_web.security.secrets import cipher
from tests.factories import isolate_requests, make_app, make_company, make_job, make_runtemplate
from tests.portal_b_helpers import add_output, fresh, member_client

HX = {"HX-Request": "true"}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Each request in its own app context and session, as in production."""
    isolate_requests(app)
    return app.test_client()


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'id="job-row-(\d+)"', html)]


def test_list_is_newest_first_with_keyset_pages(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    rt = make_runtemplate(company)
    jobs = [make_job(rt) for _ in range(55)]
    first = client.get("/jobs/")
    assert first.status_code == 200
    page1 = _ids(first.text)
    assert page1 == [j.id for j in reversed(jobs)][:50]
    assert f"before={page1[-1]}" in first.text
    page2 = _ids(client.get(f"/jobs/?before={page1[-1]}").text)
    assert page2 == [j.id for j in reversed(jobs)][50:]


def test_filters_by_status_app_template_company_and_date(app: Flask, client: FlaskClient) -> None:
    company, other = make_company(), make_company()
    member_client(client, company, None, admin=True)
    app_a, app_b = make_app(), make_app()
    rt_a, rt_b, rt_other = (
        make_runtemplate(company, app_a),
        make_runtemplate(company, app_b),
        make_runtemplate(other, app_a),
    )
    failed = make_job(rt_a, status=JobStatus.FAILED)
    ok_b = make_job(rt_b)
    foreign = make_job(rt_other)
    old = make_job(rt_a, started_at=utcnow() - timedelta(days=10))
    assert _ids(client.get("/jobs/?status=failed").text) == [failed.id]
    assert set(_ids(client.get(f"/jobs/?app={app_b.id}").text)) == {ok_b.id}
    assert set(_ids(client.get(f"/jobs/?runtemplate={rt_a.id}").text)) == {old.id, failed.id}
    assert foreign.id not in _ids(client.get(f"/jobs/?company={company.id}").text)
    day = (utcnow() - timedelta(days=10)).date().isoformat()
    assert _ids(client.get(f"/jobs/?since={day}&until={day}").text) == [old.id]
    bad = client.get("/jobs/?status=nonsense")
    assert bad.status_code == 400 and "status" in bad.text


def test_list_shows_only_companies_the_user_belongs_to(app: Flask, client: FlaskClient) -> None:
    mine, theirs = make_company(), make_company()
    member_client(client, mine, Role.VIEWER)
    visible = make_job(make_runtemplate(mine))
    hidden = make_job(make_runtemplate(theirs))
    assert _ids(client.get("/jobs/").text) == [visible.id]
    assert client.get(f"/jobs/{hidden.id}").status_code == 404
    assert client.get(f"/jobs/{hidden.id}/output?after=0").status_code == 404


def test_table_polls_only_while_a_job_in_view_is_live(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    rt = make_runtemplate(company)
    job = make_job(rt, status=JobStatus.RUNNING)
    live = client.get("/jobs/", headers=HX)
    assert live.text.lstrip().startswith('<div id="jobs-table"')
    assert 'hx-trigger="every 3s"' in live.text and "<html" not in live.text
    db.session.execute(update(Job).where(Job.id == job.id).values(status="succeeded"))
    db.session.commit()
    done = client.get("/jobs/", headers=HX)
    assert "hx-trigger" not in done.text and 'data-live="no"' in done.text


def test_detail_shows_exit_meaning_command_and_masked_env(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    rt = make_runtemplate(company, make_app(exit_codes={3: "no statements to import"}))
    job = make_job(rt, status=JobStatus.FAILED, exit_code=3)
    job.command = ["/usr/bin/importer", "--from", "a b"]
    job.env = [
        {
            "key": "API_TOKEN",
            "value": "plain-should-not-show",
            "source": "credential",
            "secret": True,
        },
        {"key": "REGION", "value": "eu", "source": "runtemplate", "secret": False},
    ]
    db.session.commit()
    page = client.get(f"/jobs/{job.id}").text
    assert "no statements to import" in page
    assert "/usr/bin/importer --from &#39;a b&#39;" in page
    assert "plain-should-not-show" not in page and "••••••••" in page
    assert "credential" in page and "REGION" in page and "runtemplate" in page
    assert 'hx-trigger="every 2s"' not in page  # finished: the summary does not poll


def test_killed_job_exit_code_is_explained(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    job = make_job(make_runtemplate(company), status=JobStatus.CANCELLED, exit_code=-15)
    assert "killed by SIGTERM" in client.get(f"/jobs/{job.id}").text


def test_output_arrives_incrementally_and_polling_stops_at_the_end(
    app: Flask, client: FlaskClient
) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    job = make_job(make_runtemplate(company), status=JobStatus.RUNNING)
    ids = add_output(job, ("stdout", b"line 1\n"), ("stderr", b"\x1b[31mboom\x1b[0m\n"))
    page = client.get(f"/jobs/{job.id}").text
    assert "line 1" in page and '<span class="ansi-fg-c1">boom</span>' in page
    assert f"after={ids[-1]}" in page and 'hx-trigger="every 1s"' in page
    empty = client.get(f"/jobs/{job.id}/output?after={ids[-1]}&shown=running", headers=HX).text
    assert "hx-swap-oob" not in empty and f"after={ids[-1]}" in empty
    more = add_output(job, ("stdout", "line 2 ž\n".encode()))
    fragment = client.get(f"/jobs/{job.id}/output?after={ids[-1]}&shown=running", headers=HX).text
    assert 'hx-swap-oob="beforeend:#console"' in fragment
    assert "line 2 ž" in fragment and "line 1" not in fragment and f"after={more[-1]}" in fragment
    db.session.execute(update(Job).where(Job.id == job.id).values(status="succeeded"))
    db.session.commit()
    final = client.get(f"/jobs/{job.id}/output?after={more[-1]}&shown=succeeded", headers=HX).text
    assert "hx-get" not in final and "End of output" in final
    assert client.get(f"/jobs/{job.id}/output?after=x").status_code == 400


def test_output_download_has_the_whole_stream(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    job = make_job(make_runtemplate(company))
    add_output(job, ("stdout", b"a\n"), ("stderr", b"err\n"), ("stdout", b"b\n"))
    resp = client.get(f"/jobs/{job.id}/output/stdout.txt")
    assert resp.data == b"a\nb\n"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert client.get(f"/jobs/{job.id}/output/passwd.txt").status_code == 404


def test_cancel_needs_operator_and_cancels_a_waiting_job(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    rt = make_runtemplate(company)
    job = make_job(rt, status=JobStatus.SCHEDULED)
    member_client(client, company, Role.VIEWER)
    assert client.post(f"/jobs/{job.id}/cancel").status_code == 403
    client.post("/logout")
    member_client(client, company, Role.OPERATOR)
    resp = client.post(f"/jobs/{job.id}/cancel", follow_redirects=True)
    assert resp.status_code == 200 and "cancelled" in resp.text
    assert fresh(Job, job.id).status == JobStatus.CANCELLED
    again = client.post(f"/jobs/{job.id}/cancel", follow_redirects=True)
    assert "nothing to cancel" in again.text


def test_cancel_of_a_running_job_asks_the_executor(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.OPERATOR)
    job = make_job(make_runtemplate(company), status=JobStatus.RUNNING)
    client.post(f"/jobs/{job.id}/cancel")
    row = fresh(Job, job.id)
    assert row.cancel_requested is True and row.status == JobStatus.RUNNING


def test_rerun_repeats_one_time_env_and_files(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    user = member_client(client, company, Role.OPERATOR)
    job = make_job(make_runtemplate(company))
    job.env_override = cipher().encrypt_json({"DAY": "2026-01-01", "INPUT": "in.csv"})
    db.session.add(FileUpload(job_id=job.id, field="INPUT", filename="in.csv", content=b"1,2\n"))
    db.session.commit()
    resp = client.post(f"/jobs/{job.id}/rerun")
    assert resp.status_code == 302
    new_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    new = fresh(Job, new_id)
    assert new.status == JobStatus.SCHEDULED and new.schedule_type == "adhoc-web"
    assert new.launched_by_id == user.id and new.runtemplate_id == job.runtemplate_id
    assert cipher().decrypt_json(new.env_override) == {"DAY": "2026-01-01", "INPUT": "in.csv"}
    files = db.session.scalars(select(FileUpload).where(FileUpload.job_id == new_id)).all()
    assert [(f.field, f.filename, f.content) for f in files] == [("INPUT", "in.csv", b"1,2\n")]


def test_queue_lists_waiting_jobs_oldest_first_with_wait_time(
    app: Flask, client: FlaskClient
) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    rt = make_runtemplate(company)
    late = make_job(
        rt, status=JobStatus.SCHEDULED, started_at=utcnow() - timedelta(hours=2, minutes=45)
    )
    soon = make_job(
        rt, status=JobStatus.SCHEDULED, started_at=utcnow() + timedelta(minutes=5, seconds=30)
    )
    blocked = make_job(rt, status=JobStatus.BLOCKED, started_at=utcnow() + timedelta(minutes=30))
    blocked.block_reason = "credential <Bank> is unavailable"
    db.session.commit()
    make_job(rt, status=JobStatus.SUCCEEDED)
    page = client.get("/queue/").text
    assert re.findall(r'id="queue-row-(\d+)"', page) == [
        str(late.id),
        str(soon.id),
        str(blocked.id),
    ]
    assert "waiting 2h 45m" in page and "in 5m" in page
    # Each row names its template, application and company, and why a blocked job waits
    # (escaped: a reason may quote what a tenant typed).
    row = page.split(f'id="queue-row-{late.id}"', 1)[1].split("</tr>", 1)[0]
    assert f'href="/runtemplates/{rt.id}">{rt.name}</a>' in row
    assert f"<td>{rt.application.name}</td>" in row and f"<td>{company.name}</td>" in row
    assert "credential &lt;Bank&gt; is unavailable" in page
    assert 'hx-trigger="every 5s"' in page
    # The waiting ones (the job state table has no change from succeeded to cancelled).
    db.session.execute(update(Job).where(Job.status.in_(WAITING)).values(status="cancelled"))
    db.session.commit()
    empty = client.get("/queue/", headers=HX).text
    assert "hx-trigger" not in empty and "Nothing is waiting" in empty
    assert db.session.scalar(select(func.count()).select_from(Job)) == 4


def test_live_job_page_polls_its_output_with_the_header_and_its_details(
    app: Flask, client: FlaskClient
) -> None:
    company = make_company()
    member_client(client, company, Role.OPERATOR)
    job = make_job(make_runtemplate(company), status=JobStatus.SCHEDULED)
    page = client.get(f"/jobs/{job.id}").text
    assert page.count('hx-trigger="every 2s"') == 1 and "shown=scheduled" in page
    assert "Cancel job" in page and "Re-run" not in page  # it has not started: nothing to re-run
    same = client.get(f"/jobs/{job.id}/output?after=0&shown=scheduled", headers=HX).text
    assert "job-summary" not in same and "shown=scheduled" in same
    db.session.execute(update(Job).where(Job.id == job.id).values(status="running"))
    db.session.commit()
    ids = add_output(job, ("stdout", b"started\n"))
    moved = client.get(f"/jobs/{job.id}/output?after=0&shown=scheduled", headers=HX).text
    # The output and the header that goes with it arrive in one answer.
    assert "started" in moved and 'hx-swap-oob="true" data-status="running"' in moved
    assert "Cancel job" in moved and "Re-run" not in moved and f"after={ids[-1]}" in moved
    db.session.execute(update(Job).where(Job.id == job.id).values(status="failed", exit_code=2))
    db.session.commit()
    last = client.get(f"/jobs/{job.id}/output?after={ids[-1]}&shown=running", headers=HX).text
    assert 'data-status="failed"' in last and "Re-run" in last and "Cancel job" not in last
    assert "hx-get" not in last.split('id="job-summary"')[0]  # the poller stopped
    details = client.get(f"/jobs/{job.id}?part=details", headers=HX).text
    assert details.lstrip().startswith('<div id="job-details"') and "Environment" in details


@pytest.mark.parametrize("status", list(JobStatus))
def test_job_buttons_follow_the_state_table(
    app: Flask, client: FlaskClient, status: JobStatus
) -> None:
    company = make_company()
    member_client(client, company, Role.OPERATOR)
    page = client.get(f"/jobs/{make_job(make_runtemplate(company), status=status).id}").text
    assert ("Cancel job" in page) == (status in CANCELLABLE_STATUSES), status
    assert ("Re-run" in page) == (status in TERMINAL_STATUSES), status
    assert not ("Cancel job" in page and "Re-run" in page)


def test_date_filtered_pages_follow_planned_time_without_gaps(
    app: Flask, client: FlaskClient
) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    rt = make_runtemplate(company)
    base = utcnow() - timedelta(days=3)
    # Ids do not follow planned time (e.g. catch-up runs of missed slots come later).
    offsets = [5, 1, 60, 30, 2, 45, 15, 59, 10, 20] * 6
    jobs = [
        make_job(rt, started_at=base + timedelta(minutes=m, seconds=i))
        for i, m in enumerate(offsets)
    ]
    day = base.date().isoformat()
    seen: list[int] = []
    url = f"/jobs/?since={day}&until={(base + timedelta(days=1)).date().isoformat()}"
    while url:
        html = client.get(url).text
        seen += _ids(html)
        more = re.search(r'rel="next" href="([^"]+)"', html)
        url = more.group(1).replace("&amp;", "&") if more else ""
    expected = [j.id for j in sorted(jobs, key=lambda j: (j.scheduled_for, j.id), reverse=True)]
    assert seen == expected


def test_output_backlog_is_paged_by_rows_and_bytes(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, Role.VIEWER)
    job = make_job(make_runtemplate(company), status=JobStatus.SUCCEEDED)
    ids = add_output(job, *[("stdout", f"row {i}\n".encode()) for i in range(40)])
    first = client.get(f"/jobs/{job.id}/output?after=0", headers=HX).text
    assert 'hx-trigger="load"' in first and f"after={ids[31]}" in first
    assert "row 31\n" in first and "row 32\n" not in first
    rest = client.get(f"/jobs/{job.id}/output?after={ids[31]}", headers=HX).text
    assert "row 39" in rest and "hx-get" not in rest
    big = make_job(make_runtemplate(company), status=JobStatus.SUCCEEDED)
    chunk_ids = add_output(big, *[("stdout", bytes([65 + i]) * 600_000) for i in range(3)])
    page = client.get(f"/jobs/{big.id}/output?after=0", headers=HX).text
    assert page.count("A") >= 600_000 and "B" * 100 not in page
    assert f"after={chunk_ids[0]}" in page and 'hx-trigger="load"' in page


def test_member_app_filter_sees_only_own_companies_jobs(app: Flask, client: FlaskClient) -> None:
    mine, theirs = make_company(), make_company()
    member_client(client, mine, Role.VIEWER)
    shared, foreign_only = make_app(), make_app()
    own_job = make_job(make_runtemplate(mine, shared))
    make_job(make_runtemplate(theirs, shared))
    make_job(make_runtemplate(theirs, foreign_only))
    assert _ids(client.get(f"/jobs/?app={shared.id}").text) == [own_job.id]
    assert _ids(client.get(f"/jobs/?app={foreign_only.id}").text) == []


def test_an_output_poll_is_one_query_on_job_output(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    member_client(client, company, None, admin=True)
    job = make_job(make_runtemplate(company), status=JobStatus.RUNNING)
    ids = add_output(job, ("stdout", b"a\n"), ("stdout", b"b\n"))
    url = f"/jobs/{job.id}/output?after={ids[0]}&shown=running"
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        resp = client.get(url, headers=HX)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert "b\n" in resp.text
    reads = [s for s in statements if "job_output" in s]
    assert len(reads) == 1 and "job_output.id >" in reads[0]
    # The rest is the login session's user row; nothing else per poll.
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
