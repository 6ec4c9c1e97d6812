"""A job's output is a tenant's: an SGR sequence of over 4,300 digits (int() raises) left its
job page a 500 for every viewer."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import login, make_company, make_job, make_runtemplate, make_user

EVIL = "before \x1b[" + "1" * 5000 + "m after"


def test_job_page_with_long_sgr_parameter(app: Flask, client: FlaskClient) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, make_user(is_admin=True))
    job = make_job(make_runtemplate(make_company()), output=EVIL)
    resp = client.get(f"/jobs/{job.id}")
    assert resp.status_code == 200, resp.status_code
    assert "after" in resp.get_data(as_text=True)
