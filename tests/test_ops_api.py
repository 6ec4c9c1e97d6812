"""API: bulk retry, backfill and SLA over /api/v1, with roles, token scopes and companies."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus
from tests.api_helpers import bearer, make_scene, make_token
from tests.factories import make_job
from tests.test_ops_sla import NOV, _week


def test_bulk_retry_dry_run_equals_retry_within_the_callers_companies(app: Flask) -> None:
    s = make_scene(app)
    mine = [make_job(s.rt_a, status=st) for st in ("failed", "lost", "timed_out")]
    theirs = make_job(s.rt_b, status=JobStatus.FAILED)
    client = app.test_client()
    op = bearer(make_token(s.operator))
    dry = client.post("/api/v1/jobs/retry", json={"dry_run": True}, headers=op).get_json()
    assert [j["id"] for j in dry["jobs"]] == [j.id for j in mine] and dry["count"] == 3
    body = {"job_ids": [j["id"] for j in dry["jobs"]] + [theirs.id]}
    done = client.post("/api/v1/jobs/retry", json=body, headers=op)
    assert done.status_code == 200, done.get_json()
    rows = done.get_json()["jobs"]
    assert [r["id"] for r in rows] == [j.id for j in mine] and all(r["new_job_id"] for r in rows)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(Job.runtemplate_id == s.rt_b.id)) == 1
    admin = bearer(make_token(s.admin, company=s.b))  # a token scoped to company B
    scoped = client.post("/api/v1/jobs/retry", json={"dry_run": True}, headers=admin).get_json()
    assert [j["id"] for j in scoped["jobs"]] == [theirs.id]
    viewer = bearer(make_token(s.viewer))
    assert client.post("/api/v1/jobs/retry", json={}, headers=viewer).status_code == 403
    read_only = bearer(make_token(s.operator, read_only=True, name="ro"))
    assert client.post("/api/v1/jobs/retry", json={}, headers=read_only).status_code == 403
    bad = client.post("/api/v1/jobs/retry", json={"status": ["succeeded"]}, headers=op)
    assert bad.status_code == 400 and "status" in bad.get_json()["message"]


def test_backfill_dry_run_equals_created(app: Flask) -> None:
    s = make_scene(app)
    s.rt_a.interval = "d"
    s.rt_b.interval = "d"
    db.session.commit()
    client = app.test_client()
    op = bearer(make_token(s.operator))
    url = f"/api/v1/runtemplates/{s.rt_a.id}/backfill"
    body = {"from": "2026-11-01T00:00:00+00:00", "to": "2026-11-04T00:00:00+00:00"}
    dry = client.post(url, json={**body, "dry_run": True}, headers=op).get_json()
    assert dry["new"] == 3 and [x["job_id"] for x in dry["slots"]] == [None] * 3
    done = client.post(url, json=body, headers=op)
    assert done.status_code == 200, done.get_json()
    slots = done.get_json()["slots"]
    assert [x["slot_at"] for x in slots] == [x["slot_at"] for x in dry["slots"]]
    db.session.rollback()
    made = db.session.scalars(
        select(Job).where(Job.runtemplate_id == s.rt_a.id).order_by(Job.id)
    ).all()
    # In id order: a table's rows come back in whatever order its pages hold them.
    assert [j.id for j in made] == [x["job_id"] for x in slots]
    assert [j.slot_at for j in made] == [NOV + timedelta(days=i) for i in range(3)]
    again = client.post(url, json={**body, "dry_run": True}, headers=op).get_json()
    assert again["new"] == 0
    foreign = f"/api/v1/runtemplates/{s.rt_b.id}/backfill"
    assert client.post(foreign, json=body, headers=op).status_code == 404
    wide = {"from": "2026-01-01T00:00:00+00:00", "to": "2026-11-01T00:00:00+00:00"}
    s.rt_a.interval = "i"
    db.session.commit()
    refused = client.post(url, json=wide, headers=op)
    assert refused.status_code == 422 and "slots" in refused.get_json()["message"]


def test_sla_over_the_api(app: Flask) -> None:
    s = make_scene(app)
    week = _week("C")
    client = app.test_client()
    admin = bearer(make_token(s.admin))
    query = {"from": "2026-11-01", "to": "2026-11-08", "runtemplate": week.id}
    data = client.get("/api/v1/sla", query_string=query, headers=admin).get_json()
    assert data["totals"]["missed"] == 1 and data["totals"]["late"] == 2
    assert [t["runtemplate_id"] for t in data["templates"]] == [week.id]
    op = bearer(make_token(s.operator))  # a member of company a only
    assert client.get("/api/v1/sla", query_string=query, headers=op).status_code == 404
    own = client.get("/api/v1/sla", query_string={"from": "2026-11-01"}, headers=op).get_json()
    assert week.id not in [t["runtemplate_id"] for t in own["templates"]]
