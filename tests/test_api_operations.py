"""Pause, resume and drain over the API: who may, what it answers, the audit row."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Pause
from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import make_worker


def _post(client: FlaskClient, secret: str, path: str, status: int) -> dict:  # type: ignore[type-arg]
    resp = client.post(f"/api/v1{path}", headers=bearer(secret))
    assert resp.status_code == status, resp.get_data(as_text=True)
    body: dict = resp.get_json()  # type: ignore[type-arg]
    return body


def _paused() -> list[tuple[str, int]]:
    db.session.rollback()
    return [(p.scope, p.target_id) for p in db.session.scalars(select(Pause).order_by(Pause.id))]


def test_an_operator_pauses_and_resumes_a_runtemplate_of_their_company(
    app: Flask, client: FlaskClient
) -> None:
    s = make_scene(app)
    op = make_token(s.operator)
    body = _post(client, op, f"/runtemplates/{s.rt_a.id}/pause", 200)
    assert body == {"scope": "runtemplate", "target_id": s.rt_a.id, "paused": True, "changed": True}
    assert not _post(client, op, f"/runtemplates/{s.rt_a.id}/pause", 200)["changed"]
    assert _paused() == [("runtemplate", s.rt_a.id)]
    _post(client, op, f"/runtemplates/{s.rt_b.id}/pause", 404)  # another company's: unseen
    _post(client, make_token(s.viewer), f"/runtemplates/{s.rt_a.id}/resume", 403)
    assert _post(client, op, f"/runtemplates/{s.rt_a.id}/resume", 200)["changed"]
    assert _paused() == []
    audit = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    actor = f"{s.operator.login} (token 'ci')"
    assert [(a.action, a.actor, a.details["changed"]) for a in audit] == [
        ("pause", actor, True),
        ("pause", actor, False),
        ("resume", actor, True),
    ]


def test_wider_scopes_need_wider_roles(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    op, boss, root = make_token(s.operator), make_token(s.company_admin), make_token(s.admin)
    _post(client, op, f"/companies/{s.a.id}/pause", 403)
    _post(client, boss, f"/companies/{s.a.id}/pause", 200)
    _post(client, boss, f"/companies/{s.b.id}/pause", 404)
    app_id = s.rt_a.application_id
    _post(client, boss, f"/applications/{app_id}/pause", 403)
    _post(client, boss, "/platform/pause", 403)
    _post(client, root, f"/applications/{app_id}/pause", 200)
    _post(client, root, "/platform/pause", 200)
    assert _paused() == [("company", s.a.id), ("application", app_id), ("platform", 0)]
    listed = client.get("/api/v1/pauses", headers=bearer(root)).get_json()
    assert [p["scope"] for p in listed["items"]] == ["company", "application", "platform"]
    assert client.get("/api/v1/pauses", headers=bearer(boss)).status_code == 403
    _post(client, root, "/platform/resume", 200)
    assert ("platform", 0) not in _paused()


def test_a_global_admin_drains_an_executor(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    executor, scheduler = make_worker("executor"), make_worker("scheduler")
    _post(client, make_token(s.company_admin), f"/workers/{executor.id}/drain", 403)
    root = make_token(s.admin)
    body = _post(client, root, f"/workers/{executor.id}/drain", 200)
    assert body["status"] == "draining" and body["drain_requested_at"]
    assert (
        "not an executor" in _post(client, root, f"/workers/{scheduler.id}/drain", 422)["message"]
    )
    _post(client, root, "/workers/999999/drain", 404)
    entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "drain")).one()
    assert entry.entity_id == str(executor.id)
