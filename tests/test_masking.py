"""Secret masking: the name rule, one-time marks, streamed output masking and its switch."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.security.masking import Masker, StreamMasker
from multiflexi_web.security.secrets import MASK, cipher
from multiflexi_web.services.catalogue.fields import is_secret_name
from multiflexi_web.services.jobs.onetime import seal, unseal
from tests.executor_support import drain, job, output_of, schedule, shell_rt
from tests.factories import make_app, make_company

M = MASK.encode()


@pytest.mark.parametrize(
    "name",
    ["DB_PASSWORD", "password", "SMTP_PASS", "API_KEY", "APIKEY", "SSH_KEYS", "GH_TOKEN",
     "CLIENT_SECRET", "MYSECRETVALUE", "GPG_PASSPHRASE", "WIFI_PSK", "DB_PASSWD", "MAILER_DSN",
     "SENTRY_DSN"],
)  # fmt: skip
def test_secret_like_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["KEYNAME", "KEYBOARD_LAYOUT", "SORT_KEYWORD", "PWD", "PATH", "HOME", "PASSAGE",
     "MULTIFLEXI_JOB_ID", "RESULT_FILE", "COMPASS"],
)  # fmt: skip
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_a_value_split_at_any_boundary_is_masked() -> None:
    masker = Masker(["hunter22", "s3cr3t-and-longer", "abc"])
    text = b"a hunter22 b s3cr3t-and-longer c hunter22hunter22 abc"
    expected = masker.data(text)
    assert expected == b"a " + M + b" b " + M + b" c " + M + M + b" abc"  # "abc": too short
    for cut in range(len(text) + 1):
        for second in range(cut, len(text) + 1):
            stream = StreamMasker(masker)
            parts = [text[:cut], text[cut:second], text[second:]]
            out = b"".join(stream.feed(p) for p in parts) + stream.flush()
            assert out == expected, (cut, second)


def test_byte_at_a_time_and_longest_value_first() -> None:
    masker = Masker(["secret", "secret-long"])
    stream = StreamMasker(masker)
    text = b"x secret-long y secret z"
    out = b"".join(stream.feed(text[i : i + 1]) for i in range(len(text))) + stream.flush()
    assert out == b"x " + M + b" y " + M + b" z"


def test_no_secrets_means_no_work() -> None:
    masker = Masker(["", "ab"])
    assert not masker
    assert StreamMasker(masker).feed(b"anything") == b"anything"


def test_one_time_marks_round_trip_and_the_old_format_still_reads(app: Flask) -> None:
    token = seal({"A": "1", "B": "two-secret"}, {"B", "NOT_GIVEN"})
    assert token is not None and "two-secret" not in token
    assert unseal(token).values == {"A": "1", "B": "two-secret"}
    assert unseal(token).secret == {"B"}
    plain = seal({"A": "1"})
    assert plain is not None and cipher().decrypt_json(plain) == {"A": "1"}
    assert unseal(cipher().encrypt_json({"A": "1"})).secret == frozenset()
    assert seal({}) is None and unseal(None).values == {}


SCRIPT = 'printf "%s|%s\\n" "$ONCE" "$PLAIN"; printf "%s" "$ONCE" | cut -c1-4 >&2'


@pytest.mark.parametrize("mask_output", [True, False])
def test_output_masking_and_its_switch(app: Flask, mask_output: bool) -> None:
    rt = shell_rt(SCRIPT, mask_output=mask_output)
    [job_id] = schedule(
        rt, env_override={"ONCE": "one-time-value", "PLAIN": "visible"}, secret_keys={"ONCE"}
    )
    drain(app)
    done = job(job_id)
    assert done.status == "succeeded", done.status_reason
    shown = {e["key"]: e["value"] for e in done.env or []}
    assert (shown["ONCE"], shown["PLAIN"]) == (MASK, "visible")  # stored env: always masked
    once = M if mask_output else b"one-time-value"
    assert output_of(job_id) == once + b"|visible\n"
    assert output_of(job_id, "stderr") == b"one-\n"  # a part of a secret is not the secret


def test_cli_secret_env_is_marked(app: Flask, runner: FlaskCliRunner) -> None:
    rt = shell_rt("true")
    args = ["runtemplate", "schedule", str(rt.id), "--env", "A=1", "--secret-env", "B=2"]
    result = runner.invoke(args=[*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    once = unseal(job(row["id"]).env_override)
    assert once.values == {"A": "1", "B": "2"} and once.secret == {"B"}
    db.session.rollback()


def test_an_error_naming_a_secret_is_masked(app: Flask) -> None:
    rt = shell_rt("true")
    rt.application.executable = "/nonexistent/{ONCE}"
    db.session.commit()
    [job_id] = schedule(rt, env_override={"ONCE": "one-time-value"}, secret_keys={"ONCE"})
    drain(app)
    done = job(job_id)
    assert done.status == "failed" and MASK in (done.status_reason or "")
    assert "one-time-value" not in (done.status_reason or "")
    assert done.command == [f"/nonexistent/{MASK}", "-c", "true"]
    assert b"one-time-value" not in output_of(job_id, "stderr")


def test_the_edit_form_turns_output_masking_off_and_on(app: Flask) -> None:
    from multiflexi_web.models import RunTemplate
    from tests.factories import client_for, make_runtemplate, make_user
    from tests.portal_b_helpers import fresh

    rt = make_runtemplate(make_company(), make_app(), name="switch")
    client = client_for(app, make_user(is_admin=True))
    assert 'name="mask_output" value="true" id="mask_output" checked' in client.get(
        f"/runtemplates/{rt.id}/edit"
    ).get_data(as_text=True)
    for sent, expected in ((["false"], False), (["false", "true"], True)):
        data = {"name": "switch", "interval": "n", "executor": "native", "mask_output": sent}
        resp = client.post(f"/runtemplates/{rt.id}/edit", data=data)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        assert fresh(RunTemplate, rt.id).mask_output is expected


def test_secret_named_company_env_is_encrypted_shown_masked_and_rotated(
    app: Flask, runner: FlaskCliRunner
) -> None:
    from multiflexi_web.models import CompanyEnv
    from multiflexi_web.security.secrets import Cipher, SecretError, generate_key, reveal
    from multiflexi_web.services.accounts.companies import set_env, shown_env

    company = make_company()
    set_env(company, {"SMTP_PASSWORD": "env-secret", "REGION": "eu"}, admin=True)
    db.session.commit()
    rows = {e.key: e for e in company.env}
    assert rows["SMTP_PASSWORD"].secret and "env-secret" not in rows["SMTP_PASSWORD"].value
    assert (rows["REGION"].secret, rows["REGION"].value) == (False, "eu")
    assert shown_env(company) == {"SMTP_PASSWORD": MASK, "REGION": "eu"}
    company.env.append(CompanyEnv(key="OLD_TOKEN", value="old-plain"))  # set before encryption
    db.session.commit()
    new_key = generate_key()
    result = runner.invoke(args=["secrets", "rotate-key", "--new-key", new_key, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["company_env_values"] == 2
    db.session.expire_all()
    rows = {e.key: e for e in db.session.scalars(select(CompanyEnv).where(CompanyEnv.secret))}
    assert Cipher(new_key).decrypt(rows["SMTP_PASSWORD"].value) == "env-secret"
    assert Cipher(new_key).decrypt(rows["OLD_TOKEN"].value) == "old-plain"
    row = rows["SMTP_PASSWORD"]
    with pytest.raises(SecretError):
        reveal(row)  # the app still has the old key: the value really moved to the new one


def test_a_refused_run_now_form_never_sends_a_secret_value_back(app: Flask) -> None:
    from tests.factories import client_for, make_runtemplate, make_user

    rt = make_runtemplate(make_company(), make_app())
    client = client_for(app, make_user(is_admin=True))
    data = {
        "env_key": ["MARKED", "DB_PASSWORD", "PLAIN", "1BAD"],
        "env_value": ["marked-value", "named-value", "plain-value", "x"],
        "env_secret": "0",
    }
    resp = client.post(f"/runtemplates/{rt.id}/run", data=data)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "1BAD" in page
    assert "marked-value" not in page and "named-value" not in page
    assert (
        "plain-value" in page and 'name="env_secret" value="0" aria-label="secret" checked' in page
    )
