"""One rule of secret-ness: each way a field is secret is encrypted, masked and never printed."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import text

from multiflexi_web.extensions import db
from multiflexi_web.models import AppField, CredentialPrototypeField
from multiflexi_web.services.catalogue.credentials import create_credential
from multiflexi_web.services.catalogue.fields import is_secret_field
from multiflexi_web.services.runtemplates.configure import RunTemplateSpec, create_runtemplate
from tests.factories import client_for, make_app, make_company, make_prototype, make_user

# (type, secret flag) of every way a field is secret.
WAYS = [("password", False), ("secret", False), ("string", True)]


@pytest.mark.parametrize(("ftype", "flag"), [*WAYS, ("string", False), ("integer", False)])
def test_one_rule_for_both_kinds_of_field(ftype: str, flag: bool) -> None:
    expected = (ftype, flag) in WAYS
    assert is_secret_field(AppField(keyname="K", type=ftype, secret=flag)) is expected
    cred_field = CredentialPrototypeField(keyword="K", type=ftype, secret=flag)
    assert is_secret_field(cred_field) is expected
    assert is_secret_field(None) is False


def _seed() -> tuple[dict[str, str], int, int]:
    """One app field and one credential field per way, each with its own unique value."""
    plain = {f"S{i}": f"sentinel-{ftype}-{int(flag)}-x9q" for i, (ftype, flag) in enumerate(WAYS)}
    ways = list(zip(plain, WAYS, strict=True))
    fields = [{"keyname": k, "type": t, "secret": f} for k, (t, f) in ways]
    proto = make_prototype(
        "Vault", fields=[{"keyword": f"C{k}", "type": t, "secret": f} for k, (t, f) in ways]
    )
    app = make_app(fields=fields, requirements=[proto.code])
    company = make_company(slug="acme")
    cvalues = {f"C{k}": f"c{v}" for k, v in plain.items()}
    cred = create_credential(company, proto.code, "vault", cvalues)
    rt = create_runtemplate(
        company, app, RunTemplateSpec(name="rt", config=plain, credential_ids=[cred.id])
    )
    db.session.commit()
    return plain | cvalues, rt.id, cred.id


def test_every_way_is_encrypted_masked_and_never_printed(
    app: Flask, runner: FlaskCliRunner
) -> None:
    values, rt_id, cred_id = _seed()
    stored = db.session.execute(
        text("SELECT value FROM credential_value UNION ALL SELECT value FROM runtemplate_config")
    ).scalars()
    assert all(v.startswith("gAAAA") for v in stored)  # every one is a Fernet token
    admin = client_for(app, make_user(is_admin=True))
    pages = [
        f"/runtemplates/{rt_id}",
        f"/runtemplates/{rt_id}/edit",
        f"/runtemplates/{rt_id}/run",
        f"/credentials/{cred_id}",
        f"/credentials/{cred_id}/edit",
    ]
    for url in pages:
        resp = admin.get(url)
        assert resp.status_code == 200, url
        body = resp.get_data(as_text=True)
        assert not [v for v in values.values() if v in body], url
    for args in (["runtemplate", "show", str(rt_id)], ["credential", "list"]):
        for fmt in ("json", "text"):
            result = runner.invoke(args=[*args, "--format", fmt])
            assert result.exit_code == 0, result.output
            assert not [v for v in values.values() if v in result.output], args
