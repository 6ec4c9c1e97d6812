"""Application pages: list with search and tags, detail, import report, export, enable."""

from __future__ import annotations

import io
import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, AuditLog
from tests.factories import client_for, login, make_app, make_user, reread

DEMO = Path(__file__).resolve().parent.parent / "multiflexi_web" / "demo_apps"
HELLO = (DEMO / "hello.multiflexi.app.json").read_bytes()


def test_list_filters_by_search_and_tag(app: Flask) -> None:
    make_app("invoice-sender", tags=["abraflexi", "mail"])
    make_app("bank-puller", tags=["bank"])
    client = client_for(app, make_user())
    html = client.get("/applications/").get_data(as_text=True)
    assert "invoice-sender" in html and "bank-puller" in html
    assert ">abraflexi</a>" in html and ">bank</a>" in html
    html = client.get("/applications/?tag=bank").get_data(as_text=True)
    assert "bank-puller" in html and "invoice-sender" not in html
    html = client.get("/applications/?q=invoice").get_data(as_text=True)
    assert "invoice-sender" in html and "bank-puller" not in html
    frag = client.get("/applications/?q=bank", headers={"HX-Request": "true"})
    body = frag.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="app-list">') and "bank-puller" in body


def test_detail_shows_fields_requirements_artifacts_exit_codes(app: Flask) -> None:
    application = make_app(
        "reporter",
        requirements=["abraflexi"],
        fields=[
            {"keyname": "API_URL", "type": "url", "description": "Where", "default": "http://x"},
            {"keyname": "API_PASS", "type": "password", "default": "do-not-show"},
        ],
        exit_codes={3: "no data"},
        artifacts=[{"name": "report", "path": "report-.*\\.pdf"}],
    )
    client = client_for(app, make_user())
    html = client.get(f"/applications/{application.id}").get_data(as_text=True)
    for text in ("API_URL", "http://x", "abraflexi", "report-.*\\.pdf", "no data"):
        assert text in html, text
    assert "do-not-show" not in html


def test_import_reports_each_file(app: Flask) -> None:
    client = client_for(app, make_user(is_admin=True))
    files = [
        (io.BytesIO(HELLO), "hello.multiflexi.app.json"),
        (io.BytesIO(b"{not json"), "broken.multiflexi.app.json"),
    ]
    resp = client.post("/applications/import", data={"files": files})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "hello.multiflexi.app.json" in html and ">imported<" in html
    assert "broken.multiflexi.app.json" in html and ">failed<" in html
    reread()
    assert db.session.scalar(select(Application.name)) == "Hello"
    assert db.session.scalar(select(AuditLog.action).where(AuditLog.action == "import"))
    again = client.post(
        "/applications/import", data={"files": [(io.BytesIO(HELLO), "hello.multiflexi.app.json")]}
    )
    assert ">updated<" in again.get_data(as_text=True)


def test_import_without_file_says_so(app: Flask) -> None:
    resp = client_for(app, make_user(is_admin=True)).post("/applications/import", data={})
    assert resp.status_code == 400 and 'id="err-files"' in resp.get_data(as_text=True)


def test_export_downloads_json_that_names_the_app(app: Flask) -> None:
    application = make_app("exported app", fields=[{"keyname": "A"}])
    resp = client_for(app, make_user()).get(f"/applications/{application.id}/export")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert "filename=exported-app.multiflexi.app.json" in resp.headers["Content-Disposition"]
    doc = json.loads(resp.get_data(as_text=True))
    assert doc["uuid"] == application.uuid and "A" in doc["environment"]


def test_only_global_admin_disables(app: Flask) -> None:
    application = make_app()
    path = f"/applications/{application.id}/enabled"
    assert client_for(app, make_user()).post(path, data={"enabled": ""}).status_code == 403
    resp = client_for(app, make_user(is_admin=True)).post(path, data={"enabled": ""})
    assert resp.status_code == 302
    reread()
    assert db.session.get(Application, application.id).enabled is False  # type: ignore[union-attr]


def test_a_script_homepage_is_not_made_a_link(app: Flask) -> None:
    application = make_app("sneaky")
    application.homepage = "javascript:alert(1)"
    db.session.commit()
    client = client_for(app, make_user())
    html = client.get(f"/applications/{application.id}").get_data(as_text=True)
    assert 'href="javascript:' not in html and "javascript:alert(1)" in html


def test_export_of_an_app_with_a_czech_name_downloads(client: FlaskClient) -> None:
    # Header values must be Latin-1 (PEP 3333): gunicorn failed on a raw "Přehled faktur".
    login(client, make_user(is_admin=True))
    app = make_app("Přehled faktur")
    resp = client.get(f"/applications/{app.id}/export")
    assert resp.status_code == 200
    for name, value in resp.headers.items():
        value.encode("latin-1")  # what every WSGI server does with a header value
        name.encode("latin-1")
    disposition = resp.headers["Content-Disposition"]
    assert "filename*=UTF-8''P%C5%99ehled-faktur.multiflexi.app.json" in disposition
    assert json.loads(resp.get_data(as_text=True))["name"]
