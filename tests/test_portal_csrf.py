"""CSRF protection with Flask-WTF switched on, as in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from tests.conftest import reset_schema
from tests.factories import PASSWORD, IsolatedClient, make_company, make_user

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def csrf_app(settings: Settings) -> Iterator[Flask]:
    app = create_app({"TESTING": True}, settings=settings)
    app.test_client_class = IsolatedClient
    with app.app_context():
        reset_schema()
        yield app
        db.session.remove()
        db.engine.dispose()


def _token(client: FlaskClient, path: str) -> str:
    match = TOKEN_RE.search(client.get(path).get_data(as_text=True))
    assert match, f"no csrf_token hidden input on {path}"
    return match.group(1)


def _logged_in(app: Flask) -> tuple[FlaskClient, str]:
    make_user("root", is_admin=True)
    client = app.test_client()
    token = _token(client, "/login")
    resp = client.post("/login", data={"login": "root", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    return client, _token(client, "/companies/new")


def test_login_without_token_is_refused(csrf_app: Flask) -> None:
    make_user("root", is_admin=True)
    resp = csrf_app.test_client().post("/login", data={"login": "root", "password": PASSWORD})
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)


def test_form_post_needs_the_token(csrf_app: Flask) -> None:
    client, token = _logged_in(csrf_app)
    data = {"name": "Acme", "slug": "acme"}
    assert client.post("/companies/new", data=data).status_code == 400
    assert client.post("/companies/new", data={**data, "csrf_token": "forged"}).status_code == 400
    resp = client.post("/companies/new", data={**data, "csrf_token": token})
    assert resp.status_code == 302


def test_htmx_request_carries_the_token_in_a_header(csrf_app: Flask) -> None:
    client, _ = _logged_in(csrf_app)
    company = make_company(slug="acme")
    path = f"/companies/{company.id}/env"
    page = client.get(path).get_data(as_text=True)
    # base.html gives htmx the header on every request (the signed token differs per second).
    header = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page)
    assert header and 'hx-post="' in page
    token = header.group(1)
    htmx = {"HX-Request": "true"}
    refused = client.post(path, data={"key": "A", "value": "1"}, headers=htmx)
    assert refused.status_code == 400
    assert 'id="error-fragment"' in refused.get_data(as_text=True)
    ok = client.post(path, data={"key": "A", "value": "1"}, headers={**htmx, "X-CSRFToken": token})
    assert ok.status_code == 200
    assert "<code>A</code>" in ok.get_data(as_text=True)


def test_every_form_on_a_page_has_a_token(csrf_app: Flask) -> None:
    client, _ = _logged_in(csrf_app)
    company = make_company(slug="acme")
    pages = ["/companies/new", f"/companies/{company.id}/members/", f"/companies/{company.id}/env"]
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        posts = html.count('method="post"')
        assert posts >= 1
        assert html.count('name="csrf_token"') >= posts, path


def test_every_post_form_in_every_template_carries_a_token() -> None:
    """A static check over all templates, so forms added later cannot forget the token."""
    root = Path(__file__).resolve().parent.parent / "templates"
    missing = []
    for path in root.rglob("*.html"):
        text = path.read_text()
        forms = len(re.findall(r"<form[^>]*method=\"post\"", text, flags=re.IGNORECASE))
        tokens = len(re.findall(r"csrf\(\)|csrf_token\(\)", text))
        if forms > tokens:
            missing.append(f"{path.relative_to(root)}: {forms} POST forms, {tokens} tokens")
    assert not missing, missing


def test_api_writes_need_a_token_not_csrf(csrf_app: Flask) -> None:
    """The API is exempt from CSRF (no cookie authority there); the portal stays protected."""
    from tests.api_helpers import bearer, make_scene, make_token

    s = make_scene(csrf_app)
    csrf_app.test_client_class = IsolatedClient
    secret = make_token(s.operator)
    api = csrf_app.test_client()
    resp = api.post(f"/api/v1/runtemplates/{s.rt_a.id}/schedule", headers=bearer(secret))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    client = csrf_app.test_client()  # the scene's "root" logs in with CSRF on
    login = {"login": "root", "password": PASSWORD, "csrf_token": _token(client, "/login")}
    assert client.post("/login", data=login).status_code == 302
    assert client.post(f"/api/v1/runtemplates/{s.rt_a.id}/schedule").status_code == 401
    assert client.post("/account/tokens", data={"name": "x"}).status_code == 400
