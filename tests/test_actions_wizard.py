"""The RunTemplate wizard's Actions step (7): after saving, the success and failure action sets
with the actions tab's forms (inline as htmx fragments), add and remove, Finish. Request level,
with CSRF switched on as in production."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Role, RunTemplate
from multiflexi_web.models.action import ActionConfig
from tests.conftest import reset_schema
from tests.factories import (
    PASSWORD,
    IsolatedClient,
    add_member,
    make_app,
    make_company,
    make_user,
)

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
HTMX = {"HX-Request": "true"}


@pytest.fixture
def csrf_app(settings: Settings) -> Iterator[Flask]:
    app = create_app({"TESTING": True}, settings=settings)
    app.test_client_class = IsolatedClient
    with app.app_context():
        reset_schema()
        yield app
        db.session.remove()
        db.engine.dispose()


def _token(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def _operator(app: Flask, role: Role = Role.OPERATOR) -> tuple[FlaskClient, int]:
    company = make_company()
    user = make_user()
    add_member(user, company, role)
    db.session.commit()
    client = app.test_client()
    login = {"login": user.login, "password": PASSWORD}
    login["csrf_token"] = _token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data=login).status_code == 302
    return client, company.id


def _create(client: FlaskClient, company_id: int) -> tuple[int, str]:
    """Steps 1-6: the wizard's form, saved; the id and where the wizard went next."""
    application = make_app(name="importer")
    db.session.commit()
    url = f"/runtemplates/new?company={company_id}&app={application.id}"
    form = {"name": "Nightly import", "interval": "n", "executor": "native", "delay": "0"}
    form["csrf_token"] = _token(client.get(url).get_data(as_text=True))
    resp = client.post(url, data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    location = resp.headers["Location"]
    found = re.search(r"/runtemplates/(\d+)/wizard/actions$", location)
    assert found is not None, location
    return int(found[1]), location


def _configs(rt_id: int) -> list[tuple[str, str]]:
    db.session.rollback()
    rows = db.session.scalars(select(ActionConfig).where(ActionConfig.runtemplate_id == rt_id))
    return sorted((r.mode, r.action) for r in rows)


def test_saving_the_wizard_lands_on_the_actions_step(csrf_app: Flask) -> None:
    client, company_id = _operator(csrf_app)
    rt_id, location = _create(client, company_id)
    page = client.get(location).get_data(as_text=True)
    assert '<li class="current" aria-current="step">Actions</li>' in page
    assert '<li class="done">Executor &amp; activation</li>' in page
    assert 'id="actions-success"' in page and 'id="actions-failure"' in page
    add = f"/runtemplates/{rt_id}/actions/success/WebHook?wizard=1"
    assert f'hx-get="{add}" hx-target="#action-form-slot"' in page
    assert 'id="action-form-slot"' in page
    assert re.search(rf'id="wizard-finish" href="/runtemplates/{rt_id}"', page)
    assert client.get(f"/runtemplates/{rt_id}").status_code == 200  # where Finish goes


def test_add_inline_then_remove_comes_back_to_the_step(csrf_app: Flask) -> None:
    client, company_id = _operator(csrf_app)
    rt_id, step = _create(client, company_id)
    add = f"/runtemplates/{rt_id}/actions/failure/WebHook?wizard=1"
    fragment = client.get(add, headers=HTMX).get_data(as_text=True)
    assert "<html" not in fragment and 'id="action-form"' in fragment  # a partial, not a page
    assert 'name="wizard" value="1"' in fragment and 'name="cfg_url"' in fragment
    save = f"/runtemplates/{rt_id}/actions/failure/WebHook"
    data = {"wizard": "1", "cfg_url": "http://127.0.0.1:9/hook", "trigger": "always"}
    assert client.post(save, data=data).status_code == 400  # no CSRF token: refused
    assert _configs(rt_id) == []
    resp = client.post(save, data={**data, "csrf_token": _token(fragment)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(step)
    page = client.get(step).get_data(as_text=True)
    assert "Failure action WebHook saved." in page and "<td>WebHook</td>" in page
    assert _configs(rt_id) == [("failure", "WebHook")]
    remove = f"/runtemplates/{rt_id}/actions/failure/WebHook/remove"
    resp = client.post(remove, data={"wizard": "1", "csrf_token": _token(page)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(step)
    assert _configs(rt_id) == []
    # Without JavaScript the Add link opens the form page, which also comes back to the step.
    full = client.get(add).get_data(as_text=True)
    assert "<html" in full and 'name="wizard" value="1"' in full


def test_the_tab_still_goes_back_to_the_tab(csrf_app: Flask) -> None:
    client, company_id = _operator(csrf_app)
    rt_id, _ = _create(client, company_id)
    url = f"/runtemplates/{rt_id}/actions/success/WebHook"
    form = client.get(url).get_data(as_text=True)
    assert 'name="wizard"' not in form
    tab = client.get(f"/runtemplates/{rt_id}/actions").get_data(as_text=True)
    assert "wizard=" not in tab and "hx-target" not in tab and 'id="actions-success"' in tab
    data = {"cfg_url": "http://127.0.0.1:9/hook", "csrf_token": _token(form)}
    resp = client.post(url, data=data)
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"/runtemplates/{rt_id}/actions")


def test_the_step_is_for_operators_of_the_company(csrf_app: Flask) -> None:
    client, company_id = _operator(csrf_app)
    rt_id, step = _create(client, company_id)
    stranger, _ = _operator(csrf_app)
    assert stranger.get(step).status_code == 404  # another company's RunTemplate
    rt = db.session.get(RunTemplate, rt_id)
    assert rt is not None
    user = make_user()
    add_member(user, rt.company, Role.VIEWER)
    db.session.commit()
    viewer = csrf_app.test_client()
    login = {"login": user.login, "password": PASSWORD}
    login["csrf_token"] = _token(viewer.get("/login").get_data(as_text=True))
    assert viewer.post("/login", data=login).status_code == 302
    assert viewer.get(step).status_code in (403, 404)
