"""What a new administrator meets first: the start-here path, empty states, colours that mean
something, a suggested slug, a clean login URL and a favicon."""

from __future__ import annotations

import re

from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, JobStatus
from multiflexi_web.services.accounts.companies import slugify
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
    reread,
)


def _start_card(html: str) -> str:
    found = re.search(r'<section class="card start-here".*?</section>', html, re.S)
    return found.group(0) if found else ""


def test_an_empty_portal_shows_where_to_start_until_a_runtemplate_exists(app: Flask) -> None:
    client = client_for(app, make_user(is_admin=True))
    card = _start_card(client.get("/").text)
    for link in ("/applications/import", "/companies/new", "/runtemplates/new"):
        assert link in card, link
    assert card.count('class="todo"') == 3
    app_row = make_app()
    company = make_company()
    assert _start_card(client.get("/").text).count('class="done"') == 2
    make_runtemplate(company, app_row)
    assert _start_card(client.get("/").text) == ""


def test_a_member_without_companies_is_told_who_can_help(app: Flask) -> None:
    make_app()
    client = client_for(app, make_user())
    card = _start_card(client.get("/").text)
    assert "Ask an administrator to add you" in card and "/companies/new" not in card
    companies = client.get("/companies/").text
    assert "not a member of any company yet" in companies and "you can see" not in companies
    admin = client_for(app, make_user(is_admin=True)).get("/companies/").text
    assert "Create the first one" in admin


def test_failed_and_blocked_are_coloured_only_when_there_are_some(app: Flask) -> None:
    client = client_for(app, make_user(is_admin=True))
    quiet = client.get("/").text
    assert 'class="card stat"><span class="num" id="stat-failed">0<' in quiet
    assert 'class="card stat"><span class="num" id="stat-blocked">0<' in quiet
    rt = make_runtemplate(make_company())
    make_job(rt, status=JobStatus.FAILED)
    make_job(rt, status=JobStatus.BLOCKED)
    loud = client.get("/").text
    assert 'class="card stat bad"><span class="num" id="stat-failed">1<' in loud
    assert 'class="card stat warn"><span class="num" id="stat-blocked">1<' in loud


def test_the_slug_is_suggested_as_the_name_is_typed_and_taken_when_left_blank(
    app: Flask,
) -> None:
    assert slugify("Café Nový s.r.o.") == "cafe-novy-s-r-o" and slugify("!!!") == "company"
    admin = client_for(app, make_user(is_admin=True))
    form = admin.get("/companies/new").text
    assert 'hx-get="/companies/slug"' in form and 'hx-include="#company-slug"' in form
    hint = admin.get("/companies/slug?name=Café+Nový+s.r.o.&slug=", headers={"HX-Request": "true"})
    assert 'placeholder="cafe-novy-s-r-o"' in hint.text and 'value=""' in hint.text
    typed = admin.get("/companies/slug?name=Acme&slug=mine").text
    assert 'value="mine"' in typed and 'placeholder="acme"' in typed
    resp = admin.post("/companies/new", data={"name": "Café Nový s.r.o.", "slug": ""})
    assert resp.status_code == 302, resp.text
    reread()
    assert db.session.scalar(db.select(Company.slug).where(Company.name == "Café Nový s.r.o."))
    again = admin.get("/companies/slug?name=Café+Nový+s.r.o.").text
    assert 'placeholder="cafe-novy-s-r-o-2"' in again  # the first one is taken now
    admin.post("/companies/new", data={"name": "Café Nový s.r.o.", "slug": ""})
    reread()
    slugs = set(db.session.scalars(db.select(Company.slug)))
    assert {"cafe-novy-s-r-o", "cafe-novy-s-r-o-2"} <= slugs
    member = make_user()
    add_member(member, make_company())
    assert client_for(app, member).get("/companies/slug?name=x").status_code == 403


def test_the_login_redirect_keeps_only_a_query_that_exists(app: Flask) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/").headers["Location"] == "/login?next=/"
    jobs = anonymous.get("/jobs/?status=failed").headers["Location"]
    assert jobs == "/login?next=/jobs/?status%3Dfailed"
    assert anonymous.get("/jobs/").headers["Location"] == "/login?next=/jobs/"


def test_every_page_links_the_favicon_that_exists(app: Flask) -> None:
    icon = app.test_client().get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert b"<svg" in icon.data
    login = app.test_client().get("/login").text
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in login
    page = client_for(app, make_user(is_admin=True)).get("/").text
    assert 'href="/static/favicon.svg"' in page
