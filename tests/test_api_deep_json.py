"""A JSON body nested too deeply for the parser is a 400 like any malformed body, not a 500
(RecursionError, which request.get_json(silent=True) does not catch)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.api_helpers import bearer, make_scene, make_token

DEEP = "[" * 100_000 + "]" * 100_000


def test_deep_json_body_is_a_clear_400(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: an error is a 500 page
    s = make_scene(app)
    headers = {**bearer(make_token(s.admin)), "Content-Type": "application/json"}
    for method, url in [
        ("post", "/api/v1/runtemplates"),
        ("patch", f"/api/v1/runtemplates/{s.rt_a.id}"),
        ("post", f"/api/v1/runtemplates/{s.rt_a.id}/schedule"),
        ("post", "/api/VitexSoftware/MultiFlexi/1.0.0/job/"),  # the upstream-compatible API
    ]:
        resp = getattr(client, method)(url, data=DEEP, headers=headers)
        assert resp.status_code == 400, (method, url, resp.status_code, resp.get_data(True)[:300])
