"""Bulk retry and backfill: previews equal what is then created, access, slots, overlap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, update

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Job, JobStatus, RunTemplate, utcnow
from multiflexi_web.services.jobs import onetime
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.bulk_retry import BulkRetryError, RetryFilter, preview, retry
from multiflexi_web.services.jobs.environment import SLOT_AT, context_for, resolve
from multiflexi_web.services.scheduling import backfill
from multiflexi_web.services.scheduling.backfill import BackfillError, Window
from tests.executor_support import drain, output_of, shell_rt
from tests.factories import make_company, make_job, make_runtemplate

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def _cli(runner: FlaskCliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(args=[*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert isinstance(found, dict)
    return found


def _failures() -> dict[str, Job]:
    """Company A: one job of each status, one failure already retried; company B: a failure."""
    a, b = make_company("A"), make_company("B")
    rt_a, rt_b = make_runtemplate(a), make_runtemplate(b)
    jobs_ = {s: make_job(rt_a, status=s) for s in ("failed", "lost", "timed_out", "succeeded")}
    jobs_["cancelled"] = make_job(rt_a, status=JobStatus.CANCELLED)
    jobs_["exit2"] = make_job(rt_a, status=JobStatus.FAILED, exit_code=2)
    done = make_job(rt_a, status=JobStatus.FAILED)
    again = make_job(rt_a, status=JobStatus.SCHEDULED)
    db.session.execute(update(Job).where(Job.id == again.id).values(retry_of_id=done.id))
    jobs_["b"] = make_job(rt_b, status=JobStatus.FAILED)
    secret_env = onetime.seal({"GREETING": "hi", "TOKEN": "s3"}, ["TOKEN"])
    db.session.execute(
        update(Job).where(Job.id == jobs_["failed"].id).values(env_override=secret_env)
    )
    db.session.commit()
    return jobs_


def test_bulk_retry_previews_then_reruns_exactly_those_of_visible_companies(app: Flask) -> None:
    made = _failures()
    company_a = made["failed"].company_id
    shown = preview(RetryFilter(), {company_a})
    ids = [j.id for j in shown.jobs]
    expected = [made[k].id for k in ("failed", "lost", "timed_out", "exit2")]
    assert ids == expected and not shown.too_many
    assert made["b"].id not in {j.id for j in preview(RetryFilter(company=None), {company_a}).jobs}
    assert preview(RetryFilter(), set()).jobs == []  # no company: nothing, never everything
    done = retry(RetryFilter(), {company_a}, None, "adhoc-web", ids)
    db.session.commit()
    assert [r.old.id for r in done] == ids
    new = db.session.scalars(select(Job).where(Job.id.in_([r.new.id for r in done]))).all()
    assert len(new) == 4 and {j.status for j in new} == {"scheduled"}
    assert {j.runtemplate_id for j in new} == {made["failed"].runtemplate_id}
    first = next(r.new for r in done if r.old.id == made["failed"].id)
    once = onetime.unseal(first.env_override)
    assert once.values == {"GREETING": "hi", "TOKEN": "s3"} and once.secret == {"TOKEN"}


def test_bulk_retry_filters_and_refuses_bad_values(app: Flask) -> None:
    made = _failures()
    only = RetryFilter.parse({"exit_code": "2", "status": "failed"}, "UTC")
    assert [j.id for j in preview(only, None).jobs] == [made["exit2"].id]
    lost = RetryFilter.parse({"status": "lost,timed_out"}, "UTC")
    assert {j.id for j in preview(lost, None).jobs} == {made["lost"].id, made["timed_out"].id}
    later = RetryFilter.parse({"since": (utcnow() + timedelta(days=1)).isoformat()}, "UTC")
    assert preview(later, None).jobs == []
    with pytest.raises(BulkRetryError, match="status 'succeeded'"):
        RetryFilter.parse({"status": "succeeded"}, "UTC")
    with pytest.raises(ValueError, match="since"):
        RetryFilter.parse({"since": "yesterday"}, "UTC")


def test_cli_job_retry_dry_run_equals_retry(app: Flask, runner: FlaskCliRunner) -> None:
    made = _failures()
    rt = str(made["failed"].runtemplate_id)
    dry = _cli(runner, "job", "retry", "--runtemplate", rt, "--dry-run")
    assert dry["dry_run"] is True and dry["count"] == 4
    rows = dry["jobs"]
    assert isinstance(rows, list) and all(r["new_job_id"] is None for r in rows)
    done = _cli(runner, "job", "retry", "--runtemplate", rt)
    assert done["count"] == 4
    done_rows = done["jobs"]
    assert isinstance(done_rows, list)
    assert [r["id"] for r in done_rows] == [r["id"] for r in rows]
    new_ids = [r["new_job_id"] for r in done_rows]
    found = db.session.scalars(select(Job.schedule_type).where(Job.id.in_(new_ids))).all()
    assert found == ["adhoc-cli"] * 4
    assert db.session.scalar(select(AuditLog).where(AuditLog.summary.like("bulk retry%")))
    bad = runner.invoke(args=["job", "retry", "--status", "succeeded"])
    assert bad.exit_code != 0 and "status" in bad.output


def _daily(company_name: str = "A", **values: object) -> RunTemplate:
    rt = make_runtemplate(make_company(company_name), interval="d")
    for key, value in values.items():
        setattr(rt, key, value)
    db.session.commit()
    return rt


def test_backfill_preview_equals_created_and_is_idempotent(
    app: Flask, runner: FlaskCliRunner
) -> None:
    rt = _daily()
    taken = jobs.enqueue(rt, schedule_type="daily", slot_at=NOV + timedelta(days=2), when=NOV)
    db.session.commit()
    args = ("runtemplate", "backfill", str(rt.id), "--from", "2026-11-01", "--to", "2026-11-08")
    dry = _cli(runner, *args, "--dry-run")
    slots = dry["slots"]
    assert isinstance(slots, list) and len(slots) == 7 and dry["new"] == 6
    assert [s["slot_at"] for s in slots] == [
        (NOV + timedelta(days=i)).isoformat() for i in range(7)
    ]
    assert [s["job_id"] for s in slots if not s["new"]] == [taken.id]
    done = _cli(runner, *args)
    made = [s for s in done["slots"] if s["new"]]  # type: ignore[union-attr]
    assert [s["slot_at"] for s in made] == [s["slot_at"] for s in slots if s["new"]]
    db.session.rollback()
    for s in made:
        job = db.session.get(Job, s["job_id"])
        assert job is not None and job.schedule_type == "backfill" and job.status == "scheduled"
        assert job.slot_at is not None and job.slot_at.isoformat() == s["slot_at"]
        env = resolve(
            context_for(rt, {}),
            job_id=job.id,
            executor="native",
            workdir=app.instance_path,  # type: ignore[arg-type]
            override=onetime.unseal(job.env_override).values,
        )
        assert env.values[SLOT_AT] == s["slot_at"] and not env.dropped
        assert next(e for e in env.entries if e["key"] == SLOT_AT)["source"] == "platform"
    again = _cli(runner, *args)
    assert again["new"] == 0 and len(again["slots"]) == 7  # type: ignore[arg-type]
    db.session.rollback()
    every = db.session.scalars(select(Job.slot_at).where(Job.runtemplate_id == rt.id)).all()
    assert len(every) == len(set(every)) == 7  # one job per slot, none twice


def test_backfill_refusals(app: Flask) -> None:
    rt = _daily(interval="i")
    now = utcnow()
    with pytest.raises(BackfillError, match="more than 100 slots"):
        backfill.plan(rt, Window(NOV, NOV + timedelta(hours=3), now, "UTC", 100))
    with pytest.raises(BackfillError, match="to: must not be in the future"):
        backfill.plan(rt, Window(NOV, now + timedelta(hours=1), now, "UTC", 100))
    with pytest.raises(BackfillError, match="from: must be before to"):
        backfill.plan(rt, Window(NOV, NOV, now, "UTC", 100))
    manual = _daily("B", interval="n")
    with pytest.raises(BackfillError, match="manual"):
        backfill.plan(manual, Window(NOV, NOV + timedelta(days=1), now, "UTC", 100))


def test_one_time_env_cannot_set_the_slot_time(app: Flask) -> None:
    """Only the platform's services fill MULTIFLEXI_SLOT_AT: every entry point refuses it."""
    from multiflexi_web.security.env_names import EnvNameError
    from multiflexi_web.services.jobs.adhoc import run_now

    rt = _daily()
    with pytest.raises(EnvNameError):
        run_now(rt, {SLOT_AT: NOV.isoformat()}, [], None, admin=True)


@pytest.mark.parametrize("policy", ["wait", "allow"])
def test_backfill_jobs_get_their_slot_and_follow_the_overlap_policy(
    app: Flask, policy: str
) -> None:
    script = 'echo "$MULTIFLEXI_SLOT_AT"; sleep 0.2'  # long enough for two to overlap
    rt = shell_rt(script, interval="d", overlap_policy=policy)
    made = backfill.run(rt, Window(NOV, NOV + timedelta(days=3), utcnow(), "UTC", 10), None)
    ids = [j.id for j in made]
    db.session.commit()
    drain(app)
    done = db.session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id)).all()
    assert [j.status for j in done] == ["succeeded"] * 3
    for i, job in enumerate(done):
        assert output_of(job.id).decode().strip() == (NOV + timedelta(days=i)).isoformat()
    if policy == "wait":  # one after another, in slot order
        for before, after in pairwise(done):
            assert before.finished_at is not None and after.started_at is not None
            assert after.started_at >= before.finished_at


def test_a_rerun_of_a_backfill_job_keeps_its_slot(app: Flask) -> None:
    from multiflexi_web.services.jobs.adhoc import rerun

    rt = _daily()
    made = backfill.run(rt, Window(NOV, NOV + timedelta(days=1), utcnow(), "UTC", 10), None)
    again = rerun(made[0], None)
    db.session.commit()
    assert onetime.unseal(again.env_override).values == {SLOT_AT: NOV.isoformat()}
    assert again.slot_at is None  # an ad-hoc job: the slot itself keeps its one job
