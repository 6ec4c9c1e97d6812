"""A NUL character is refused wherever a value for a job's environment or an action comes in,
with a message naming the key: execve() cuts a value at its first NUL and PostgreSQL stores
none (a 500 there; on SQLite stored, and every job of the template then failed at start)."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.services.actions import configure
from multiflexi_web.services.actions.configure import ActionConfigError
from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import (
    login,
    make_app,
    make_company,
    make_prototype,
    make_runtemplate,
    make_user,
)


def test_portal_config_value_with_nul(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user(is_admin=True))
    tool = make_app(fields=[{"keyname": "FOO", "type": "string"}])
    rt = make_runtemplate(make_company(), tool)
    form = {"name": "x", "interval": "n", "executor": "native", "cfg-FOO": "a\x00b"}
    resp = client.post(f"/runtemplates/{rt.id}/edit", data=form)
    assert resp.status_code == 400, resp.status_code
    assert "FOO" in resp.get_data(as_text=True)


def test_api_config_value_with_nul(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    s = make_scene(app)
    headers = {**bearer(make_token(s.admin)), "Content-Type": "application/json"}
    body = json.dumps({"config": {"GREETING": "a\x00b"}})
    resp = client.patch(f"/api/v1/runtemplates/{s.rt_a.id}", data=body, headers=headers)
    assert resp.status_code == 422, (resp.status_code, resp.get_data(True)[:300])
    assert "NUL" in resp.get_data(as_text=True)
    run = json.dumps({"env": {"GREETING": "a\x00b"}})
    resp = client.post(f"/api/v1/runtemplates/{s.rt_a.id}/schedule", data=run, headers=headers)
    assert resp.status_code in (400, 422), (resp.status_code, resp.get_data(True)[:300])
    assert "GREETING" in resp.get_data(as_text=True)
    make_prototype("bank")
    cred = {"company_id": s.a.id, "prototype": "bank", "name": "m", "values": {"LOGIN": "a\x00"}}
    resp = client.post("/api/v1/credentials", data=json.dumps(cred), headers=headers)
    assert resp.status_code == 422 and "LOGIN" in resp.get_data(as_text=True)


def test_company_env_value_with_nul(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user(is_admin=True))
    company = make_company()
    resp = client.post(f"/companies/{company.id}/env", data={"key": "GREETING", "value": "a\x00b"})
    assert resp.status_code == 400, resp.status_code
    assert "NUL character" in resp.get_data(as_text=True)


def test_action_config_value_with_nul(app: Flask) -> None:
    rt = make_runtemplate(make_company(), make_app())
    with pytest.raises(ActionConfigError, match="'url': contains a NUL"):
        configure.put(rt, "success", "WebHook", {"url": "https://a.example/\x00"})
    with pytest.raises(ActionConfigError, match="'headers': contains a NUL"):
        configure.put_default("WebHook", {"headers": "\x00"}, is_admin=True)
