"""`multiflexi runtemplate create/update/next`: schedule and policy options through the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate, utcnow
from tests.factories import make_app, make_company


def cli(runner: FlaskCliRunner, *args: str) -> Result:
    return runner.invoke(args=["runtemplate", *args])


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def fresh(rt_id: int) -> RunTemplate:
    db.session.expire_all()
    rt = db.session.get(RunTemplate, rt_id)
    assert rt is not None
    return rt


@pytest.fixture
def rt_id(app: Flask, runner: FlaskCliRunner) -> int:
    company, application = make_company(), make_app()
    out = ok_json(
        cli(
            runner, "create", "--company", str(company.id), "--app", str(application.id),
            "--name", "nightly", "--interval", "d", "--delay", "7200",
            "--timezone", "Europe/Prague", "--misfire", "skip", "--overlap", "skip",
            "--max-attempts", "3", "--retry-backoff", "linear", "--retry-min-gap", "30",
            "--format", "json",
        )
    )  # fmt: skip
    return int(out["id"])


def test_create_takes_schedule_and_policy_options(rt_id: int) -> None:
    rt = fresh(rt_id)
    assert (rt.interval, rt.delay, rt.timezone) == ("d", 7200, "Europe/Prague")
    assert (rt.misfire_policy, rt.overlap_policy) == ("skip", "skip")
    assert (rt.max_attempts, rt.retry_backoff, rt.retry_min_gap) == (3, "linear", 30)
    assert rt.next_run_at is not None and rt.next_run_at > utcnow()
    local = rt.next_run_at.astimezone(ZoneInfo("Europe/Prague"))
    assert (local.hour, local.minute) == (2, 0)


def test_create_refuses_a_bad_policy(app: Flask, runner: FlaskCliRunner) -> None:
    company, application = make_company(), make_app()
    result = cli(
        runner, "create", "--company", str(company.id), "--app", str(application.id),
        "--name", "x", "--max-attempts", "0",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "max_attempts 0: must be 1 or more" in result.output
    assert db.session.query(RunTemplate).count() == 0


def test_update_cron_implies_custom_and_recomputes_next_run(
    rt_id: int, runner: FlaskCliRunner
) -> None:
    out = ok_json(cli(runner, "update", str(rt_id), "--cron", "15 6 * * *", "--format", "json"))
    assert (out["interval"], out["cron"]) == ("c", "15 6 * * *")
    rt = fresh(rt_id)
    assert rt.next_run_at is not None
    # 06:15 Prague time, plus the stored 2-hour delay
    local = rt.next_run_at.astimezone(ZoneInfo("Europe/Prague"))
    assert (local.hour, local.minute) == (8, 15)


def test_update_refuses_an_invalid_cron_with_the_reason(rt_id: int, runner: FlaskCliRunner) -> None:
    before = fresh(rt_id).next_run_at
    result = cli(runner, "update", str(rt_id), "--cron", "61 * * * *")
    assert result.exit_code != 0
    assert "cron '61 * * * *': not a valid cron expression" in result.output
    rt = fresh(rt_id)
    assert (rt.interval, rt.cron, rt.next_run_at) == ("d", None, before)


def test_update_without_schedule_change_keeps_a_due_slot(
    rt_id: int, runner: FlaskCliRunner
) -> None:
    rt = fresh(rt_id)
    due = utcnow() - timedelta(seconds=5)
    rt.next_run_at = due
    db.session.commit()
    ok_json(cli(runner, "update", str(rt_id), "--name", "renamed", "--misfire", "all",
                "--format", "json"))  # fmt: skip
    rt = fresh(rt_id)
    assert (rt.name, rt.misfire_policy, rt.next_run_at) == ("renamed", "all", due)
    assert rt.max_attempts == 3  # untouched policies keep their values


def test_deactivate_and_reactivate(rt_id: int, runner: FlaskCliRunner) -> None:
    ok_json(cli(runner, "update", str(rt_id), "--inactive", "--format", "json"))
    assert fresh(rt_id).next_run_at is None
    rt = fresh(rt_id)
    rt.next_run_at = None
    db.session.commit()
    ok_json(cli(runner, "update", str(rt_id), "--active", "--format", "json"))
    nxt = fresh(rt_id).next_run_at
    assert nxt is not None and utcnow() < nxt <= utcnow() + timedelta(days=1)


def test_update_time_zone_and_clear_it(rt_id: int, runner: FlaskCliRunner) -> None:
    ok_json(cli(runner, "update", str(rt_id), "--timezone", "America/New_York", "--format", "json"))
    ny = fresh(rt_id).next_run_at
    assert ny is not None and ny.astimezone(ZoneInfo("America/New_York")).hour == 2
    ok_json(cli(runner, "update", str(rt_id), "--timezone", "", "--format", "json"))
    rt = fresh(rt_id)
    assert rt.timezone is None and rt.next_run_at is not None and rt.next_run_at.hour == 2  # UTC


def test_update_unknown_template(app: Flask, runner: FlaskCliRunner) -> None:
    result = cli(runner, "update", "999", "--name", "x")
    assert result.exit_code != 0 and "runtemplate 999: not found" in result.output


def test_next_prints_local_and_utc_across_spring_forward(
    rt_id: int, runner: FlaskCliRunner
) -> None:
    ok_json(cli(runner, "update", str(rt_id), "--interval", "d", "--delay", "9000",
                "--format", "json"))  # fmt: skip
    result = cli(runner, "next", str(rt_id), "--count", "3", "--after", "2026-03-27T12:00:00Z")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2026-03-28 02:30:00 CET (+0100)  =  2026-03-28 01:30:00 UTC",
        "2026-03-29 03:00:00 CEST (+0200)  =  2026-03-29 01:00:00 UTC",
        "2026-03-30 02:30:00 CEST (+0200)  =  2026-03-30 00:30:00 UTC",
    ]


def test_next_json_and_manual(rt_id: int, runner: FlaskCliRunner) -> None:
    rows = ok_json(cli(runner, "next", str(rt_id), "--count", "2", "--format", "json"))
    assert len(rows) == 2 and rows[0]["timezone"] == "Europe/Prague"
    first = datetime.fromisoformat(rows[0]["utc"])
    assert first > datetime.now(UTC) and first == datetime.fromisoformat(rows[0]["local"])
    ok_json(cli(runner, "update", str(rt_id), "--interval", "n", "--format", "json"))
    result = cli(runner, "next", str(rt_id))
    assert result.exit_code != 0 and "manual only" in result.output
