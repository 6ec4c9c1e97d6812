"""Portal form fields that take a number answer a hostile one with a 400 or a refusal, never a
500: "²" passes isdigit() but not int(), 5,000 ASCII digits pass isdigit() but int() refuses
more than 4,300, and a 20-digit number fits int() but no database integer."""

from __future__ import annotations

import pytest
from flask import Flask

from multiflexi_web.models import JobStatus, Role
from tests.factories import (
    add_member,
    client_for,
    make_app,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
)

SUPERSCRIPT = "²"
LONG = "9" * 5000
HUGE = "9" * 20


def _scene(app: Flask):  # type: ignore[no-untyped-def]
    app.config["PROPAGATE_EXCEPTIONS"] = False
    company = make_company()
    rt = make_runtemplate(company, make_app(fields=[{"keyname": "FOO", "type": "string"}]))
    make_job(rt, status=JobStatus.FAILED)
    user = make_user()
    add_member(user, company, Role.ADMIN)
    return company, rt, client_for(app, user)


@pytest.mark.parametrize("days", [SUPERSCRIPT, LONG], ids=["superscript", "5000-digits"])
def test_token_expires_days(app: Flask, days: str) -> None:
    _, _, client = _scene(app)
    resp = client.post("/account/tokens", data={"name": "ci", "expires_days": days})
    assert resp.status_code < 500, resp.status_code


@pytest.mark.parametrize("job", [SUPERSCRIPT, LONG], ids=["superscript", "5000-digits"])
def test_bulk_retry_job_ids(app: Flask, job: str) -> None:
    _, _, client = _scene(app)
    resp = client.post("/jobs/retry", data={"status": "failed", "job": job})
    assert resp.status_code < 500, resp.status_code


@pytest.mark.parametrize("marked", [SUPERSCRIPT, LONG], ids=["superscript", "5000-digits"])
def test_run_now_env_secret_index(app: Flask, marked: str) -> None:
    _, rt, client = _scene(app)
    resp = client.post(
        f"/runtemplates/{rt.id}/run",
        data={"env_key": "EXTRA", "env_value": "x", "env_secret": marked},
    )
    assert resp.status_code < 500, resp.status_code


@pytest.mark.parametrize(
    "after", [SUPERSCRIPT, LONG, HUGE], ids=["superscript", "5000-digits", "20-digits"]
)
def test_action_after_failures(app: Flask, after: str) -> None:
    _, rt, client = _scene(app)
    resp = client.post(
        f"/runtemplates/{rt.id}/actions/failure/Reschedule",
        data={"trigger": "failures", "after_failures": after, "cfg_delay": "60"},
    )
    assert resp.status_code < 500, resp.status_code


@pytest.mark.parametrize("days", [SUPERSCRIPT, LONG], ids=["superscript", "5000-digits"])
def test_company_retention_override(app: Flask, days: str) -> None:
    company, _, _ = _scene(app)
    admin = client_for(app, make_user(is_admin=True))
    resp = admin.post(f"/companies/{company.id}/retention", data={"retain_jobs_days": days})
    assert resp.status_code < 500, resp.status_code
