"""Secrets at rest: encrypted in the database, never shown, and rotated without loss."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, text

from multiflexi_web.config import ConfigError
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    AppField,
    Application,
    CredentialPrototype,
    CredentialPrototypeField,
    CredentialValue,
)
from multiflexi_web.security.secrets import Cipher, SecretError, generate_key
from multiflexi_web.services.accounts.companies import create_company
from multiflexi_web.services.catalogue.credentials import create_credential, plain_values
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateSpec,
    create_runtemplate,
    plain_config,
)


def seed() -> tuple[int, int]:
    proto = CredentialPrototype(
        uuid="11111111-1111-4111-8111-111111111111", code="Mail", name="Mail"
    )
    proto.fields = [
        CredentialPrototypeField(keyword="MAIL_USER", type="string"),
        CredentialPrototypeField(keyword="MAIL_PASSWORD", type="password", secret=True),
    ]
    app = Application(
        uuid="22222222-2222-4222-8222-222222222222",
        name="Mailer",
        executable="/bin/true",
        requirements=["Mail"],
    )
    app.fields = [AppField(keyname="TOKEN", type="password", secret=True), AppField(keyname="N")]
    db.session.add_all([proto, app])
    company = create_company("Acme", "acme")
    cred = create_credential(company, "Mail", "mailbox", {"MAIL_USER": "u", "MAIL_PASSWORD": "pw1"})
    rt = create_runtemplate(
        company,
        app,
        RunTemplateSpec(
            name="rt", config={"TOKEN": "tok-secret", "N": "5"}, credential_ids=[cred.id]
        ),
    )
    db.session.commit()
    return cred.id, rt.id


def raw_values() -> list[str]:
    rows = db.session.execute(
        text("SELECT value FROM credential_value UNION ALL SELECT value FROM runtemplate_config")
    ).scalars()
    return list(rows)


def test_secret_values_are_encrypted_at_rest(app: Flask) -> None:
    seed()
    stored = raw_values()
    assert "pw1" not in stored and "tok-secret" not in stored
    assert "u" in stored and "5" in stored  # plain values stay readable
    cred = db.session.scalars(select(CredentialValue).where(CredentialValue.secret)).one()
    assert cred.value.startswith("gAAAA")  # a Fernet token


def test_empty_secret_keeps_old_value(app: Flask) -> None:
    from multiflexi_web.models import RunTemplate
    from multiflexi_web.services.runtemplates.configure import set_config

    _, rt_id = seed()
    rt = db.session.get(RunTemplate, rt_id)
    assert rt is not None
    set_config(rt, {"TOKEN": "", "N": "6"})
    db.session.commit()
    assert plain_config(rt) == {"TOKEN": "tok-secret", "N": "6"}


def test_rotate_key_keeps_every_value(app: Flask, runner: FlaskCliRunner) -> None:
    from multiflexi_web.models import Credential, RunTemplate

    cred_id, rt_id = seed()
    before = raw_values()
    new_key = generate_key()
    result = runner.invoke(args=["secrets", "rotate-key", "--new-key", new_key, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["credential_values"] == 1 and report["runtemplate_values"] == 1
    assert new_key not in result.output  # a given key is not echoed back
    after = raw_values()
    assert after != before
    app.config["MULTIFLEXI"] = type(app.config["MULTIFLEXI"])(
        **{**app.config["MULTIFLEXI"].__dict__, "encryption_master_key": new_key}
    )
    db.session.expire_all()
    cred = db.session.get(Credential, cred_id)
    rt = db.session.get(RunTemplate, rt_id)
    assert cred is not None and rt is not None
    assert plain_values(cred)["MAIL_PASSWORD"] == "pw1"
    assert plain_config(rt)["TOKEN"] == "tok-secret"


def test_rotation_with_wrong_key_changes_nothing(app: Flask, runner: FlaskCliRunner) -> None:
    seed()
    before = raw_values()
    app.config["MULTIFLEXI"] = type(app.config["MULTIFLEXI"])(
        **{**app.config["MULTIFLEXI"].__dict__, "encryption_master_key": generate_key()}
    )
    result = runner.invoke(args=["secrets", "rotate-key"])
    assert result.exit_code == 1
    assert "cannot be decrypted" in result.output
    db.session.rollback()
    assert raw_values() == before


def test_cipher_old_keys_and_errors() -> None:
    old, new = generate_key(), generate_key()
    token = Cipher(old).encrypt("s3cret")
    assert Cipher(new, (old,)).decrypt(token) == "s3cret"
    with pytest.raises(SecretError, match="ENCRYPTION_MASTER_KEY does not match"):
        Cipher(new).decrypt(token)
    with pytest.raises(ConfigError, match="ENCRYPTION_MASTER_KEY: not set"):
        Cipher("")
    # Any passphrase works as a master key (hashed into a Fernet key).
    assert Cipher("correct horse").decrypt(Cipher("correct horse").encrypt("x")) == "x"
