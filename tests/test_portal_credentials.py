"""Credential prototypes, types and credentials: secrets are write-only in every page."""

from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Company,
    Credential,
    CredentialPrototype,
    CredentialType,
    Role,
    RunTemplateCredential,
)
from multiflexi_web.services.catalogue.credentials import plain_values
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_credential,
    make_prototype,
    make_runtemplate,
    make_user,
    reread,
)
from tests.services import upstream_files

PROTO_FILE = upstream_files() / "credentials" / "envfile.credprototype.json"
SECRET = "s3cret-value"


def _company_admin(app: Flask) -> tuple[Company, FlaskClient]:
    company = make_company()
    admin = make_user()
    add_member(admin, company, Role.ADMIN)
    return company, client_for(app, admin)


def test_secret_values_are_never_sent_to_the_browser(app: Flask) -> None:
    company, client = _company_admin(app)
    cred = make_credential(company, values={"LOGIN": "alice", "PASSWORD": SECRET})
    for path in (f"/credentials/{cred.id}", f"/credentials/{cred.id}/edit", "/credentials/"):
        html = client.get(path).get_data(as_text=True)
        assert SECRET not in html, path
    edit = client.get(f"/credentials/{cred.id}/edit").get_data(as_text=True)
    assert 'value="alice"' in edit
    assert 'type="password" name="value_PASSWORD" value=""' in edit
    assert "stored; leave empty to keep" in edit


def test_empty_secret_keeps_the_old_value_and_a_new_one_replaces_it(app: Flask) -> None:
    company, client = _company_admin(app)
    cred = make_credential(company, values={"LOGIN": "alice", "PASSWORD": SECRET})
    path = f"/credentials/{cred.id}/edit"
    data = {"name": "renamed", "value_LOGIN": "bob", "value_PASSWORD": ""}
    assert client.post(path, data=data).status_code == 302
    reread()
    stored = db.session.get(Credential, cred.id)
    assert stored is not None and stored.name == "renamed"
    assert plain_values(stored) == {"LOGIN": "bob", "PASSWORD": SECRET}
    client.post(path, data={**data, "value_PASSWORD": "new-pass"})
    reread()
    stored = db.session.get(Credential, cred.id)
    assert stored is not None and plain_values(stored)["PASSWORD"] == "new-pass"


def test_a_plain_field_with_a_secret_name_is_stored_and_shown_as_a_secret(app: Flask) -> None:
    """Upstream's Mail prototype declares MAILER_DSN, which carries the login, a plain string."""
    company, client = _company_admin(app)
    proto = make_prototype(fields=[{"keyword": "MAILER_DSN", "type": "string"}])
    cred = make_credential(company, proto, values={})
    dsn = f"smtp://mailer:{SECRET}@127.0.0.1:2525"
    path = f"/credentials/{cred.id}/edit"
    assert client.post(path, data={"name": "mail", "value_MAILER_DSN": dsn}).status_code == 302
    reread()
    [row] = db.session.get(Credential, cred.id).values  # type: ignore[union-attr]
    assert row.secret and SECRET not in row.value
    for page in (f"/credentials/{cred.id}", path, f"/credprototypes/{proto.id}"):
        assert SECRET not in client.get(page).get_data(as_text=True), page
    assert 'type="password" name="value_MAILER_DSN" value=""' in client.get(path).get_data(
        as_text=True
    )


def test_create_validates_required_and_typed_values(app: Flask) -> None:
    company, client = _company_admin(app)
    proto = make_prototype(
        "mailer",
        fields=[
            {"keyword": "SMTP_PORT", "type": "integer", "required": True},
            {"keyword": "SMTP_PASS", "type": "password", "secret": True},
        ],
    )
    path = f"/companies/{company.id}/credentials/new"
    form = client.get(path, query_string={"prototype_id": proto.id})
    assert form.status_code == 200 and 'name="value_SMTP_PORT"' in form.get_data(as_text=True)
    bad = {"prototype_id": proto.id, "name": "m", "value_SMTP_PORT": "many"}
    bad["value_SMTP_PASS"] = "pw"
    resp = client.post(path, data=bad)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="err-value_SMTP_PORT"' in html and "whole number" in html
    assert "pw" not in html.split('name="value_SMTP_PASS"')[1][:40]  # typed secret not echoed
    resp = client.post(path, data={**bad, "value_SMTP_PORT": ""})
    assert resp.status_code == 400
    assert "required values missing: SMTP_PORT" in resp.get_data(as_text=True)
    resp = client.post(path, data={**bad, "value_SMTP_PORT": "25"})
    assert resp.status_code == 302
    reread()
    cred = db.session.scalar(select(Credential).where(Credential.name == "m"))
    assert cred is not None and plain_values(cred) == {"SMTP_PORT": "25", "SMTP_PASS": "pw"}


def test_operator_cannot_see_edit_controls_or_post(app: Flask) -> None:
    company = make_company()
    cred = make_credential(company)
    operator = make_user()
    add_member(operator, company, Role.OPERATOR)
    client = client_for(app, operator)
    html = client.get(f"/credentials/{cred.id}").get_data(as_text=True)
    assert "Edit" not in html and "••••••••" in html
    assert client.post(f"/credentials/{cred.id}/delete").status_code == 403


def test_delete_refused_while_a_runtemplate_uses_it(app: Flask) -> None:
    company, client = _company_admin(app)
    proto = make_prototype()
    cred = make_credential(company, proto)
    rt = make_runtemplate(company, make_app(requirements=[proto.code]))
    db.session.add(
        RunTemplateCredential(runtemplate_id=rt.id, credential_id=cred.id, requirement=proto.code)
    )
    db.session.commit()
    resp = client.post(f"/credentials/{cred.id}/delete", follow_redirects=True)
    assert "used by RunTemplate" in resp.get_data(as_text=True)
    other_id, cred_id = make_credential(company).id, cred.id
    assert client.post(f"/credentials/{other_id}/delete").status_code == 302
    reread()
    assert db.session.get(Credential, other_id) is None
    assert db.session.get(Credential, cred_id) is not None


def test_credential_types_create_and_delete(app: Flask) -> None:
    company, client = _company_admin(app)
    proto = make_prototype("bank")
    path = f"/companies/{company.id}/credential-types"
    assert client.post(path, data={"prototype_id": proto.id}).status_code == 302
    reread()
    ctype = db.session.scalar(select(CredentialType).where(CredentialType.prototype_id == proto.id))
    assert ctype is not None
    ctype_id = ctype.id
    html = client.get(path).get_data(as_text=True)
    assert "bank" in html
    assert client.post(f"/credential-types/{ctype_id}/delete").status_code == 302
    reread()
    assert db.session.get(CredentialType, ctype_id) is None


def test_prototype_import_list_and_detail(app: Flask) -> None:
    client = client_for(app, make_user(is_admin=True))
    data = {"files": [(io.BytesIO(PROTO_FILE.read_bytes()), PROTO_FILE.name)]}
    resp = client.post("/credential-prototypes/import", data=data)
    assert resp.status_code == 200 and ">imported<" in resp.get_data(as_text=True)
    reread()
    proto_id = db.session.scalar(
        select(CredentialPrototype.id).where(CredentialPrototype.code == "EnvFile")
    )
    assert proto_id is not None
    assert "EnvFile" in client.get("/credential-prototypes/").get_data(as_text=True)
    detail = client.get(f"/credential-prototypes/{proto_id}").get_data(as_text=True)
    assert "ENV_FILE_PATH" in detail
    viewer = client_for(app, make_user())
    assert viewer.post("/credential-prototypes/import", data={}).status_code == 403


def test_credential_list_shows_only_the_users_companies(app: Flask) -> None:
    company, client = _company_admin(app)
    make_credential(company, name="ours")
    make_credential(make_company(), name="theirs")
    html = client.get("/credentials/").get_data(as_text=True)
    assert "ours" in html and "theirs" not in html and company.name in html
