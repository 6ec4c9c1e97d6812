"""`multiflexi prune` and `worker list`, the company retention form and the storage figures."""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, update

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Company, Installation, Job, JobStatus, Role, utcnow
from tests.factories import (
    add_member,
    client_for,
    make_artifact,
    make_company,
    make_job,
    make_runtemplate,
    make_user,
    make_worker,
    reread,
)


def _json(runner: FlaskCliRunner, *args: str) -> object:
    result = runner.invoke(args=[*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_worker_list_shows_running_daemons_with_their_heartbeat(
    app: Flask, runner: FlaskCliRunner
) -> None:
    live, silent = make_worker("executor"), make_worker("scheduler", heartbeat_age=3600)
    gone = make_worker("eventor", status="stopped")
    gone.stopped_at = utcnow()
    db.session.commit()
    rows = _json(runner, "worker", "list")
    assert isinstance(rows, list)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {live.id, silent.id}
    assert by_id[live.id]["stale"] is False and by_id[silent.id]["stale"] is True
    every = _json(runner, "worker", "list", "--all")
    assert isinstance(every, list) and gone.id in {r["id"] for r in every}
    text = runner.invoke(args=["worker", "list"]).output
    assert "HEARTBEAT_AGE" in text and "executor" in text


def test_prune_dry_run_then_prune(app: Flask, runner: FlaskCliRunner) -> None:
    company = make_company()
    company.retain_jobs_days = 30
    db.session.commit()
    rt = make_runtemplate(company)
    old = make_job(rt, status=JobStatus.SUCCEEDED, output="hello")
    make_artifact(old, content=b"12345")
    new = make_job(rt, status=JobStatus.SUCCEEDED)
    due = utcnow() - timedelta(days=40)
    db.session.execute(
        update(Job).where(Job.id == old.id).values(scheduled_for=due, finished_at=due)
    )
    db.session.commit()
    old_id, new_id = old.id, new.id

    preview = _json(runner, "prune", "--dry-run")
    assert isinstance(preview, dict)
    assert preview["jobs"] == {"count": 1, "bytes": 10} and "removed" not in preview
    assert "dry run" in runner.invoke(args=["prune", "--dry-run"]).output
    done = _json(runner, "prune")
    assert isinstance(done, dict) and done["removed"]["jobs"] == 1
    reread()
    assert db.session.get(Job, old_id) is None and db.session.get(Job, new_id) is not None
    assert db.session.scalar(select(AuditLog.action).where(AuditLog.action == "prune"))


def test_retention_form_is_for_platform_admins(app: Flask) -> None:
    company = make_company()
    company_admin = make_user()
    add_member(company_admin, company, Role.ADMIN)
    url = f"/companies/{company.id}/retention"
    values = {"retain_jobs_days": "10", "retain_output_days": "", "artifact_budget_mb": "5"}
    assert client_for(app, company_admin).post(url, data=values).status_code == 403
    page = client_for(app, company_admin).get(f"/companies/{company.id}").get_data(as_text=True)
    assert "Retention" in page and "Save retention" not in page

    admin = client_for(app, make_user(is_admin=True))
    assert admin.post(url, data=values).status_code == 302
    bad = admin.post(url, data={"retain_failed_days": "-3"})
    assert bad.status_code == 400 and "retain_failed_days" in bad.get_data(as_text=True)
    reread()
    saved = db.session.get(Company, company.id)
    assert saved is not None
    assert (saved.retain_jobs_days, saved.retain_output_days, saved.artifact_budget_mb) == (
        10,
        None,
        5,
    )
    assert admin.post("/companies/99999/retention", data=values).status_code == 404


def test_dashboard_shows_storage_figures(app: Flask) -> None:
    company = make_company()
    make_artifact(make_job(make_runtemplate(company)), content=b"x" * 2048)
    admin_html = client_for(app, make_user(is_admin=True)).get("/").get_data(as_text=True)
    assert "Database size" in admin_html and "1 files, 2.0 KiB" in admin_html
    viewer = make_user()
    add_member(viewer, make_company(), Role.VIEWER)
    html = client_for(app, viewer).get("/").get_data(as_text=True)
    assert "Database size" not in html and "0 files, 0 B" in html


def test_installation_prints_the_uid_its_engine_objects_carry(
    app: Flask, runner: FlaskCliRunner
) -> None:
    shown = _json(runner, "installation")
    uid = db.session.scalar(select(Installation.uid))
    assert uid is not None and len(uid) == 32
    assert shown == {"uid": uid, "label": f"multiflexi.installation={uid}"}
    assert _json(runner, "installation") == shown  # made once, then the same
    assert runner.invoke(args=["installation"]).output.split() == [
        "uid",
        uid,
        "label",
        f"multiflexi.installation={uid}",
    ]
