"""The portal's API token pages: create shows the secret once, list, revoke; the API page."""

from __future__ import annotations

import re

from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, AuditLog
from multiflexi_web.services.accounts import tokens
from tests.api_helpers import bearer, make_scene
from tests.factories import client_for, reread


def test_create_shows_the_token_once_and_it_works(app: Flask) -> None:
    s = make_scene(app)
    browser = client_for(app, s.operator)
    resp = browser.post(
        "/account/tokens",
        data={"name": "laptop", "company_id": str(s.a.id), "read_only": "1", "expires_days": "30"},
    )
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    found = re.search(r'id="new-token">(mfx_[A-Za-z0-9_-]+)<', resp.get_data(as_text=True))
    assert found is not None
    secret = found.group(1)
    reread()
    row = db.session.query(ApiToken).one()
    assert row.token_hash == tokens.digest(secret) and row.scope == "read"
    assert row.company_id == s.a.id and row.expires_at is not None
    listing = browser.get("/account/tokens").get_data(as_text=True)
    assert "laptop" in listing and secret not in listing
    api = app.test_client()
    assert api.get("/api/v1/companies", headers=bearer(secret)).status_code == 200
    assert db.session.query(AuditLog).filter_by(entity_type="api_token").count() == 1


def test_revoke_own_token_only(app: Flask) -> None:
    s = make_scene(app)
    mine = tokens.issue(s.operator, "mine")
    theirs = tokens.issue(s.viewer, "theirs")
    db.session.commit()
    browser = client_for(app, s.operator)
    assert browser.post(f"/account/tokens/{theirs.token.id}/revoke").status_code == 404
    assert browser.post(f"/account/tokens/{mine.token.id}/revoke").status_code == 302
    resp = app.test_client().get("/api/v1/companies", headers=bearer(mine.secret))
    assert resp.status_code == 401
    reread()
    assert db.session.get(ApiToken, theirs.token.id).revoked_at is None  # type: ignore[union-attr]


def test_foreign_company_is_refused(app: Flask) -> None:
    s = make_scene(app)
    browser = client_for(app, s.viewer)
    resp = browser.post("/account/tokens", data={"name": "x", "company_id": str(s.b.id)})
    assert resp.status_code == 400 and "Choose one of your companies" in resp.get_data(as_text=True)
    reread()
    assert db.session.query(ApiToken).count() == 0


def test_api_page_links_the_document(app: Flask) -> None:
    s = make_scene(app)
    page = client_for(app, s.viewer).get("/account/api").get_data(as_text=True)
    assert "/api/v1/openapi.json" in page and "Authorization: Bearer" in page
    assert "/account/tokens" in client_for(app, s.viewer).get("/jobs/").get_data(as_text=True)
