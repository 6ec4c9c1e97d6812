"""CLI: the host administrator's account work without the portal: users listed, a lost
password reset (the login's waits lifted), users disabled, company members and fields changed."""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Company, Credential, RunTemplate, User, utcnow
from multiflexi_web.security.secrets import MASK, reveal
from multiflexi_web.services.accounts import throttle, tokens
from multiflexi_web.services.accounts.users import authenticate
from multiflexi_web.services.catalogue.credentials import revealed_values
from tests.test_cli_core import invoke_json, seed_app

POLICY = throttle.Policy(free=1, cap=3600)


def _user(login: str) -> User:
    db.session.expire_all()
    found = db.session.scalar(select(User).where(User.login == login))
    assert found is not None
    return found


def test_a_lost_password_is_reset_and_the_logins_waits_lifted(
    app: Flask, runner: FlaskCliRunner
) -> None:
    invoke_json(runner, "user", "create", "alice", "--password", "old-password", "--admin")
    invoke_json(runner, "user", "create", "bob", "--password", "bobs-password")
    now = utcnow()
    for _ in range(4):  # wrong passwords from two addresses, for alice and for bob
        for ip in ("192.0.2.1", "192.0.2.2"):
            throttle.record_failure(ip, "alice", known=False, policy=POLICY, now=now)
        throttle.record_failure("192.0.2.9", "bob", known=False, policy=POLICY, now=now)
    db.session.commit()
    assert throttle.wait_seconds("192.0.2.1", "alice", now) > 0
    epoch = _user("alice").session_epoch

    reset = invoke_json(runner, "user", "reset-password", "alice")
    assert isinstance(reset, dict) and set(reset) == {"id", "login", "password"}
    new_password = reset["password"]
    assert authenticate("alice", "old-password", ip=None) is None
    assert authenticate("alice", new_password, ip=None) is not None
    assert _user("alice").session_epoch == epoch + 1  # every session of hers ended
    later = now + timedelta(seconds=1)
    assert throttle.wait_seconds("192.0.2.2", "alice", later) == 0
    assert throttle.wait_seconds("192.0.2.9", "bob", later) > 0  # others' waits stay
    chosen = runner.invoke(args=["user", "reset-password", "alice", "--password", "chosen-one"])
    assert chosen.exit_code == 0 and "chosen-one" not in chosen.output
    assert authenticate("alice", "chosen-one", ip=None) is not None
    short = runner.invoke(args=["user", "reset-password", "alice", "--password", "short"])
    assert short.exit_code != 0 and "password: must be at least 8 characters" in short.output
    assert authenticate("alice", "chosen-one", ip=None) is not None  # nothing changed
    missing = runner.invoke(args=["user", "reset-password", "nobody-here"])
    assert missing.exit_code != 0 and "login 'nobody-here': no such user" in missing.output
    summaries = db.session.scalars(select(AuditLog.summary).where(AuditLog.actor == "cli"))
    assert list(summaries).count("password of alice reset") == 2


def test_a_disabled_user_can_neither_log_in_nor_use_a_token(
    app: Flask, runner: FlaskCliRunner
) -> None:
    invoke_json(runner, "user", "create", "carol", "--password", "carols-password")
    issued = tokens.issue(_user("carol"), "script")
    db.session.commit()
    shown = invoke_json(runner, "user", "disable", "carol")
    assert isinstance(shown, dict) and shown["enabled"] is False
    assert authenticate("carol", "carols-password", ip=None) is None
    try:
        tokens.verify(issued.secret, utcnow())
    except tokens.TokenError as exc:
        assert "disabled" in str(exc)
    else:
        raise AssertionError("a disabled user's token was accepted")
    invoke_json(runner, "user", "enable", "carol")
    assert authenticate("carol", "carols-password", ip=None) is not None
    assert tokens.verify(issued.secret, utcnow()).user.login == "carol"


def test_company_members_are_added_listed_and_removed(app: Flask, runner: FlaskCliRunner) -> None:
    invoke_json(runner, "company", "create", "Acme", "--slug", "acme")
    invoke_json(runner, "company", "create", "Other", "--slug", "other")
    invoke_json(runner, "user", "create", "dave", "--password", "daves-password")
    added = invoke_json(runner, "company", "member", "add", "acme", "dave", "--role", "operator")
    assert isinstance(added, dict) and added["role"] == "operator"
    invoke_json(runner, "company", "member", "add", "other", "dave", "--role", "viewer")
    invoke_json(runner, "company", "member", "add", "acme", "dave", "--role", "admin")  # a change
    assert invoke_json(runner, "company", "member", "list", "acme") == [
        {"user_id": added["user_id"], "login": "dave", "role": "admin", "enabled": True}
    ]
    listed = invoke_json(runner, "user", "list")
    assert isinstance(listed, list) and len(listed) == 1
    assert listed[0]["companies"] == {"acme": "admin", "other": "viewer"}
    text = runner.invoke(args=["user", "list"]).output
    assert "dave" in text and '"acme": "admin"' in text

    bad_role = runner.invoke(args=["company", "member", "add", "acme", "dave", "--role", "owner"])
    assert bad_role.exit_code != 0
    assert "role 'owner': must be one of admin, operator, viewer" in bad_role.output
    no_user = runner.invoke(args=["company", "member", "add", "acme", "eve", "--role", "viewer"])
    assert no_user.exit_code != 0 and "login 'eve': no such user" in no_user.output
    no_company = runner.invoke(args=["company", "member", "list", "nope"])
    assert no_company.exit_code != 0 and "company 'nope': not found" in no_company.output

    removed = runner.invoke(args=["company", "member", "remove", "acme", "dave"])
    assert removed.exit_code == 0 and "dave removed from acme" in removed.output
    assert invoke_json(runner, "company", "member", "list", "acme") == []
    again = runner.invoke(args=["company", "member", "remove", "acme", "dave"])
    assert again.exit_code != 0 and "is not a member of 'acme'" in again.output


def test_company_update_changes_only_what_is_given(app: Flask, runner: FlaskCliRunner) -> None:
    made = invoke_json(
        runner, "company", "create", "Acme", "--slug", "acme", "--email", "a@example.com",
        "--env", "REGION=eu", "--env", "MODE=x",
    )  # fmt: skip
    assert isinstance(made, dict)
    changed = invoke_json(
        runner, "company", "update", str(made["id"]), "--name", "Acme Ltd",
        "--env", "REGION=us", "--unset-env", "MODE", "--env", "API_TOKEN=t0ps3cret",
    )  # fmt: skip
    assert isinstance(changed, dict)
    assert (changed["name"], changed["slug"], changed["email"]) == (
        "Acme Ltd",
        "acme",
        "a@example.com",
    )
    assert changed["env"] == {"REGION": "us", "API_TOKEN": MASK}
    out = runner.invoke(args=["company", "update", "acme", "--email", "", "--disabled"]).output
    assert "t0ps3cret" not in out
    shown = invoke_json(runner, "company", "list")
    assert isinstance(shown, list) and len(shown) == 1
    assert (shown[0]["email"], shown[0]["enabled"], shown[0]["name"]) == (None, False, "Acme Ltd")
    invoke_json(runner, "company", "create", "Other", "--slug", "other")
    taken = runner.invoke(args=["company", "update", "acme", "--slug", "other"])
    assert taken.exit_code != 0 and "slug 'other': already used by another company" in taken.output
    unset = runner.invoke(args=["company", "update", "acme", "--unset-env", "NOPE"])
    assert unset.exit_code != 0 and "env key 'NOPE': not set in this company" in unset.output
    listed = json.loads(runner.invoke(args=["company", "list", "--format", "json"]).output)
    assert [c["slug"] for c in listed] == ["acme", "other"]  # the refused changes left nothing


def test_credentials_are_rotated_from_stdin_and_deleted_and_runtemplates_deleted(
    app: Flask, runner: FlaskCliRunner
) -> None:

    seed = seed_app()
    invoke_json(runner, "company", "create", "Acme", "--slug", "acme")
    made = runner.invoke(
        args=["credential", "create", "--company", "acme", "--prototype", "Db", "--name", "db",
              "--value-stdin", "DB_PASS", "--format", "json"],
        input="first-S3cret\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    cred_id = json.loads(made.output)["id"]
    cred = db.session.get(Credential, cred_id)
    assert cred is not None and revealed_values(cred) == {"DB_PASS": "first-S3cret"}
    rotated = runner.invoke(
        args=["credential", "update", str(cred_id), "--value-stdin", "DB_PASS"],
        input="second-S3cret\n",
    )
    assert rotated.exit_code == 0 and "S3cret" not in rotated.output
    db.session.expire_all()
    assert revealed_values(cred) == {"DB_PASS": "second-S3cret"}
    renamed = invoke_json(runner, "credential", "update", str(cred_id), "--name", "main db")
    assert isinstance(renamed, dict) and renamed["name"] == "main db"
    db.session.expire_all()
    assert revealed_values(cred) == {"DB_PASS": "second-S3cret"}  # kept

    rt = invoke_json(
        runner, "runtemplate", "create", "--company", "acme", "--app", str(seed.id),
        "--name", "export", "--credential", str(cred_id),
    )  # fmt: skip
    assert isinstance(rt, dict)
    used = runner.invoke(args=["credential", "delete", str(cred_id)])
    assert used.exit_code != 0 and f"used by RunTemplate {rt['id']}" in used.output
    unconfirmed = runner.invoke(args=["runtemplate", "delete", str(rt["id"])], input="n\n")
    assert unconfirmed.exit_code != 0 and db.session.get(RunTemplate, rt["id"]) is not None
    gone = runner.invoke(args=["runtemplate", "delete", str(rt["id"]), "--yes"])
    assert gone.exit_code == 0, gone.output
    assert runner.invoke(args=["credential", "delete", str(cred_id)]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Credential, cred_id) is None
    assert db.session.get(RunTemplate, rt["id"]) is None
    missing = runner.invoke(args=["credential", "update", "999", "--name", "x"])
    assert missing.exit_code != 0 and "credential 999: not found" in missing.output


def test_company_env_and_runtemplate_config_values_come_from_stdin_too(
    app: Flask, runner: FlaskCliRunner
) -> None:
    # Not on the command line, where every user of the host sees it in the process list.
    made = runner.invoke(
        args=["company", "create", "Acme", "--slug", "acme", "--env-stdin", "API_TOKEN",
              "--format", "json"],
        input="t0ken-S3cret\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["env"] == {"API_TOKEN": MASK}
    changed = runner.invoke(
        args=["company", "update", "acme", "--env-stdin", "API_TOKEN"], input="t0ken-2\n"
    )
    assert changed.exit_code == 0 and "t0ken" not in changed.output
    company = db.session.scalar(select(Company).where(Company.slug == "acme"))
    assert company is not None
    db.session.refresh(company)
    [row] = company.env
    assert row.value != "t0ken-2" and reveal(row) == "t0ken-2"  # stored encrypted
    seed = seed_app()
    rt = runner.invoke(
        args=["runtemplate", "create", "--company", "acme", "--app", str(seed.id), "--name",
              "export", "--config-stdin", "LIMIT", "--inactive", "--format", "json"],
        input="25\n",
    )  # fmt: skip
    assert rt.exit_code == 0, rt.output
    rt_id = json.loads(rt.stdout)["id"]
    again = runner.invoke(args=["runtemplate", "update", str(rt_id), "--config-stdin", "LIMIT"],
                          input="30")  # fmt: skip
    assert again.exit_code == 0, again.output
    shown = invoke_json(runner, "runtemplate", "show", str(rt_id))
    assert isinstance(shown, dict) and shown["config"]["LIMIT"] in (30, "30")


def test_company_create_makes_the_slug_from_the_name_when_none_is_given(
    app: Flask, runner: FlaskCliRunner
) -> None:
    first = invoke_json(runner, "company", "create", "Café Nový s.r.o.")
    again = invoke_json(runner, "company", "create", "Cafe Novy S.R.O.")
    assert isinstance(first, dict) and isinstance(again, dict)
    assert (first["slug"], again["slug"]) == ("cafe-novy-s-r-o", "cafe-novy-s-r-o-2")
    taken = runner.invoke(args=["company", "create", "X", "--slug", "cafe-novy-s-r-o"])
    assert taken.exit_code != 0 and "already used by another company" in taken.output
