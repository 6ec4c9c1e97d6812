"""The job list's `until` filter reads the next day's start: 9999-12-31, the last date, is
refused naming the field (portal and API) instead of overflowing into a 500."""

from __future__ import annotations

from flask import Flask

from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import client_for, make_job


def test_portal_job_list_until_last_day(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    scene = make_scene(app)
    make_job(scene.rt_a)
    client = client_for(app, scene.viewer)
    resp = client.get("/jobs/?until=9999-12-31")
    assert resp.status_code in (200, 400), resp.status_code


def test_api_job_list_until_last_day(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    scene = make_scene(app)
    make_job(scene.rt_a)
    resp = app.test_client().get(
        "/api/v1/jobs?until=9999-12-31", headers=bearer(make_token(scene.viewer))
    )
    assert resp.status_code in (200, 400), (resp.status_code, resp.get_data(as_text=True))
