"""The application editor: create and edit through the importer's rules, errors by input, audit."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, AuditLog, RunTemplateConfig
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.catalogue.app_export import export_app
from multiflexi_web.services.catalogue.app_import import import_app_paths
from tests.executor_support import drain, output_of, schedule
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_runtemplate,
    make_user,
    reread,
)

GOOD: dict[str, str] = {
    "name": "Invoice sender",
    "description": "Sends invoices",
    "executable": "/bin/echo",
    "cmdparams": "hello {API_URL}",
    "version": "1.2.3",
    "homepage": "https://example.com/app",
    "ociimage": "docker.io/vendor/app:1.0",
    "tags": "mail, abraflexi",
    "field-0-key": "API_URL",
    "field-0-type": "url",
    "field-0-description": "Where the API is",
    "field-0-default": "https://api.example.com",
    "field-0-required": "1",
    "field-1-key": "API_PASS",
    "field-1-type": "password",
    "field-1-default": "s3cret-default",
    "artifact-0-name": "report",
    "artifact-0-path": r"report-.*\.pdf",
    "artifact-0-type": "file",
    "artifact-0-description": "The PDF",
    "exit-0-code": "3",
    "exit-0-description": "no data",
    "exit-0-severity": "warning",
    "exit-0-retry": "yes",
}


def _admin(app: Flask) -> FlaskClient:
    return client_for(app, make_user(is_admin=True))


def _create(client: FlaskClient, **changes: str) -> Any:
    return client.post("/applications/new", data={**GOOD, **changes})


def _the_app() -> Application:
    reread()
    found = db.session.scalars(select(Application)).one()
    return found


def _error(html: str, name: str) -> str:
    match = re.search(rf'id="err-{re.escape(name)}">([^<]*)<', html)
    assert match, f"no error beside {name}"
    return html_lib.unescape(match.group(1))


def test_admin_creates_an_app_with_fields_artifacts_exit_codes(app: Flask) -> None:
    resp = _create(_admin(app))
    assert resp.status_code == 302, resp.get_data(as_text=True)
    created = _the_app()
    assert resp.headers["Location"].endswith(f"/applications/{created.id}")
    assert (created.name, created.executable, created.cmdparams) == (
        "Invoice sender",
        "/bin/echo",
        "hello {API_URL}",
    )
    assert created.version == "1.2.3" and created.tags == ["mail", "abraflexi"]
    assert created.ociimage == "docker.io/vendor/app:1.0"
    fields = {f.keyname: f for f in created.fields}
    assert fields["API_URL"].type == "url" and fields["API_URL"].required
    assert fields["API_URL"].default == "https://api.example.com"
    assert fields["API_PASS"].secret and fields["API_PASS"].default == "s3cret-default"
    assert created.artifacts == [
        {"name": "report", "path": r"report-.*\.pdf", "type": "file", "description": "The PDF"}
    ]
    (code,) = created.exit_codes
    assert (code.code, code.description, code.severity, code.retry) == (
        3,
        "no data",
        "warning",
        True,
    )
    audit = db.session.scalars(select(AuditLog).where(AuditLog.entity_type == "application")).one()
    assert audit.action == "create" and audit.entity_id == str(created.id)
    assert "created in the portal" in audit.summary


def test_edit_form_shows_the_app_and_hides_secret_defaults(app: Flask) -> None:
    client = _admin(app)
    _create(client)
    html = client.get(f"/applications/{_the_app().id}/edit").get_data(as_text=True)
    for text in ("Invoice sender", "hello {API_URL}", "API_URL", "https://api.example.com"):
        assert text in html, text
    assert "s3cret-default" not in html and MASK in html


def test_edit_changes_the_app_keeps_the_masked_secret_and_audits(app: Flask) -> None:
    client = _admin(app)
    _create(client)
    application = _the_app()
    edited = {**GOOD, "executable": "/bin/printf", "field-1-default": MASK, "exit-0-retry": "no"}
    edited["field-0-type"] = "string"
    resp = client.post(f"/applications/{application.id}/edit", data=edited)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    after = _the_app()
    assert after.uuid == application.uuid and after.executable == "/bin/printf"
    fields = {f.keyname: f for f in after.fields}
    assert fields["API_PASS"].default == "s3cret-default"  # the mask kept it
    assert fields["API_URL"].type == "string" and after.exit_codes[0].retry is False
    app_rows = select(AuditLog).where(AuditLog.entity_type == "application")
    rows = db.session.scalars(app_rows.order_by(AuditLog.id)).all()
    assert [r.action for r in rows] == ["create", "update"]
    assert "field API_URL changed" in rows[1].details["changes"]
    assert "s3cret-default" not in str(rows[1].details)


def test_edit_keeps_runtemplate_values_and_names_those_of_removed_fields(app: Flask) -> None:
    client = _admin(app)
    _create(client)
    application = _the_app()
    rt = make_runtemplate(make_company(), application, name="nightly")
    db.session.add_all(
        [
            RunTemplateConfig(runtemplate_id=rt.id, key="API_URL", value="https://kept"),
            RunTemplateConfig(runtemplate_id=rt.id, key="API_PASS", value="x", secret=True),
        ]
    )
    db.session.commit()
    edited = {**GOOD, "field-1-remove": "1"}
    resp = client.post(f"/applications/{application.id}/edit", data=edited, follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "Field API_PASS was removed" in html and "nightly" in html
    reread()
    values = dict(db.session.execute(select(RunTemplateConfig.key, RunTemplateConfig.value)).all())
    assert values == {"API_URL": "https://kept", "API_PASS": "x"}
    assert [f.keyname for f in _the_app().fields] == ["API_URL"]
    audit = db.session.scalars(select(AuditLog).where(AuditLog.action == "update")).one()
    assert audit.details["orphaned_values"] == {"API_PASS": ["nightly"]}


@pytest.mark.parametrize(
    ("changes", "input_name", "reason"),
    [
        ({"name": ""}, "name", "must not be empty"),
        ({"executable": ""}, "executable", "must not be empty"),
        ({"version": "one"}, "version", "does not match"),
        ({"homepage": "https://e.com/" + "a" * 1100}, "homepage", "longer than 1024"),
        ({"ociimage": "bad image!"}, "ociimage", "does not match"),
        ({"name": "n" * 300}, "name", "longer than 255"),
        ({"field-0-type": "colour"}, "field-0-type", "is not one of"),
        ({"field-0-key": "BAD=KEY"}, "field-0-key", "does not match"),
        ({"field-1-key": "API_URL"}, "field-1-key", "given twice"),
        ({"field-0-key": ""}, "field-0-key", "needs a key"),
        ({"artifact-0-path": "report-(.pdf"}, "artifact-0-path", "regex"),
        ({"exit-0-code": "abc"}, "exit-0-code", "'abc'"),
        ({"exit-0-code": "99999999999"}, "exit-0-code", "out of range"),
        ({"exit-0-severity": "fatal"}, "exit-0-severity", "is not one of"),
    ],
)
def test_a_bad_input_is_named_and_nothing_typed_is_lost(
    app: Flask, changes: dict[str, str], input_name: str, reason: str
) -> None:
    resp = _create(_admin(app), **changes)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert reason in _error(html, input_name)
    for name in ("description", "executable", "cmdparams", "tags"):
        value = changes.get(name, GOOD[name])
        assert f'name="{name}" value="{value}"' in html or f">{value}</textarea>" in html, name
    assert 'value="Where the API is"' in html and 'value="no data"' in html
    reread()
    assert db.session.scalar(select(Application.id)) is None
    assert (
        db.session.scalar(select(AuditLog.id).where(AuditLog.entity_type == "application")) is None
    )


def test_non_admins_are_refused(app: Flask) -> None:
    application = make_app("kept")
    company = make_company()
    operator = make_user()
    add_member(operator, company, "admin")
    client = client_for(app, operator)
    assert client.get("/applications/new").status_code == 403
    assert _create(client).status_code == 403
    assert client.get(f"/applications/{application.id}/edit").status_code == 403
    assert client.post(f"/applications/{application.id}/edit", data=GOOD).status_code == 403
    assert client.get("/applications/row?kind=field&i=3").status_code == 403
    reread()
    assert db.session.scalars(select(Application.name)).all() == ["kept"]
    html = client.get(f"/applications/{application.id}").get_data(as_text=True)
    assert "/edit" not in html


def test_add_row_fragment_numbers_the_next_row(app: Flask) -> None:
    client = _admin(app)
    html = client.get("/applications/row?kind=field&i=4").get_data(as_text=True)
    assert 'name="field-4-key"' in html and "i=5" in html and 'hx-swap-oob="true"' in html
    assert client.get("/applications/row?kind=nope&i=1").status_code == 404
    assert client.get("/applications/row?kind=exit&i=100000").status_code == 404


def test_a_job_of_an_edited_app_runs_the_new_command(app: Flask) -> None:
    client = _admin(app)
    data = {"name": "echoer", "description": "", "executable": "/bin/echo", "cmdparams": "first"}
    assert client.post("/applications/new", data=data).status_code == 302
    application = _the_app()
    rt = make_runtemplate(make_company(), application)
    (first,) = schedule(rt)
    drain(app)
    assert output_of(first) == b"first\n"
    data["cmdparams"] = "second {GREETING}"
    data |= {"field-0-key": "GREETING", "field-0-default": "hi"}
    resp = client.post(f"/applications/{application.id}/edit", data=data)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    reread()
    (second,) = schedule(db.session.get_one(type(rt), rt.id))
    drain(app)
    assert output_of(second) == b"second hi\n"


class _FormReader(HTMLParser):
    """What a browser would post for the page's #app-form (inputs, checked boxes, selects)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and name != "csrf_token":
            if a.get("type") != "checkbox" or "checked" in a:
                self.data[name] = a.get("value", "")
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in {"select", "textarea"}:
            self._select = self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data


UPSTREAM = Path(__file__).resolve().parent / "data" / "upstream" / "apps"
DEMO_APPS = Path(__file__).resolve().parents[1] / "multiflexi_web" / "demo_apps"


def test_saving_the_untouched_form_changes_no_real_app(app: Flask) -> None:
    """Upstream's app files and the demo apps: edit form -> save gives back the same definition
    (translations, options, hints, extra keys the form does not show are all kept)."""
    results = import_app_paths([UPSTREAM, DEMO_APPS])
    assert results and not [r.error for r in results if r.failed]
    db.session.commit()
    client = _admin(app)
    for result in results:
        before = export_app(db.session.get_one(Application, result.id))
        html = client.get(f"/applications/{result.id}/edit").get_data(as_text=True)
        reader = _FormReader()
        reader.feed(html)
        resp = client.post(f"/applications/{result.id}/edit", data=reader.data)
        assert resp.status_code == 302, (result.file, resp.get_data(as_text=True)[-3000:])
        reread()
        after = export_app(db.session.get_one(Application, result.id))
        for key in set(before) | set(after):
            if key == "environment":
                for k in set(before[key]) | set(after[key]):
                    assert before[key].get(k) == after[key].get(k), (result.file, k)
            assert before.get(key) == after.get(key), (result.file, key)
