"""CLI: users, companies, credentials and RunTemplates, text and JSON, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    AppField,
    Application,
    CredentialPrototype,
    CredentialPrototypeField,
    RunTemplate,
    User,
)


def invoke_json(runner: FlaskCliRunner, *args: str) -> object:
    result = runner.invoke(args=[*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def seed_app() -> Application:
    proto = CredentialPrototype(uuid="33333333-3333-4333-8333-333333333333", code="Db", name="DB")
    proto.fields = [
        CredentialPrototypeField(keyword="DB_PASS", type="password", secret=True, required=True)
    ]
    app = Application(
        uuid="44444444-4444-4444-8444-444444444444",
        name="Exporter",
        executable="/bin/echo",
        requirements=["Db"],
    )
    app.fields = [
        AppField(keyname="LIMIT", type="integer"),
        AppField(keyname="DEBUG", type="bool"),
        AppField(keyname="MODE", type="set", options=["fast", "slow"]),
    ]
    db.session.add_all([proto, app])
    db.session.commit()
    return app


def test_user_create_prints_generated_password_once(app: Flask, runner: FlaskCliRunner) -> None:
    out = invoke_json(runner, "user", "create", "alice", "--admin")
    assert isinstance(out, dict) and out["login"] == "alice" and len(out["password"]) >= 12
    user = db.session.query(User).filter_by(login="alice").one()
    assert user.is_admin and out["password"] not in user.password_hash
    again = runner.invoke(args=["user", "create", "alice", "--password", "longenough"])
    assert again.exit_code == 1
    assert again.output.strip() == "Error: login: user 'alice' already exists"


def test_company_create_and_list(app: Flask, runner: FlaskCliRunner) -> None:
    made = invoke_json(runner, "company", "create", "Acme s.r.o.", "--slug", "acme", "--env", "A=1")
    assert isinstance(made, dict) and made["env"] == {"A": "1"}
    listed = invoke_json(runner, "company", "list")
    assert isinstance(listed, list) and [c["slug"] for c in listed] == ["acme"]
    text = runner.invoke(args=["company", "list"])
    assert "acme" in text.output and text.output.startswith("ID")
    dup = runner.invoke(args=["company", "create", "Other", "--slug", "acme"])
    assert dup.exit_code == 1 and "already used" in dup.output
    bad = runner.invoke(args=["company", "create", "X", "--slug", "x", "--env", "NOEQUALS"])
    assert bad.exit_code == 2 and "expected KEY=VALUE" in bad.output


def test_runtemplate_create_with_credential(app: Flask, runner: FlaskCliRunner) -> None:
    application = seed_app()
    invoke_json(runner, "company", "create", "Acme", "--slug", "acme")
    cred = invoke_json(
        runner,
        "credential",
        "create",
        "--company",
        "acme",
        "--prototype",
        "Db",
        "--name",
        "main db",
        "--value",
        "DB_PASS=hunter2",
    )
    assert isinstance(cred, dict) and cred["values"] == {"DB_PASS": "••••••••"}
    rt = invoke_json(
        runner,
        "runtemplate",
        "create",
        "--company",
        "acme",
        "--app",
        application.uuid,
        "--name",
        "nightly",
        "--interval",
        "d",
        "--delay",
        "7200",
        "--config",
        "LIMIT=10",
        "--config",
        "DEBUG=no",
        "--credential",
        str(cred["id"]),
        "--timeout",
        "60",
    )
    assert isinstance(rt, dict)
    assert rt["config"] == {"DEBUG": "false", "LIMIT": "10"}
    assert rt["credentials"] == {"Db": cred["id"]}
    assert rt["next_run_at"] is not None and rt["next_run_at"].endswith("T02:00:00+00:00")
    shown = invoke_json(runner, "runtemplate", "show", str(rt["id"]))
    assert isinstance(shown, dict) and shown["name"] == "nightly"
    assert db.session.get(RunTemplate, rt["id"]) is not None


def test_runtemplate_errors_name_field_and_reason(app: Flask, runner: FlaskCliRunner) -> None:
    application = seed_app()
    runner.invoke(args=["company", "create", "Acme", "--slug", "acme"])
    base = [
        "runtemplate",
        "create",
        "--company",
        "acme",
        "--app",
        str(application.id),
        "--name",
        "x",
    ]
    cases = {
        (
            "--interval",
            "c",
            "--cron",
            "61 * * * *",
        ): "cron '61 * * * *': not a valid cron expression",
        ("--interval", "c"): "cron: required when the interval is c",
        ("--interval", "q"): "interval 'q': must be one of",
        ("--config", "LIMIT=ten"): "config LIMIT: 'ten' is not a whole number",
        ("--config", "MODE=medium"): "config MODE: 'medium' is not one of fast, slow",
        ("--executor", "nope"): "executor 'nope': unknown executor module",
        ("--timezone", "Nowhere/City"): "timezone 'Nowhere/City': not a known IANA time zone",
        ("--credential", "999"): "credential 999: not found in this company",
    }
    for extra, message in cases.items():
        result = runner.invoke(args=[*base, *extra])
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1
    missing = runner.invoke(
        args=["runtemplate", "create", "--company", "nope", "--app", "1", "--name", "x"]
    )
    assert missing.exit_code == 1 and "company 'nope': not found" in missing.output
    assert db.session.query(RunTemplate).count() == 0


# Sets the terminal's title, a C1 CSI, a newline that would add a row to the table.
HOSTILE = "Evil\x1b]0;owned\x07\x9b2J\nID  9  fake"


def test_other_peoples_text_cannot_drive_the_operators_terminal(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """A name and an environment value (a company's own input) reach the operator's terminal
    with every control character escaped, in the text table, a record and JSON alike."""
    made = invoke_json(
        runner, "company", "create", HOSTILE, "--slug", "evil", "--env", f"N={HOSTILE}"
    )
    assert isinstance(made, dict) and made["name"] == HOSTILE and made["env"] == {"N": HOSTILE}
    for args in (["company", "list"], ["company", "list", "--format", "json"]):
        out = runner.invoke(args=args).output
        assert not any(ch in out for ch in "\x1b\x07\x9b"), args
    table = runner.invoke(args=["company", "list"]).output
    assert table.count("\n") == 2  # the header and one row: the newline is shown as \n
    assert "Evil\\x1b]0;owned\\x07\\x9b2J\\nID  9  fake" in table
    listed = json.loads(runner.invoke(args=["company", "list", "--format", "json"]).output)
    assert isinstance(listed, list) and listed[0]["name"] == HOSTILE  # same text, escaped


def test_the_command_shows_its_own_version_and_options_not_flasks(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from multiflexi_web import __version__
    from multiflexi_web.cli import cli

    # The help loads the app (its commands): its files go to tmp_path, not the checkout's var/.
    runner = CliRunner(
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'mf.db'}",
            "MULTIFLEXI_TMP": str(tmp_path / "tmp"),
            "MULTIFLEXI_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "MULTIFLEXI_ENV_FILE": str(tmp_path / "none.env"),
            "MULTIFLEXI_LOCAL_ENV": str(tmp_path / "none-local.env"),
        }
    )
    shown = runner.invoke(cli, ["--version"])
    assert shown.exit_code == 0 and shown.output == f"multiflexi {__version__}\n"
    helped = runner.invoke(cli, ["--help"])
    assert helped.exit_code == 0 and "--version" in helped.output
    assert not any(o in helped.output for o in ("--app", "--env-file", "--debug", "Flask"))


def test_runtemplate_update_sets_config_and_a_credential(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """A template created without its credential (so inactive) gets it, and config values,
    later: checked as on create, other values kept, another company's credential refused."""
    application = seed_app()
    invoke_json(runner, "company", "create", "Acme", "--slug", "acme")
    invoke_json(runner, "company", "create", "Other", "--slug", "other")
    args = ["--prototype", "Db", "--name", "db", "--value", "DB_PASS=hunter2"]
    cred = invoke_json(runner, "credential", "create", "--company", "acme", *args)
    foreign = invoke_json(runner, "credential", "create", "--company", "other", *args)
    assert isinstance(cred, dict) and isinstance(foreign, dict)
    made = runner.invoke(
        args=["runtemplate", "create", "--company", "acme", "--app", str(application.id),
              "--name", "x", "--config", "LIMIT=5", "--format", "json"]
    )  # fmt: skip
    rt = json.loads(made.stdout)
    assert rt["active"] is False and "Db" in made.output  # no credential yet: a warning

    rt_id = str(rt["id"])
    refused = runner.invoke(
        args=["runtemplate", "update", rt_id, "--credential", str(foreign["id"])]
    )
    assert refused.exit_code == 1 and "not found in this company" in refused.output
    bad = runner.invoke(args=["runtemplate", "update", rt_id, "--config", "LIMIT=many"])
    assert bad.exit_code == 1 and "config LIMIT" in bad.output
    updated = invoke_json(
        runner, "runtemplate", "update", rt_id, "--config", "DEBUG=yes",
        "--credential", str(cred["id"]), "--active",
    )  # fmt: skip
    assert isinstance(updated, dict)
    assert updated["config"] == {"DEBUG": "true", "LIMIT": "5"}
    assert updated["credentials"] == {"Db": cred["id"]} and updated["active"] is True
