"""One readiness rule for the API and the CLI as for the portal (issue 18, items 2, 3 and 7):
a required field nothing sets is refused by name, unmet credentials save inactive with a warning
and activation waits for them, an invalid cron is one error naming the field."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Role, RunTemplate
from tests.api_helpers import bearer, make_token
from tests.factories import (
    add_member,
    isolate_requests,
    make_app,
    make_company,
    make_credential,
    make_prototype,
    make_user,
)

FIELDS: list[dict[str, Any]] = [
    {"keyname": "LABEL", "type": "string", "required": True},
    {"keyname": "TICKS", "type": "integer", "required": True, "default": "10"},
    {"keyname": "LOGIN", "type": "string", "required": True},  # an abraflexi credential has it
]


def _scene(app: Flask, requirements: list[str] | None = None) -> tuple[int, int, str]:
    """A company, the app, and an operator's API token."""
    isolate_requests(app)
    company, user = make_company(slug="acme"), make_user("op")
    add_member(user, company, Role.OPERATOR)
    application = make_app("ticker", fields=FIELDS, requirements=requirements)
    return company.id, application.id, make_token(user)


def _count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(RunTemplate)) or 0


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def test_api_refuses_a_missing_required_value_by_name(app: Flask, client: FlaskClient) -> None:
    company_id, app_id, secret = _scene(app)
    body = {"company_id": company_id, "application_id": app_id, "name": "t"}
    refused = _error(client.post("/api/v1/runtemplates", json=body, headers=bearer(secret)), 422)
    assert refused["details"] == {"field": "config"}
    assert "required values missing: LABEL, LOGIN" in refused["message"]  # not TICKS: default
    assert _count() == 0
    body["config"] = {"LABEL": "x", "LOGIN": "ops"}
    made = _error(client.post("/api/v1/runtemplates", json=body, headers=bearer(secret)), 201)
    assert made["active"] is True and "warnings" not in made
    cleared = client.patch(
        f"/api/v1/runtemplates/{made['id']}", json={"config": {"LABEL": ""}}, headers=bearer(secret)
    )
    assert "required values missing: LABEL" in _error(cleared, 422)["message"]


def test_api_saves_inactive_while_credentials_are_unmet(app: Flask, client: FlaskClient) -> None:
    company_id, app_id, secret = _scene(app, ["abraflexi"])
    proto = make_prototype("abraflexi")
    body = {
        "company_id": company_id,
        "application_id": app_id,
        "name": "t",
        "interval": "h",
        "config": {"LABEL": "x"},  # LOGIN: the abraflexi credential will supply it
    }
    made = _error(client.post("/api/v1/runtemplates", json=body, headers=bearer(secret)), 201)
    assert (made["active"], made["next_run_at"], made["unmet_requirements"]) == (
        False,
        None,
        ["abraflexi"],
    )
    assert made["warnings"] == [
        "Saved inactive: no credential yet for abraflexi. "
        "Assign one per requirement, then activate it."
    ]
    url = f"/api/v1/runtemplates/{made['id']}"
    refused = _error(client.post(f"{url}/enable", headers=bearer(secret)), 422)
    assert refused["details"] == {"field": "credentials"} and "abraflexi" in refused["message"]
    still = client.patch(url, json={"active": True}, headers=bearer(secret)).get_json()
    assert still["active"] is False and still["warnings"]
    db.session.rollback()
    company = db.session.get(RunTemplate, made["id"])
    assert company is not None
    cred = make_credential(company.company, proto)
    patched = client.patch(
        url, json={"credentials": {"abraflexi": cred.id}}, headers=bearer(secret)
    )
    assert _error(patched, 200)["unmet_requirements"] == []
    enabled = _error(client.post(f"{url}/enable", headers=bearer(secret)), 200)
    assert enabled["active"] is True and enabled["next_run_at"] is not None


def test_api_reports_an_invalid_cron_once_naming_the_field(app: Flask, client: FlaskClient) -> None:
    company_id, app_id, secret = _scene(app)
    body = {
        "company_id": company_id,
        "application_id": app_id,
        "name": "t",
        "interval": "c",
        "cron": "*/5 * *",
        "config": {"LABEL": "x", "LOGIN": "ops"},
    }
    refused = _error(client.post("/api/v1/runtemplates", json=body, headers=bearer(secret)), 422)
    assert refused["details"] == {"field": "cron"}
    assert refused["message"].count("must have 5 fields") == 1


def _cli(runner: FlaskCliRunner, *args: str) -> Any:
    return runner.invoke(args=["runtemplate", "create", "--company", "acme", *args])


def test_cli_refuses_a_missing_required_value_by_name(app: Flask, runner: FlaskCliRunner) -> None:
    _, app_id, _ = _scene(app)
    refused = _cli(runner, "--app", str(app_id), "--name", "t", "--config", "LABEL=x")
    assert refused.exit_code != 0 and "required values missing: LOGIN" in refused.output
    assert _count() == 0
    made = _cli(
        runner, "--app", str(app_id), "--name", "t", "--config", "LABEL=x", "--config", "LOGIN=o"
    )
    assert made.exit_code == 0, made.output and _count() == 1


def test_cli_saves_inactive_and_refuses_activation_while_unmet(
    app: Flask, runner: FlaskCliRunner
) -> None:
    _, app_id, _ = _scene(app, ["abraflexi"])
    make_prototype("abraflexi")
    made = _cli(
        runner,
        "--app",
        str(app_id),
        "--name",
        "t",
        "--interval",
        "h",
        "--config",
        "LABEL=x",
        "--format",
        "json",
    )
    assert made.exit_code == 0, made.output
    assert "warning: Saved inactive: no credential yet for abraflexi" in made.stderr
    row = json.loads(made.stdout)
    assert (row["active"], row["unmet_requirements"]) == (False, ["abraflexi"])
    activate = runner.invoke(args=["runtemplate", "update", str(row["id"]), "--active"])
    assert activate.exit_code != 0 and "no credential for abraflexi" in activate.output
    db.session.rollback()
    rt = db.session.get(RunTemplate, row["id"])
    assert rt is not None and rt.active is False


def test_cli_reports_an_invalid_cron_once_naming_the_field(
    app: Flask, runner: FlaskCliRunner
) -> None:
    _, app_id, _ = _scene(app)
    refused = _cli(
        runner,
        "--app",
        str(app_id),
        "--name",
        "t",
        "--interval",
        "c",
        "--cron",
        "*/5 * *",
        "--config",
        "LABEL=x",
        "--config",
        "LOGIN=o",
    )
    assert refused.exit_code != 0
    assert refused.output.count("must have 5 fields") == 1 and "cron '*/5 * *'" in refused.output
