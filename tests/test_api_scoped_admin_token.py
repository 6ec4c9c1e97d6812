"""A global administrator's token limited to one company has a member's powers there, also
over environment names: docs/api.md promises 403 for global-admin operations "even for a global
administrator's token", and setting names outside the application's declared fields and the
allow-list is one (SPEC §15), yet scheduling a run (v1 and the upstream-compatible API) and
creating a RunTemplate took the user's admin flag, ignoring the token's scope."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.api_helpers import bearer, make_scene, make_token

UNDECLARED = {"HTTPS_PROXY": "http://attacker.example:3128"}


def test_operator_token_cannot_set_undeclared_names(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.operator)
    resp = client.post(
        f"/api/v1/runtemplates/{s.rt_a.id}/schedule",
        json={"env": UNDECLARED},
        headers=bearer(secret),
    )
    assert resp.status_code in (400, 422), resp.get_data(as_text=True)


def test_scoped_admin_token_cannot_set_undeclared_names(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.admin, company=s.a)
    # The scope is in force for global-admin operations...
    resp = client.post("/api/v1/platform/pause", headers=bearer(secret))
    assert resp.status_code == 403
    # ...but not for the environment-name rule: an undeclared name is accepted.
    resp = client.post(
        f"/api/v1/runtemplates/{s.rt_a.id}/schedule",
        json={"env": UNDECLARED},
        headers=bearer(secret),
    )
    assert resp.status_code in (400, 422), (resp.status_code, resp.get_data(as_text=True))


def test_scoped_admin_token_upstream_job_env(app: Flask, client: FlaskClient) -> None:
    s = make_scene(app)
    secret = make_token(s.admin, company=s.a)
    resp = client.post(
        "/api/VitexSoftware/MultiFlexi/1.0.0/job/",
        json={"runtemplate_id": s.rt_a.id, "env": UNDECLARED},
        headers=bearer(secret),
    )
    assert resp.status_code in (400, 422), (resp.status_code, resp.get_data(as_text=True))
