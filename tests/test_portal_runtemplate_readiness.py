"""The wizard and edit form as a first-day administrator meets them (issue 18, items 2, 3, 7, 8
and 9): required fields, unmet credentials, one cron error, the step bar, Run now's fields.
Request level, with CSRF switched on as in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from multiflexi_web import create_app
from multiflexi_web.config import Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Job, Role, RunTemplate, RunTemplateConfig
from multiflexi_web.security.secrets import cipher
from multiflexi_web.services.jobs.onetime import unseal
from tests.conftest import reset_schema
from tests.factories import (
    PASSWORD,
    IsolatedClient,
    add_member,
    make_app,
    make_company,
    make_credential,
    make_prototype,
    make_runtemplate,
    make_user,
)

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
FIELDS: list[dict[str, Any]] = [
    {"keyname": "LABEL", "type": "string", "required": True, "description": "Report label"},
    {"keyname": "TICKS", "type": "integer", "required": True, "default": "10"},
    {"keyname": "LOGIN", "type": "string", "required": True},  # the credential supplies it
    {"keyname": "API_PASSWORD", "type": "password", "secret": True},
    {"keyname": "VERBOSE", "type": "bool", "default": "false"},
]


@pytest.fixture
def csrf_app(settings: Settings) -> Iterator[Flask]:
    app = create_app({"TESTING": True}, settings=settings)
    app.test_client_class = IsolatedClient
    with app.app_context():
        reset_schema()
        yield app
        db.session.remove()
        db.engine.dispose()


def _token(client: FlaskClient, url: str) -> str:
    match = TOKEN_RE.search(client.get(url).get_data(as_text=True))
    assert match, f"no csrf_token on {url}"
    return match.group(1)


def _login(app: Flask, role: Role) -> tuple[FlaskClient, int]:
    company, user = make_company(), make_user()
    add_member(user, company, role)
    db.session.commit()
    client = app.test_client()
    data = {"login": user.login, "password": PASSWORD, "csrf_token": _token(client, "/login")}
    assert client.post("/login", data=data).status_code == 302
    return client, company.id


def _app(requirements: list[str] | None = None) -> int:
    application = make_app("ticker", fields=FIELDS, requirements=requirements)
    db.session.commit()
    return application.id


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Ticker nightly",
        "cfg-LABEL": "nightly",
        "cfg-TICKS": "10",
        "cfg-LOGIN": "ops",
        "cfg-API_PASSWORD": "",
        "cfg-VERBOSE": "false",
        "interval": "n",
        "cron": "",
        "delay": "0",
        "timezone": "",
        "executor": "native",
        "timeout": "",
        "active": ["false", "true"],
    }
    data.update(overrides)
    return data


def _post(client: FlaskClient, url: str, data: dict[str, Any]) -> Any:
    return client.post(url, data={**data, "csrf_token": _token(client, url)})


def _current_step(html: str) -> str:
    found = re.search(r'<li class="current[^"]*" aria-current="step">(?:<a [^>]*>)?([^<]+)', html)
    assert found, "no current step"
    return found[1]


def _count(model: type[Any]) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_a_required_field_left_empty_is_refused_and_named(csrf_app: Flask) -> None:
    client, company_id = _login(csrf_app, Role.OPERATOR)
    url = f"/runtemplates/new?company={company_id}&app={_app()}"
    # TICKS is empty too but has an app default: it counts as set. LOGIN nothing sets.
    resp = _post(client, url, _form(**{"cfg-LABEL": "", "cfg-TICKS": "", "cfg-LOGIN": ""}))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and _count(RunTemplate) == 0
    assert 'id="err-cfg-LABEL">LABEL is required' in html
    assert 'id="err-cfg-LOGIN">LOGIN is required' in html
    assert "err-cfg-TICKS" not in html
    assert 'value="Ticker nightly"' in html  # what was typed is still there
    assert _current_step(html) == "Configuration"
    created = _post(client, url, _form())
    assert created.status_code == 302 and _count(RunTemplate) == 1
    rt_id = db.session.scalar(select(RunTemplate.id))
    edit = f"/runtemplates/{rt_id}/edit"
    refused = _post(client, edit, _form(**{"cfg-LABEL": ""}))
    assert refused.status_code == 400 and "LABEL is required" in refused.get_data(as_text=True)
    db.session.rollback()
    stored = db.session.scalars(
        select(RunTemplateConfig.value).where(RunTemplateConfig.key == "LABEL")
    ).one()
    assert stored == "nightly"


def test_unmet_credentials_save_inactive_with_a_link_per_requirement(csrf_app: Flask) -> None:
    client, company_id = _login(csrf_app, Role.ADMIN)
    proto = make_prototype("abraflexi")
    app_id = _app(["abraflexi", "ghost"])
    url = f"/runtemplates/new?company={company_id}&app={app_id}"
    form = client.get(url).get_data(as_text=True)
    create = f"/companies/{company_id}/credentials/new?prototype_id={proto.id}"
    assert re.search(rf'href="{re.escape(create)}" target="_blank" rel="noopener"', form)
    assert "no credential prototype <code>ghost</code> is imported" in form
    assert 'id="credentials-missing"' in form and 'id="credentials-refresh"' in form
    # LOGIN is required, but the abraflexi credential still to come supplies it.
    resp = _post(client, url, _form(interval="h", **{"cfg-LOGIN": ""}))
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/wizard/actions")
    step7 = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert (
        "flash-warning" in step7
        and "Saved inactive: no credential yet for abraflexi, ghost" in step7
    )
    db.session.rollback()
    rt = db.session.scalars(select(RunTemplate)).one()
    assert (rt.active, rt.next_run_at) == (False, None)
    detail = client.get(f"/runtemplates/{rt.id}").get_data(as_text=True)
    box = detail.split('id="unmet-requirements"', 1)[1].split("</div>", 1)[0]
    assert "<code>abraflexi</code>" in box and "<code>ghost</code>" in box and create in box
    # Created in the other tab: "Check again" reloads step 4 only, the new one chosen.
    cred = make_credential(_company(company_id), proto, name="Main ledger")
    db.session.commit()
    step4 = client.get(
        f"/runtemplates/credentials-step?company={company_id}&app={app_id}&cred-ghost="
    ).get_data(as_text=True)
    assert step4.lstrip().startswith('<fieldset class="card section" id="step-credentials">')
    assert f'<option value="{cred.id}" selected>Main ledger</option>' in step4
    edit = f"/runtemplates/{rt.id}/edit"
    saved = _post(client, edit, _form(**{"cred-abraflexi": str(cred.id)}))
    assert saved.status_code == 302
    db.session.rollback()
    rt = db.session.get(RunTemplate, rt.id)
    assert rt is not None and rt.active is False  # ghost is still unmet
    detail = client.get(f"/runtemplates/{rt.id}").get_data(as_text=True)
    box = detail.split('id="unmet-requirements"', 1)[1].split("</div>", 1)[0]
    assert "<code>ghost</code>" in box and "abraflexi" not in box


def _company(company_id: int) -> Company:
    company = db.session.get(Company, company_id)
    assert company is not None
    return company


def test_an_invalid_cron_is_reported_once_on_the_cron_field(csrf_app: Flask) -> None:
    client, company_id = _login(csrf_app, Role.OPERATOR)
    url = f"/runtemplates/new?company={company_id}&app={_app()}"
    resp = _post(client, url, _form(interval="c", cron="*/5 * *"))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and _count(RunTemplate) == 0
    assert html.count("must have 5 fields") == 1
    assert re.search(
        r'<input name="cron" id="cron" aria-invalid="true" aria-describedby="err-cron"', html
    )
    label = html.split('<input name="cron"', 1)[1].split("</label>", 1)[0]
    assert 'id="err-cron" role="alert">cron &#39;*/5 * *&#39;: must have 5 fields' in label
    assert 'id="schedule-error"' not in html
    assert _current_step(html) == "Schedule"
    # Typing in the form, the live preview names the field too.
    live = client.get("/runtemplates/schedule-preview?interval=c&cron=61+*+*+*+*")
    assert "cron &#39;61 * * * *&#39;: not a valid" in live.get_data(as_text=True)


def test_the_step_bar_marks_the_step_with_the_first_error(csrf_app: Flask) -> None:
    client, company_id = _login(csrf_app, Role.OPERATOR)
    url = f"/runtemplates/new?company={company_id}&app={_app()}"
    html = client.get(url).get_data(as_text=True)
    config = html.split('id="step-config"', 1)[1].split("</fieldset>", 1)[0]
    assert 'id="name"' in config  # the name belongs to the Configuration step
    late = _post(client, url, _form(timeout="soon")).get_data(as_text=True)
    assert _current_step(late) == "Executor &amp; activation"
    unnamed = _post(client, url, _form(name=" ")).get_data(as_text=True)
    assert _current_step(unnamed) == "Configuration" and 'id="err-name"' in unnamed
    cron = _post(client, url, _form(interval="c", cron="x")).get_data(as_text=True)
    assert re.search(
        r'<li class="current has-error" aria-current="step"><a href="#step-schedule">', cron
    )
    assert '<li class="done"><a href="#step-config">Configuration</a></li>' in cron


def test_run_now_lists_the_fields_with_their_values_and_sends_the_changes(
    csrf_app: Flask,
) -> None:
    client, company_id = _login(csrf_app, Role.OPERATOR)
    application = make_app("ticker", fields=FIELDS)
    application.fields[0].extra = {"description": {"en": "Report label", "cs": "Popisek"}}
    rt = make_runtemplate(_company(company_id), application)
    rt.config = [
        RunTemplateConfig(key="LABEL", value="nightly", secret=False),
        RunTemplateConfig(key="LOGIN", value="ops", secret=False),
        RunTemplateConfig(key="API_PASSWORD", value=cipher().encrypt("hunter2"), secret=True),
    ]
    db.session.commit()
    url = f"/runtemplates/{rt.id}/run"
    page = client.get(url, headers={"Accept-Language": "cs"}).get_data(as_text=True)
    assert re.search(r'name="cfg-LABEL" id="cfg-LABEL" value="nightly"', page)
    assert re.search(r'name="cfg-TICKS" id="cfg-TICKS" value="10"', page)  # the app default
    assert "Popisek" in page and "hunter2" not in page
    assert "stored; leave empty to keep it" in page
    assert page.count('name="env_key"') == 2
    sent = _form(**{"cfg-LABEL": "one-off", "cfg-LOGIN": "ops", "cfg-API_PASSWORD": "n3w-pass"})
    sent.update(env_key=["", ""], env_value=["", ""])
    resp = _post(client, url, sent)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db.session.rollback()
    job = db.session.scalars(select(Job)).one()
    env = unseal(job.env_override)
    assert env.values == {"LABEL": "one-off", "API_PASSWORD": "n3w-pass"}
    assert "API_PASSWORD" in env.secret
    bad = _post(client, url, {**sent, "cfg-TICKS": "many", "env_key": ["1BAD"], "env_value": ["x"]})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and 'id="err-cfg-TICKS"' in html and "n3w-pass" not in html
    assert 'value="one-off"' in html  # what was typed is kept
    extra = _post(client, url, {**sent, "env_key": ["1BAD"], "env_value": ["x"]})
    assert extra.status_code == 400 and "names are letters" in extra.get_data(as_text=True)
    assert _count(Job) == 1
