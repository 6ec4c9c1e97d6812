"""Dashboard (counts, charts, worker health, scoping), workers, audit log and error pages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from multiflexi_web.models import JobStatus, Role, utcnow
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_audit,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
    make_worker,
)

HTMX = {"HX-Request": "true"}


def _stat(html: str, name: str) -> int:
    match = re.search(rf'id="stat-{name}">(\d+)<', html)
    assert match, name
    return int(match.group(1))


def test_dashboard_counts_and_charts_are_scoped_to_the_users_companies(app: Flask) -> None:
    mine, other = make_company(), make_company()
    fast, slow = make_app("fast-app"), make_app("slow-app")
    rt_fast, rt_slow = make_runtemplate(mine, fast), make_runtemplate(mine, slow)
    for _ in range(3):
        make_job(rt_fast, status=JobStatus.SUCCEEDED, duration=2)
    make_job(rt_fast, status=JobStatus.FAILED, duration=2)
    make_job(rt_slow, status=JobStatus.SUCCEEDED, duration=90)
    make_job(rt_slow, status=JobStatus.RUNNING)
    make_job(rt_slow, status=JobStatus.SCHEDULED)
    make_job(rt_slow, status=JobStatus.FAILED, duration=90, started_at=utcnow() - timedelta(days=2))
    hidden = make_runtemplate(other, make_app("secret-app"))
    make_job(hidden, status=JobStatus.FAILED)
    make_job(hidden, status=JobStatus.RUNNING)
    viewer = make_user()
    add_member(viewer, mine, Role.VIEWER)
    html = client_for(app, viewer).get("/").get_data(as_text=True)
    assert (_stat(html, "running"), _stat(html, "queued"), _stat(html, "failed")) == (1, 1, 1)
    assert "secret-app" not in html
    assert html.count("<svg") == 2 and "<script" not in html.split("</head>")[1]
    assert "fast-app: 75% of 4" in html and "slow-app: 50% of 2" in html
    assert "slow-app: 1.5 min" in html and "fast-app: 2.0 s" in html
    root_html = client_for(app, make_user(is_admin=True)).get("/").get_data(as_text=True)
    assert (_stat(root_html, "running"), _stat(root_html, "failed")) == (2, 2)


def test_dashboard_polls_only_while_jobs_are_live(app: Flask) -> None:
    company = make_company()
    user = make_user(is_admin=True)
    client = client_for(app, user)
    assert 'hx-trigger="every 5s"' not in client.get("/").get_data(as_text=True)
    make_job(make_runtemplate(company), status=JobStatus.RUNNING)
    frag = client.get("/", headers=HTMX).get_data(as_text=True)
    assert frag.lstrip().startswith("{#") is False and 'id="dashboard-live"' in frag
    assert 'hx-trigger="every 5s"' in frag and "<html" not in frag


def test_worker_health_on_dashboard_and_workers_page(app: Flask) -> None:
    make_worker("executor", heartbeat_age=1)
    make_worker("scheduler", heartbeat_age=3600)
    client = client_for(app, make_user())
    dash = client.get("/").get_data(as_text=True)
    assert "1 stale" in dash and "executor" in dash
    page = client.get("/workers/").get_data(as_text=True)
    assert page.count(">stale<") == 1 and "scheduler@testhost" in page


def test_the_workers_page_tells_an_administrator_when_the_last_backup_was(
    app: Flask, tmp_path: Path
) -> None:
    admin = client_for(app, make_user(is_admin=True))
    assert "No backup recorded yet" in admin.get("/workers/").get_data(as_text=True)
    done = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "backups")])
    assert done.exit_code == 0, done.output
    page = admin.get("/workers/").get_data(as_text=True)
    assert 'id="last-backup">Last backup:' in page
    member = client_for(app, make_user()).get("/workers/").get_data(as_text=True)
    assert 'id="last-backup"' not in member


def test_no_daemon_is_called_out(app: Flask) -> None:
    html = client_for(app, make_user()).get("/").get_data(as_text=True)
    assert "no daemon is running" in html


def test_audit_log_filters_and_pages_by_keyset(app: Flask) -> None:
    for i in range(5):
        make_audit("update", "company", i, actor="alice")
    make_audit("delete", "user", 9, actor="bob")
    root = client_for(app, make_user(is_admin=True))
    html = root.get("/audit/?actor=bob").get_data(as_text=True)
    assert "delete" in html and "alice" not in html.split("<tbody")[1]
    first = root.get("/audit/?entity_type=company&limit=2").get_data(as_text=True)
    ids = [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", first)]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    cursor = re.search(r"before=(\d+)", first)
    assert cursor and int(cursor.group(1)) == ids[-1]
    more = root.get(f"/audit/?entity_type=company&limit=2&before={ids[-1]}", headers=HTMX)
    next_ids = [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", more.get_data(as_text=True))]
    assert next_ids and max(next_ids) < min(ids) and "<html" not in more.get_data(as_text=True)


def test_changes_made_in_the_portal_are_audited_with_user_and_ip(app: Flask) -> None:
    root = client_for(app, make_user("root", is_admin=True))
    root.post("/companies/new", data={"name": "Acme", "slug": "acme"})
    html = root.get("/audit/?entity_type=company").get_data(as_text=True)
    assert "company acme created" in html and ">root<" in html and "127.0.0.1" in html
    assert client_for(app, make_user()).get("/audit/").status_code == 403


@pytest.mark.parametrize("path", ["/no/such/page", "/companies/999999"])
def test_not_found_is_a_page_or_a_fragment(app: Flask, path: str) -> None:
    client = client_for(app, make_user(is_admin=True))
    page = client.get(path)
    assert page.status_code == 404 and "<html" in page.get_data(as_text=True)
    frag = client.get(path, headers=HTMX)
    body = frag.get_data(as_text=True)
    assert frag.status_code == 404 and 'id="error-fragment"' in body and "<html" not in body


def test_wrong_method_keeps_the_allow_header(app: Flask) -> None:
    resp = client_for(app, make_user()).post("/workers/")
    assert resp.status_code == 405 and resp.headers["Allow"] and "GET" in resp.headers["Allow"]


def test_forbidden_page_and_api_errors_are_json(app: Flask) -> None:
    client = client_for(app, make_user())
    resp = client.get("/users/")
    assert resp.status_code == 403 and "403" in resp.get_data(as_text=True)
    assert "Traceback" not in resp.get_data(as_text=True)
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.is_json


def test_server_error_renders_a_page_without_a_traceback(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom-for-test")
    def boom() -> str:
        raise RuntimeError("secret internals")

    client = client_for(app, make_user())
    for headers in ({}, HTMX):
        resp = client.get("/boom-for-test", headers=headers)
        body = resp.get_data(as_text=True)
        assert resp.status_code == 500 and "secret internals" not in body
        assert "Traceback" not in body and "Something went wrong" in body
