"""A job's JSON artifact nested too deeply to indent is still viewable: shown as its text."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import (
    login,
    make_artifact,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
)


def test_deep_json_artifact_view(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user(is_admin=True))
    job = make_job(make_runtemplate(make_company()))
    content = b"[" * 50_000 + b"]" * 50_000  # 100 kB, a job's result.json
    art = make_artifact(job, filename="result.json", content=content)
    resp = client.get(f"/jobs/{job.id}/artifacts/{art.id}")
    assert resp.status_code == 200, resp.status_code
