"""User administration (global admins only): create, edit, password reset, memberships."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import CompanyMember, User
from tests.factories import PASSWORD, add_member, client_for, login, make_company, make_user, reread


def test_only_global_admins_reach_user_pages(app: Flask) -> None:
    company = make_company()
    company_admin = make_user()
    add_member(company_admin, company, "admin")
    client = client_for(app, company_admin)
    assert client.get("/users/").status_code == 403
    assert "Users" not in client.get("/").get_data(as_text=True).split("<main>")[0]
    root = client_for(app, make_user("root", is_admin=True))
    assert root.get("/users/").status_code == 200
    assert 'href="/users/"' in root.get("/").get_data(as_text=True)


def test_create_with_generated_password_shows_it_once(app: Flask) -> None:
    root = client_for(app, make_user("root", is_admin=True))
    resp = root.post("/users/new", data={"login": "carol", "full_name": "Carol", "password": ""})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="generated-password"' in html
    password = html.split('id="generated-password"')[1].split("<code>")[1].split("</code>")[0]
    fresh = app.test_client()
    assert fresh.post("/login", data={"login": "carol", "password": password}).status_code == 302
    reread()
    carol = db.session.scalar(select(User).where(User.login == "carol"))
    assert carol is not None and carol.full_name == "Carol"
    assert password not in root.get(f"/users/{carol.id}").get_data(as_text=True)


def test_create_validates(app: Flask) -> None:
    root = client_for(app, make_user("root", is_admin=True))
    resp = root.post("/users/new", data={"login": "root", "password": "longenough"})
    assert resp.status_code == 400 and 'id="err-login"' in resp.get_data(as_text=True)
    resp = root.post("/users/new", data={"login": "dave", "password": "short"})
    assert resp.status_code == 400 and 'id="err-password"' in resp.get_data(as_text=True)


def test_edit_disable_and_no_self_lockout(app: Flask) -> None:
    root_user = make_user("root", is_admin=True)
    root = client_for(app, root_user)
    bob = make_user("bob")
    bob_client = client_for(app, bob)
    data = {"email": "bob@example.com", "full_name": "Bob"}
    assert root.post(f"/users/{bob.id}/edit", data=data).status_code == 302  # not enabled: disabled
    assert bob_client.get("/companies/").status_code == 302  # a disabled user's session ends
    reread()
    assert db.session.get(User, bob.id).enabled is False  # type: ignore[union-attr]
    resp = root.post(f"/users/{root_user.id}/edit", data={"enabled": "1"})
    assert resp.status_code == 400 and "own administrator rights" in resp.get_data(as_text=True)
    resp = root.post(f"/users/{root_user.id}/edit", data={"is_admin": "1"})
    assert resp.status_code == 400 and "cannot disable your own" in resp.get_data(as_text=True)


def test_password_reset_typed_and_generated(app: Flask) -> None:
    root = client_for(app, make_user("root", is_admin=True))
    bob = make_user("bob")
    assert root.post(f"/users/{bob.id}/password", data={"password": "x"}).status_code == 400
    resp = root.post(f"/users/{bob.id}/password", data={"password": "brand-new-pass"})
    assert resp.status_code == 302
    client = app.test_client()
    assert client.post("/login", data={"login": "bob", "password": PASSWORD}).status_code == 401
    login(client, bob, "brand-new-pass")
    resp = root.post(f"/users/{bob.id}/password", data={"password": ""})
    assert 'id="generated-password"' in resp.get_data(as_text=True)


def test_memberships_from_the_user_page(app: Flask) -> None:
    root = client_for(app, make_user("root", is_admin=True))
    bob, company = make_user("bob"), make_company()
    path = f"/users/{bob.id}/memberships"
    assert root.post(path, data={"company_id": company.id, "role": "boss"}).status_code == 400
    assert root.post(path, data={"company_id": company.id, "role": "operator"}).status_code == 302
    reread()
    role = db.session.scalar(select(CompanyMember.role).where(CompanyMember.user_id == bob.id))
    assert role == "operator"
    assert root.post(f"{path}/{company.id}/delete").status_code == 302
    reread()
    assert db.session.scalar(select(CompanyMember).where(CompanyMember.user_id == bob.id)) is None
