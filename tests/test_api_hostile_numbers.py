"""API integer query parameters that pass str.isdigit() but not int() ("²", 5,000 digits)
answer the documented 400 bad_request envelope naming the field, not a 500 internal_error."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import make_job

UPSTREAM = "/api/VitexSoftware/MultiFlexi/1.0.0"


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/jobs?limit=%C2%B2", "limit"),
        ("/api/v1/jobs?after=%C2%B2", "after"),
        ("/api/v1/companies?limit=%C2%B2", "limit"),
        ("/api/v1/runtemplates?company=%C2%B2", "company"),
        ("/api/v1/sla?company=%C2%B2", "company"),
        ("/api/v1/events?source=%C2%B2", "source"),
        (UPSTREAM + "/jobs.json?offset=%C2%B2", "offset"),
    ],
)
def test_superscript_digit_is_a_400_not_a_500(app: Flask, url: str, field: str) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    scene = make_scene(app)
    secret = make_token(scene.company_admin)
    resp = app.test_client().get(url, headers=bearer(secret))
    body = resp.get_json()
    assert resp.status_code == 400, (resp.status_code, body)
    assert body["error"] == "bad_request" and body["details"].get("field") == field


def test_job_output_after_superscript_digit_is_a_400(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    scene = make_scene(app)
    job = make_job(scene.rt_a, output="x")
    secret = make_token(scene.company_admin)
    resp = app.test_client().get(
        f"/api/v1/jobs/{job.id}/output?after=%C2%B2", headers=bearer(secret)
    )
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True))
