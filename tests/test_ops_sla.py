"""SLA: a constructed week of a daily template, one slot of each outcome, service and CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import update

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate, utcnow
from multiflexi_web.services.scheduling import sla
from multiflexi_web.services.scheduling.sla import Outcome, SlaError
from tests.factories import make_company, make_job, make_runtemplate

NOV = datetime(2026, 11, 1, tzinfo=UTC)
END = NOV + timedelta(days=7)
# Day of November -> (status of the slot's job, minutes after the slot it started, outcome).
WEEK = {
    1: ("succeeded", 1, Outcome.FULFILLED),
    2: ("succeeded", 120, Outcome.LATE),
    3: ("failed", 0, Outcome.FAILED),
    4: ("failed", 0, Outcome.LATE),  # its automatic retry succeeded
    5: ("skipped", 0, Outcome.SKIPPED),
    6: (None, 0, Outcome.MISSED),  # no job at all
    7: ("scheduled", 0, Outcome.PENDING),
}


def _slot_job(rt: RunTemplate, day: int, status: str, minutes: int) -> Job:
    slot = NOV + timedelta(days=day - 1)
    job = make_job(rt, status=status, schedule_type="daily")
    began = slot + timedelta(minutes=minutes) if status != "scheduled" else None
    values = {"slot_at": slot, "scheduled_for": slot, "started_at": began}
    db.session.execute(update(Job).where(Job.id == job.id).values(**values))
    db.session.commit()
    return job


def _week(name: str = "A") -> RunTemplate:
    rt = make_runtemplate(make_company(name), interval="d", name=f"bank import {name}")
    rt.created_at = NOV - timedelta(days=30)
    db.session.commit()
    for day, (status, minutes, _) in WEEK.items():
        if status is not None:
            job = _slot_job(rt, day, status, minutes)
            if day == 4:
                retry = make_job(rt, status=JobStatus.SUCCEEDED, schedule_type="retry")
                db.session.execute(
                    update(Job).where(Job.id == retry.id).values(retry_of_id=job.id, attempt=2)
                )
                db.session.commit()
    return rt


def test_each_outcome_is_counted_per_template_and_day(app: Flask) -> None:
    rt = _week()
    other = _week("B")
    rep = sla.report(sla.templates({rt.company_id}), NOV, END, now=utcnow(), zone="UTC",
                     late_after=900)  # fmt: skip
    assert [t.runtemplate_id for t in rep.templates] == [rt.id]  # B's never
    expected = {o: 0 for o in Outcome}
    for _, _, outcome in WEEK.values():
        expected[outcome] += 1
    assert {o: rep.totals.get(o, 0) for o in Outcome} == expected
    assert rep.day_worst == {
        (NOV + timedelta(days=d - 1)).date(): outcome for d, (_, _, outcome) in WEEK.items()
    }
    assert [p.outcome for p in rep.problems] == [
        Outcome.LATE, Outcome.FAILED, Outcome.LATE, Outcome.SKIPPED, Outcome.MISSED
    ]  # fmt: skip
    both = sla.report(sla.templates(None), NOV, END, now=utcnow(), zone="UTC", late_after=900)
    assert {t.runtemplate_id for t in both.templates} == {rt.id, other.id}
    lenient = sla.report([rt], NOV, END, now=utcnow(), zone="UTC", late_after=3 * 3600)
    assert lenient.totals[Outcome.FULFILLED] == 2  # 2 h after the slot is on time now


def test_days_follow_the_zone_and_periods_are_checked(app: Flask) -> None:
    rt = _week()
    rep = sla.report([rt], NOV, END, now=utcnow(), zone="America/New_York", late_after=900)
    # Midnight UTC is the evening before in New York: every slot moves to the previous day.
    assert min(rep.day_worst) == (NOV - timedelta(days=1)).date()
    with pytest.raises(SlaError, match="from: must be before to"):
        sla.report([rt], END, NOV, now=utcnow(), zone="UTC", late_after=900)
    with pytest.raises(SlaError, match="366 days"):
        sla.report([rt], NOV - timedelta(days=400), NOV, now=utcnow(), zone="UTC", late_after=0)


def test_sla_cli_json(app: Flask, runner: FlaskCliRunner) -> None:
    rt = _week()
    _week("B")
    args = ["sla", "--company", str(rt.company_id), "--from", "2026-11-01", "--to", "2026-11-08"]
    result = runner.invoke(args=[*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"] == {
        "fulfilled": 1, "pending": 1, "skipped": 1, "late": 2, "failed": 1, "missed": 1
    }  # fmt: skip
    assert [t["runtemplate_id"] for t in data["templates"]] == [rt.id]
    assert data["days"]["2026-11-06"] == "missed" and data["days"]["2026-11-03"] == "failed"
    assert [p["outcome"] for p in data["problems"]][:2] == ["late", "failed"]
    assert data["late_after_seconds"] == 900
    text = runner.invoke(args=[*args, "--problems"])
    assert text.exit_code == 0 and "missed" in text.output and "bank import A" in text.output
    bad = runner.invoke(args=["sla", "--from", "tomorrow"])
    assert bad.exit_code != 0 and "from:" in bad.output
