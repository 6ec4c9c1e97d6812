"""`multiflexi pause`, `resume` and `drain`: one scope at a time, audited, refusals named."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, JobStatus, Pause, Worker
from tests.factories import make_app, make_company, make_job, make_runtemplate, make_worker


def _ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _audit() -> list[tuple[str, str, str | None]]:
    db.session.rollback()
    rows = db.session.scalars(select(AuditLog).order_by(AuditLog.id))
    return [(a.action, a.entity_type, a.entity_id) for a in rows]


def test_pause_list_and_resume_each_scope(app: Flask, runner: FlaskCliRunner) -> None:
    rt, prog, co = make_runtemplate(make_company()), make_app(), make_company()
    assert "paused runtemplate" in _ok(runner, "pause", "--runtemplate", str(rt.id))
    _ok(runner, "pause", "--app", str(prog.id), "--reason", "upstream API down")
    _ok(runner, "pause", "--company", str(co.id))
    _ok(runner, "pause", "--all")
    assert "already paused" in _ok(runner, "pause", "--all")
    listed = json.loads(_ok(runner, "pause", "--list", "--format", "json"))
    assert [(p["scope"], p["target_id"]) for p in listed] == [
        ("runtemplate", rt.id), ("application", prog.id), ("company", co.id), ("platform", 0)
    ]  # fmt: skip
    assert listed[1]["reason"] == "upstream API down"
    for args in (["--runtemplate", str(rt.id)], ["--app", str(prog.id)], ["--all"]):
        _ok(runner, "resume", *args)
    db.session.rollback()
    assert db.session.scalars(select(Pause.scope)).all() == ["company"]
    assert _audit() == [
        ("pause", "runtemplate", str(rt.id)), ("pause", "application", str(prog.id)),
        ("pause", "company", str(co.id)), ("pause", "platform", "0"),
        ("resume", "runtemplate", str(rt.id)), ("resume", "application", str(prog.id)),
        ("resume", "platform", "0"),
    ]  # fmt: skip


def test_pause_refusals_name_the_problem(app: Flask, runner: FlaskCliRunner) -> None:
    rt = make_runtemplate(make_company())
    both = runner.invoke(args=["pause", "--runtemplate", str(rt.id), "--all"])
    assert both.exit_code == 2 and "name one scope" in both.output
    assert runner.invoke(args=["pause"]).exit_code == 2
    missing = runner.invoke(args=["pause", "--company", "999999"])
    assert missing.exit_code == 1 and "company '999999': not found" in missing.output
    no_slug = runner.invoke(args=["pause", "--company", "nope"])
    assert no_slug.exit_code == 1 and "company 'nope': not found" in no_slug.output
    not_paused = runner.invoke(args=["resume", "--runtemplate", str(rt.id)])
    assert not_paused.exit_code == 1 and "is not paused" in not_paused.output
    assert _audit() == []


def test_drain_flags_a_live_executor_only(app: Flask, runner: FlaskCliRunner) -> None:
    executor, scheduler = make_worker("executor"), make_worker("scheduler")
    gone = make_worker("executor", status="stopped")
    assert "is draining" in _ok(runner, "drain", str(executor.id))
    db.session.rollback()
    flagged = db.session.get(Worker, executor.id)
    assert flagged is not None and flagged.status == "draining" and flagged.drain_requested_at
    for worker_id, why in ((scheduler.id, "not an executor"), (gone.id, "not running")):
        refused = runner.invoke(args=["drain", str(worker_id)])
        assert refused.exit_code == 1 and why in refused.output
    assert runner.invoke(args=["drain", "999999"]).exit_code == 1
    assert _audit() == [("drain", "worker", str(executor.id))]


def test_a_company_is_named_by_slug_and_an_app_by_uuid_as_everywhere(
    app: Flask, runner: FlaskCliRunner
) -> None:
    co, prog = make_company(), make_app()
    _ok(runner, "pause", "--company", co.slug, "--reason", "ERP upgrade")
    _ok(runner, "pause", "--app", prog.uuid)
    db.session.rollback()
    assert sorted(tuple(r) for r in db.session.execute(select(Pause.scope, Pause.target_id))) == [
        ("application", prog.id), ("company", co.id)
    ]  # fmt: skip
    _ok(runner, "resume", "--company", co.slug)
    _ok(runner, "resume", "--app", prog.uuid)
    mine = make_runtemplate(co, prog, name="mine", interval="d")
    theirs = make_runtemplate(make_company(), prog, name="theirs", interval="d")
    failed = make_job(mine, status=JobStatus.FAILED, exit_code=1)
    make_job(theirs, status=JobStatus.FAILED, exit_code=1)
    args = ["job", "retry", "--company", co.slug, "--app", prog.uuid, "--dry-run"]
    found = json.loads(_ok(runner, *args, "--format", "json"))
    assert [j["id"] for j in found["jobs"]] == [failed.id]
    sla = json.loads(_ok(runner, "sla", "--company", co.slug, "--format", "json"))
    assert [t["name"] for t in sla["templates"]] == ["mine"]
