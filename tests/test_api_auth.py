"""REST API authentication: tokens (expiry, revocation, scopes), Basic, no session, rate limit."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, AuditLog
from multiflexi_web.services.accounts import tokens
from tests.api_helpers import basic, bearer, expire, get_json, make_scene, make_token
from tests.factories import client_for, make_job, reread


def _error(resp, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


def test_no_credentials_is_401_json_with_a_challenge(app: Flask, client: FlaskClient) -> None:
    make_scene(app)
    resp = client.get("/api/v1/companies")
    _error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # Unknown URLs under /api answer JSON too, never the login page.
    _error(client.get("/api/v1/nope"), 404, "not_found")
    _error(client.delete("/api/v1/health"), 405, "method_not_allowed")


def test_token_reads_only_its_users_companies(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.viewer)
    body = get_json(client, "/api/v1/companies", secret)
    assert [c["slug"] for c in body["items"]] == ["alpha"] and body["next"] is None
    _error(client.get(f"/api/v1/companies/{s.b.id}", headers=bearer(secret)), 404, "not_found")
    rt_b = client.get(f"/api/v1/runtemplates/{s.rt_b.id}", headers=bearer(secret))
    _error(rt_b, 404, "not_found")
    job_b = make_job(s.rt_b)
    _error(client.get(f"/api/v1/jobs/{job_b.id}", headers=bearer(secret)), 404, "not_found")


def test_expired_revoked_and_unknown_tokens_are_refused(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    expired, revoked = make_token(s.viewer), make_token(s.viewer)
    expire(expired)
    row = db.session.query(ApiToken).filter_by(token_hash=tokens.digest(revoked)).one()
    tokens.revoke(row)
    db.session.commit()
    for secret, why in ((expired, "expired"), (revoked, "revoked"), ("mfx_nope", "unknown")):
        body = _error(client.get("/api/v1/companies", headers=bearer(secret)), 401, "unauthorized")
        assert why in body["message"]


def test_read_only_token_cannot_write(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.operator, read_only=True)
    get_json(client, f"/api/v1/runtemplates/{s.rt_a.id}", secret)
    resp = client.post(f"/api/v1/runtemplates/{s.rt_a.id}/schedule", headers=bearer(secret))
    assert "read-only" in _error(resp, 403, "forbidden")["message"]


def test_company_scoped_token_sees_only_that_company(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.admin, company=s.a)  # a global admin, narrowed to Alpha
    assert [c["slug"] for c in get_json(client, "/api/v1/companies", secret)["items"]] == ["alpha"]
    get_json(client, f"/api/v1/runtemplates/{s.rt_b.id}", secret, 404)
    resp = client.post(
        "/api/v1/applications", data=b"{}", headers=bearer(secret), content_type="application/json"
    )
    _error(resp, 403, "forbidden")


def test_roles_decide_writes(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    viewer, operator = make_token(s.viewer), make_token(s.operator)
    url = f"/api/v1/runtemplates/{s.rt_a.id}/schedule"
    _error(client.post(url, headers=bearer(viewer)), 403, "forbidden")
    resp = client.post(url, headers=bearer(operator))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["job"]["schedule_type"] == "adhoc-api"
    body = {"company_id": s.a.id, "prototype": "x", "name": "n"}
    _error(
        client.post("/api/v1/credentials", json=body, headers=bearer(operator)), 403, "forbidden"
    )


def test_writes_are_audited_with_the_token_name(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.operator, name="nightly-ci")
    resp = client.post(f"/api/v1/runtemplates/{s.rt_a.id}/disable", headers=bearer(secret))
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    reread()
    row = db.session.query(AuditLog).filter_by(entity_type="runtemplate").one()
    assert row.actor == "operator (token 'nightly-ci')"
    assert row.details["token_name"] == "nightly-ci" and row.user_id == s.operator.id


def test_last_used_is_recorded_once_a_minute(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.viewer)
    get_json(client, "/api/v1/companies", secret)
    reread()
    row = db.session.query(ApiToken).one()
    first = row.last_used_at
    assert first is not None
    get_json(client, "/api/v1/companies", secret)
    reread()
    assert db.session.query(ApiToken).one().last_used_at == first


def test_basic_auth_and_its_throttle(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    body = client.get("/api/v1/companies", headers=basic("viewer")).get_json()
    assert [c["slug"] for c in body["items"]] == ["alpha"]
    for _ in range(app.config["MULTIFLEXI"].login_max_failures):
        _error(
            client.get("/api/v1/companies", headers=basic("viewer", "wrong")), 401, "unauthorized"
        )
    resp = client.get("/api/v1/companies", headers=basic("viewer", "wrong"))
    assert resp.status_code in {401, 429} and "Retry-After" in resp.headers
    resp = client.get("/api/v1/companies", headers=basic("viewer"))
    _error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    assert s.viewer.login == "viewer"
    _error(
        client.get("/api/v1/companies", headers={"Authorization": "Basic !!"}), 401, "unauthorized"
    )


def test_a_session_cookie_does_not_authorize_the_api(app: Flask) -> None:
    s = make_scene(app)
    browser = client_for(app, s.operator)
    assert browser.get("/jobs/").status_code == 200  # the session works in the portal
    _error(browser.get("/api/v1/companies"), 401, "unauthorized")
    resp = browser.post(f"/api/v1/runtemplates/{s.rt_a.id}/schedule")
    _error(resp, 401, "unauthorized")


def test_rate_limit_answers_429_with_retry_after(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    app.config["MULTIFLEXI"] = _with_rate(app, (3, 3600))
    secret, other = make_token(s.viewer), make_token(s.viewer)
    for _ in range(3):
        get_json(client, "/api/v1/companies", secret)
    resp = client.get("/api/v1/companies", headers=bearer(secret))
    _error(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 3600
    get_json(client, "/api/v1/companies", other)  # each token has its own window


def _with_rate(app: Flask, rate: tuple[int, int]):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from multiflexi_web.api.v1.auth import LIMITER_KEY

    app.extensions.pop(LIMITER_KEY, None)
    return replace(app.config["MULTIFLEXI"], api_rate=rate)
