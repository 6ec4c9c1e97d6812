"""Company pages: CRUD with validation, environment editor (page and htmx), members, audit."""

from __future__ import annotations

import sqlite3

import pytest
from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Company, CompanyEnv, CompanyMember, Role
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_credential,
    make_job,
    make_runtemplate,
    make_user,
    reread,
)

HTMX = {"HX-Request": "true"}


def _audit_actions() -> list[tuple[str, str]]:
    reread()
    return [(a.action, a.entity_type) for a in db.session.scalars(select(AuditLog))]


def test_list_shows_only_companies_the_user_belongs_to(app: Flask) -> None:
    mine, other = make_company("Mine Ltd"), make_company("Other Ltd")
    user = make_user()
    add_member(user, mine, Role.VIEWER)
    html = client_for(app, user).get("/companies/").get_data(as_text=True)
    assert "Mine Ltd" in html and "Other Ltd" not in html
    assert "New company" not in html
    admin_html = client_for(app, make_user(is_admin=True)).get("/companies/").get_data(as_text=True)
    assert "Mine Ltd" in admin_html and other.name in admin_html and "New company" in admin_html


def test_create_validates_and_reports_next_to_the_field(app: Flask) -> None:
    client = client_for(app, make_user("root", is_admin=True))
    make_company(slug="taken")
    resp = client.post("/companies/new", data={"name": "X", "slug": "taken"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'id="err-slug"' in html and "already used" in html
    assert 'value="X"' in html  # what was typed comes back
    resp = client.post("/companies/new", data={"name": "", "slug": "ok"})
    assert resp.status_code == 400 and 'id="err-name"' in resp.get_data(as_text=True)
    resp = client.post("/companies/new", data={"name": "Acme", "slug": "acme", "email": "a@b.cz"})
    assert resp.status_code == 302
    company = db.session.scalar(select(Company).where(Company.slug == "acme"))
    assert company is not None and company.email == "a@b.cz"
    assert ("create", "company") in _audit_actions()


def test_company_admin_edits_but_operator_cannot(app: Flask) -> None:
    company = make_company(slug="acme")
    admin, operator = make_user(), make_user()
    add_member(admin, company, Role.ADMIN)
    add_member(operator, company, Role.OPERATOR)
    path = f"/companies/{company.id}/edit"
    data = {"name": "Renamed", "slug": "acme2", "enabled": "1", "email": ""}
    assert client_for(app, operator).post(path, data=data).status_code == 403
    assert client_for(app, admin).post(path, data=data).status_code == 302
    reread()
    assert (company.name, company.slug, company.enabled) == ("Renamed", "acme2", True)
    resp = client_for(app, admin).post(path, data={**data, "slug": "bad slug!"})
    assert resp.status_code == 400 and 'id="err-slug"' in resp.get_data(as_text=True)


def test_delete_needs_confirmation_and_removes_everything(app: Flask) -> None:
    company = make_company(slug="gone")
    company_id = company.id
    rt = make_runtemplate(company)
    make_job(rt)
    make_credential(company)
    client = client_for(app, make_user(is_admin=True))
    page = client.get(f"/companies/{company.id}/delete").get_data(as_text=True)
    assert "cannot be undone" in page
    resp = client.post(f"/companies/{company.id}/delete", data={"confirm_slug": "wrong"})
    assert resp.status_code == 400
    resp = client.post(f"/companies/{company.id}/delete", data={"confirm_slug": "gone"})
    assert resp.status_code == 302
    reread()
    assert db.session.get(Company, company_id) is None
    assert ("delete", "company") in _audit_actions()


def test_delete_is_refused_while_a_job_is_queued(app: Flask) -> None:
    company = make_company(slug="busy")
    make_job(make_runtemplate(company), status="scheduled")
    client = client_for(app, make_user(is_admin=True))
    resp = client.post(f"/companies/{company.id}/delete", data={"confirm_slug": "busy"})
    assert resp.status_code == 400
    assert "queued or running" in resp.get_data(as_text=True)
    reread()
    assert db.session.get(Company, company.id) is not None


def test_env_editor_page_and_htmx_fragment(app: Flask) -> None:
    company = make_company(env={"KEEP": "1"})
    make_app(fields=[{"keyname": "NEW"}, {"keyname": "FRAG"}])  # names a company admin may set
    admin = make_user()
    add_member(admin, company, Role.ADMIN)
    client = client_for(app, admin)
    path = f"/companies/{company.id}/env"
    assert client.post(path, data={"key": "NEW", "value": "v"}).status_code == 302
    frag = client.post(path, data={"key": "FRAG", "value": "x"}, headers=HTMX)
    body = frag.get_data(as_text=True)
    assert frag.status_code == 200 and body.lstrip().startswith('<div id="env-table">')
    assert "<html" not in body and "<code>FRAG</code>" in body
    bad = client.post(path, data={"key": "1BAD", "value": "x"}, headers=HTMX)
    assert bad.status_code == 200 and 'id="err-key"' in bad.get_data(as_text=True)
    assert client.post(path, data={"key": "1BAD", "value": "x"}).status_code == 400
    row = db.session.scalar(select(CompanyEnv).where(CompanyEnv.key == "KEEP"))
    assert row is not None
    resp = client.post(f"{path}/{row.id}/delete", headers=HTMX)
    assert resp.status_code == 200 and "KEEP" not in resp.get_data(as_text=True)
    reread()
    keys = set(db.session.scalars(select(CompanyEnv.key).where(CompanyEnv.company_id == 1)))
    assert keys == {"NEW", "FRAG"}


def test_company_admin_sets_only_declared_or_allowed_names(app: Flask) -> None:
    company = make_company()
    make_app(fields=[{"keyname": "ABRAFLEXI_URL"}])
    admin = make_user()
    add_member(admin, company, Role.ADMIN)
    client = client_for(app, admin)
    path = f"/companies/{company.id}/env"
    for key, why in (
        ("LD_PRELOAD", "loader"),
        ("PYTHONPATH", "interpreter"),
        ("PATH", "loader"),
        ("UNDECLARED", "not a field of the application"),
    ):
        resp = client.post(path, data={"key": key, "value": "/tmp/x"})
        assert resp.status_code == 400, key
        assert key in resp.get_data(as_text=True) and why in resp.get_data(as_text=True), key
    assert client.post(path, data={"key": "ABRAFLEXI_URL", "value": "u"}).status_code == 302
    assert client.post(path, data={"key": "TZ", "value": "UTC"}).status_code == 302
    glob = client_for(app, make_user(is_admin=True))
    assert glob.post(path, data={"key": "UNDECLARED", "value": "v"}).status_code == 302
    assert glob.post(path, data={"key": "LD_PRELOAD", "value": "x"}).status_code == 400
    reread()
    keys = set(db.session.scalars(select(CompanyEnv.key).where(CompanyEnv.company_id == 1)))
    assert keys == {"ABRAFLEXI_URL", "TZ", "UNDECLARED"}


def test_viewer_reads_env_without_edit_controls(app: Flask) -> None:
    company = make_company(env={"SHOWN": "yes"})
    viewer = make_user()
    add_member(viewer, company, Role.VIEWER)
    html = client_for(app, viewer).get(f"/companies/{company.id}/env").get_data(as_text=True)
    assert "SHOWN" in html and "Remove" not in html and 'name="key"' not in html


def test_members_add_change_remove(app: Flask) -> None:
    company = make_company()
    admin, newcomer = make_user(), make_user("newcomer")
    add_member(admin, company, Role.ADMIN)
    client = client_for(app, admin)
    base = f"/companies/{company.id}/members/"
    resp = client.post(base, data={"login": "nobody", "role": "viewer"})
    assert resp.status_code == 400 and 'id="err-login"' in resp.get_data(as_text=True)
    resp = client.post(base, data={"login": "newcomer", "role": "king"})
    assert resp.status_code == 400 and 'id="err-role"' in resp.get_data(as_text=True)
    assert client.post(base, data={"login": "newcomer", "role": "viewer"}).status_code == 302
    frag = client.post(f"{base}{newcomer.id}/role", data={"role": "operator"}, headers=HTMX)
    assert frag.status_code == 200 and 'id="members-table"' in frag.get_data(as_text=True)

    def role() -> str | None:
        reread()
        return db.session.scalar(
            select(CompanyMember.role).where(CompanyMember.user_id == newcomer.id)
        )

    assert role() == "operator"
    assert client.post(f"{base}{newcomer.id}/delete").status_code == 302
    assert role() is None
    assert client.post(f"{base}{newcomer.id}/delete").status_code == 404
    assert ("delete", "company_member") in _audit_actions()


def test_a_post_is_not_refused_when_a_daemon_wrote_after_the_login_check(app: Flask) -> None:
    """SQLite: the write lock is taken before the first read, so a stale snapshot cannot occur."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite locking behaviour")
    company = make_company(env={"A": "1"})
    path = db.engine.url.database
    state = {"armed": False, "daemon_wrote": False}

    def daemon_writes_meanwhile() -> None:
        # Runs after the login guard read the user: a daemon commits a row right then.
        if not state["armed"]:
            return
        conn = sqlite3.connect(str(path), timeout=0.2, isolation_level=None)
        try:
            conn.execute(
                "INSERT INTO worker (kind, hostname, pid, status, started_at, heartbeat_at, info)"
                " VALUES ('executor', 'h', 1, 'running', '2026-01-01', '2026-01-01', '{}')"
            )
            state["daemon_wrote"] = True
        except sqlite3.OperationalError:
            pass  # the request holds the write lock: the daemon waits its turn instead
        finally:
            conn.close()

    app.before_request(daemon_writes_meanwhile)
    client = client_for(app, make_user(is_admin=True))
    state["armed"] = True
    resp = client.post(f"/companies/{company.id}/env", data={"key": "B", "value": "2"})
    assert resp.status_code == 302
    assert state["daemon_wrote"] is False
