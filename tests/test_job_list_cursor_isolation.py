"""The job list's keyset cursor (`before` in the portal, `after` in the API) is read only from a
job the caller sees: with a date filter, another company's job id used to cut the page at that
job's planned time, telling a member of company A when company B's jobs are planned."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from multiflexi_web.models import Role, utcnow
from tests.api_helpers import bearer, make_token
from tests.factories import (
    add_member,
    client_for,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
)


def _scene(app: Flask):  # type: ignore[no-untyped-def]
    a, b = make_company(), make_company()
    viewer = make_user()
    add_member(viewer, a, Role.VIEWER)
    rt_a, rt_b = make_runtemplate(a), make_runtemplate(b)
    now = utcnow().replace(microsecond=0)
    # A's jobs planned 5, 3 and 1 hours ago; B's (made last: the highest id) 4 hours ago.
    a_jobs = [make_job(rt_a, started_at=now - timedelta(hours=h)) for h in (5, 3, 1)]
    b_job = make_job(rt_b, started_at=now - timedelta(hours=4))
    since = (now - timedelta(days=1)).date().isoformat()
    return viewer, a_jobs, b_job, since


def test_portal_list_is_not_cut_at_another_companys_job_time(app: Flask) -> None:
    viewer, a_jobs, b_job, since = _scene(app)
    client = client_for(app, viewer)
    missing = b_job.id + 1000  # no such job: the list is simply "ids below"
    base = client.get(f"/jobs/?since={since}&before={missing}").get_data(as_text=True)
    probe = client.get(f"/jobs/?since={since}&before={b_job.id}").get_data(as_text=True)
    shown_base = [j.id for j in a_jobs if f"/jobs/{j.id}" in base]
    shown_probe = [j.id for j in a_jobs if f"/jobs/{j.id}" in probe]
    assert shown_base == [j.id for j in a_jobs]
    # B's job must answer like a job that does not exist for this user.
    assert shown_probe == shown_base, (
        f"cut at company B's job {b_job.id} planned time: {shown_probe} vs {shown_base}"
    )


def test_api_list_is_not_cut_at_another_companys_job_time(app: Flask) -> None:
    viewer, a_jobs, b_job, since = _scene(app)
    secret = make_token(viewer)
    client = app.test_client()
    missing = b_job.id + 1000

    def ids(after: int) -> list[int]:
        resp = client.get(f"/api/v1/jobs?since={since}&after={after}", headers=bearer(secret))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return sorted(item["id"] for item in resp.get_json()["items"])

    assert ids(missing) == sorted(j.id for j in a_jobs)
    assert ids(b_job.id) == ids(missing), "the page was cut at company B's job's planned time"
