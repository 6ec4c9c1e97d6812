"""Browser hardening: security headers on every portal response, sessions that really end."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from multiflexi_web import create_app
from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus, User
from multiflexi_web.security.headers import CSP
from tests.conftest import make_settings, reset_schema
from tests.factories import (
    PASSWORD,
    client_for,
    isolate_requests,
    login,
    make_artifact,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
    reread,
)
from tests.test_portal_access import build_world, is_public, methods, portal_rules, url

HTMX = {"HX-Request": "true"}


def assert_hardened(resp: TestResponse, what: str) -> None:
    h = resp.headers
    assert h.get("Content-Security-Policy") == CSP, what
    assert h.get("X-Frame-Options") == "DENY", what
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("Referrer-Policy") == "same-origin", what
    assert "Strict-Transport-Security" not in h, f"{what}: HSTS without https"


def test_the_policy_is_strict() -> None:
    parts = dict(p.split(" ", 1) for p in CSP.split("; "))
    assert parts == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "object-src": "'none'",
    }
    assert "unsafe" not in CSP


def test_headers_on_pages_fragments_errors_and_login(app: Flask) -> None:
    admin = make_user("root", is_admin=True)
    rt = make_runtemplate(make_company())
    job = make_job(rt, status=JobStatus.RUNNING, output="hello\n")
    anonymous = app.test_client()
    assert_hardened(anonymous.get("/login"), "login page")
    assert_hardened(anonymous.post("/login", data={"login": "x", "password": "y"}), "bad login")
    assert_hardened(anonymous.get("/"), "redirect to login")
    client = client_for(app, admin)
    for path in ("/", f"/jobs/{job.id}", "/jobs/", "/static/app.css", "/no/such/page"):
        assert_hardened(client.get(path), path)
    for path in ("/", f"/jobs/{job.id}?part=details", f"/jobs/{job.id}/output?after=0"):
        resp = client.get(path, headers=HTMX)
        assert resp.status_code == 200, path
        assert "<html" not in resp.get_data(as_text=True), f"{path} is not a fragment"
        assert_hardened(resp, f"htmx {path}")
    assert_hardened(client.get("/jobs/999999"), "404 page")
    assert_hardened(client.get("/jobs/999999", headers=HTMX), "404 fragment")
    assert_hardened(client.delete("/"), "405")


def test_every_portal_page_carries_the_headers(app: Flask) -> None:
    isolate_requests(app)
    world = build_world()
    client = app.test_client()
    login(client, world.users["global"])
    seen = 0
    for rule in portal_rules(app):
        if "GET" in methods(rule) and not is_public(rule):
            path = url(rule, world.params["a"])
            resp = client.get(path)
            if rule.endpoint.startswith("job_artifacts.") and rule.endpoint != "job_artifacts.view":
                continue  # raw file responses: their own stricter policy (next test)
            assert_hardened(resp, f"GET {path}")
            seen += 1
    assert seen > 30


def test_artifact_files_keep_their_sandbox_policy(app: Flask) -> None:
    admin = make_user("root", is_admin=True)
    job = make_job(make_runtemplate(make_company()))
    artifact = make_artifact(job, filename="page.html", content=b"<script>alert(1)</script>")
    client = client_for(app, admin)
    resp = client.get(f"/jobs/{job.id}/artifacts/{artifact.id}/download")
    assert resp.status_code == 200
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    page = client.get(f"/jobs/{job.id}/artifacts/{artifact.id}")
    assert_hardened(page, "artifact view page")
    assert "&lt;script&gt;" in page.get_data(as_text=True)


def test_hsts_only_with_secure_cookies(db_url: str, tmp_path: object) -> None:
    settings = make_settings(db_url, tmp_path, session_cookie_secure=True)  # type: ignore[arg-type]
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, settings=settings)
    with app.app_context():
        reset_schema()
        resp = app.test_client().get("/login")
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert app.config["SESSION_COOKIE_SECURE"] is True
        db.session.remove()
        db.engine.dispose()


def test_no_inline_script_style_or_handler_in_any_template() -> None:
    import re

    from multiflexi_web.config import PROJECT_ROOT

    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|hx-on|js:", re.I)
    found = [
        f"{p.relative_to(PROJECT_ROOT)}: {m.group(0)!r}"
        for p in (PROJECT_ROOT / "templates").rglob("*.html")
        for m in inline.finditer(p.read_text())
    ]
    assert found == []


def test_session_cookie_flags(app: Flask) -> None:
    make_user("root")
    client = app.test_client()
    resp = client.post("/login", data={"login": "root", "password": PASSWORD})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # only with MULTIFLEXI_SECURE_COOKIES


# --- Sessions ------------------------------------------------------------------------------


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _with_cookie(app: Flask, value: str) -> FlaskClient:
    thief = app.test_client()
    thief.set_cookie("session", value)
    return thief


def _works(client: FlaskClient) -> bool:
    resp = client.get("/")
    assert resp.status_code in {200, 302}
    return resp.status_code == 200


def test_a_cookie_copied_before_logout_no_longer_works(app: Flask) -> None:
    user = make_user("alice")
    victim = client_for(app, user)
    stolen = _cookie(victim)
    assert _works(_with_cookie(app, stolen))
    victim.post("/logout")
    assert not _works(victim)
    assert not _works(_with_cookie(app, stolen))
    login(victim, user)  # and logging in again gives a working session
    assert _works(victim)
    assert not _works(_with_cookie(app, stolen))


def test_a_password_reset_ends_the_users_sessions(app: Flask) -> None:
    admin, alice = make_user("root", is_admin=True), make_user("alice")
    alice_client = client_for(app, alice)
    stolen = _cookie(alice_client)
    boss = client_for(app, admin)
    resp = boss.post(f"/users/{alice.id}/password", data={"password": "a-new-password"})
    assert resp.status_code == 302
    assert not _works(alice_client)
    assert not _works(_with_cookie(app, stolen))
    assert _works(boss), "resetting someone else's password keeps one's own session"


def test_resetting_ones_own_password_keeps_this_session_only(app: Flask) -> None:
    admin = make_user("root", is_admin=True)
    here, elsewhere = client_for(app, admin), client_for(app, admin)
    resp = here.post(f"/users/{admin.id}/password", data={"password": "a-new-password"})
    assert resp.status_code == 302
    assert _works(here)
    assert not _works(elsewhere)


def test_changed_powers_end_the_sessions(app: Flask) -> None:
    admin, alice = make_user("root", is_admin=True), make_user("alice", is_admin=True)
    boss = client_for(app, admin)
    alice_client = client_for(app, alice)
    stolen = _cookie(alice_client)
    form = {"email": "", "full_name": "Alice", "enabled": "on"}  # is_admin unticked
    assert boss.post(f"/users/{alice.id}/edit", data=form).status_code == 302
    assert not _works(alice_client) and not _works(_with_cookie(app, stolen))
    alice_client = client_for(app, alice)
    assert _works(alice_client)
    unchanged = {**form, "full_name": "Alice Liddell"}  # no change of powers: sessions stay
    assert boss.post(f"/users/{alice.id}/edit", data=unchanged).status_code == 302
    assert _works(alice_client)
    assert boss.post(f"/users/{alice.id}/edit", data={"full_name": "A"}).status_code == 302
    assert not _works(alice_client)  # disabled
    reread()
    assert db.session.get(User, alice.id).enabled is False  # type: ignore[union-attr]


def test_a_cookie_without_epoch_is_refused(app: Flask) -> None:
    user = make_user("alice")
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user.id)  # the id form of sessions issued before epochs
        sess["_fresh"] = True
    assert not _works(client)


def test_login_starts_a_fresh_session(app: Flask) -> None:
    user = make_user("alice")
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    before = _cookie(client)
    login(client, user)
    assert _cookie(client) != before
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == f"{user.id}:0"
