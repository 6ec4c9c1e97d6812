"""Portal pause, resume and drain: buttons where they belong, roles, audit, the Workers page."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Pause, Role
from tests.factories import make_app, make_company, make_runtemplate, make_worker
from tests.portal_b_helpers import member_client


def _paused() -> list[tuple[str, int]]:
    db.session.rollback()
    return [(p.scope, p.target_id) for p in db.session.scalars(select(Pause).order_by(Pause.id))]


def test_an_operator_pauses_and_resumes_a_runtemplate_from_its_page(
    app: Flask, client: FlaskClient
) -> None:
    company = make_company()
    rt = make_runtemplate(company)
    member_client(client, company, Role.OPERATOR)
    page = client.get(f"/runtemplates/{rt.id}").text
    assert f'action="/runtemplates/{rt.id}/pause"' in page and "paused" not in page
    done = client.post(
        f"/runtemplates/{rt.id}/pause", data={"reason": "vendor maintenance"}, follow_redirects=True
    )
    assert f"Runtemplate {rt.id}: paused." in done.text
    assert (
        "vendor maintenance" in done.text and f'action="/runtemplates/{rt.id}/resume"' in done.text
    )
    assert _paused() == [("runtemplate", rt.id)]
    again = client.post(f"/runtemplates/{rt.id}/pause", follow_redirects=True)
    assert "already paused" in again.text
    client.post(f"/runtemplates/{rt.id}/resume")
    assert _paused() == []
    audit = db.session.scalars(
        select(AuditLog).where(AuditLog.action != "login").order_by(AuditLog.id)
    ).all()
    assert [(a.action, a.entity_type, a.details["changed"]) for a in audit] == [
        ("pause", "runtemplate", True),
        ("pause", "runtemplate", False),
        ("resume", "runtemplate", True),
    ]


def test_a_company_pause_shows_on_its_templates_and_needs_the_admin_role(
    app: Flask, client: FlaskClient
) -> None:
    company = make_company()
    rt = make_runtemplate(company)
    member_client(client, company, Role.OPERATOR)
    assert client.post(f"/companies/{company.id}/pause").status_code == 403
    client.post("/logout")
    member_client(client, company, Role.ADMIN)
    client.post(f"/companies/{company.id}/pause")
    assert _paused() == [("company", company.id)]
    assert "Paused: its jobs wait" in client.get(f"/runtemplates/{rt.id}").text
    other = make_company()
    assert client.post(f"/companies/{other.id}/pause").status_code == 404
    assert client.post(f"/applications/{rt.application_id}/pause").status_code == 403
    assert client.post("/workers/pause").status_code == 403


def test_a_global_admin_pauses_applications_and_the_platform(
    app: Flask, client: FlaskClient
) -> None:
    prog = make_app()
    member_client(client, make_company(), None, admin=True)
    assert f'action="/applications/{prog.id}/pause"' in client.get(f"/applications/{prog.id}").text
    client.post(f"/applications/{prog.id}/pause")
    workers = client.get("/workers/").text
    assert 'action="/workers/pause"' in workers and "The platform is paused" not in workers
    client.post("/workers/pause")
    assert "The platform is paused" in client.get("/workers/").text
    assert _paused() == [("application", prog.id), ("platform", 0)]
    client.post("/workers/resume")
    assert _paused() == [("application", prog.id)]


def test_the_workers_page_drains_an_executor_and_shows_it_draining(
    app: Flask, client: FlaskClient
) -> None:
    executor, scheduler = make_worker("executor"), make_worker("scheduler")
    member_client(client, make_company(), None, admin=True)
    page = client.get("/workers/").text
    assert f'action="/workers/{executor.id}/drain"' in page
    assert f'action="/workers/{scheduler.id}/drain"' not in page
    client.post(f"/workers/{executor.id}/drain")
    page = client.get("/workers/").text
    assert "draining</span>" in page and f'action="/workers/{executor.id}/drain"' not in page
    refused = client.post(f"/workers/{scheduler.id}/drain", follow_redirects=True)
    assert "not an executor" in refused.text
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.action != "login")).all()
    assert actions == ["drain"]


def test_only_a_global_admin_drains(app: Flask, client: FlaskClient) -> None:
    executor = make_worker("executor")
    company = make_company()
    member_client(client, company, Role.ADMIN)
    assert client.post(f"/workers/{executor.id}/drain").status_code == 403
    assert "/drain" not in client.get("/workers/").text
