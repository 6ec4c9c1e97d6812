"""Prometheus metrics: the portal's /metrics after real jobs ran, its token, and the executor's
own instruments (in process here; over a real daemon's port in test_metrics_process.py)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from daemons import eventor
from daemons.runtime import Runtime
from multiflexi_web import create_app
from multiflexi_web.config import ConfigError, load_settings
from multiflexi_web.extensions import db
from multiflexi_web.metrics import instruments
from multiflexi_web.models import ActionRun, Job, utcnow
from tests.conftest import make_settings, reset_schema
from tests.executor_support import ROOT, drain, schedule, shell_rt
from tests.factories import (
    make_company,
    make_event,
    make_event_rule,
    make_event_source,
    make_runtemplate,
    make_worker,
)

NAME = re.compile(r"multiflexi_[a-z_]+")


@pytest.fixture(autouse=True)
def instruments_on() -> None:
    """As a daemon with a metrics port has them (without one they are no-ops)."""
    instruments.enable()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def scrape(client: FlaskClient, **headers: str) -> Samples:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.data
    assert resp.content_type.startswith("text/plain")
    return parse(resp.get_data(as_text=True))


def own(name: str, **labels: str) -> float:
    """A daemon instrument's current value in this process (0 before its first use)."""
    return instruments.REGISTRY.get_sample_value(name, labels) or 0.0


def test_portal_metrics_after_real_jobs(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    ok = shell_rt("printf 'hello\\n'", company)
    bad = shell_rt("echo oops >&2; exit 3", company)
    schedule(ok, 2)
    schedule(bad, 1)
    app_id = str(ok.application_id)
    before = {
        "finished": own("multiflexi_executor_jobs_finished_total", app=app_id, status="succeeded"),
        "count": own("multiflexi_job_duration_seconds_count", app=app_id),
        "stdout": own("multiflexi_executor_output_stored_bytes_total", stream="stdout"),
        "claimed": own("multiflexi_executor_jobs_claimed_total"),
        "lag": own("multiflexi_job_start_lag_seconds_count"),
    }
    drain(app)

    samples = scrape(client)
    company_id = str(company.id)
    assert (
        value(samples, "multiflexi_jobs_finished_total", company=company_id, result="success") == 2
    )
    assert (
        value(samples, "multiflexi_jobs_finished_total", company=company_id, result="failure") == 1
    )
    assert value(samples, "multiflexi_queue_depth") == 0
    assert value(samples, "multiflexi_queue_oldest_age_seconds") == 0
    assert value(samples, "multiflexi_application_info", app=app_id, name=ok.application.name) == 1
    # Nothing waits or runs: no live series for the company.
    assert not [k for k in samples if k[0] == "multiflexi_jobs"]

    # The executor's own instruments counted the same jobs in this process.
    finished = own("multiflexi_executor_jobs_finished_total", app=app_id, status="succeeded")
    assert finished - before["finished"] == 2
    assert own("multiflexi_job_duration_seconds_count", app=app_id) - before["count"] == 2
    bad_app = str(bad.application_id)
    assert own("multiflexi_executor_jobs_finished_total", app=bad_app, status="failed") >= 1
    stored = own("multiflexi_executor_output_stored_bytes_total", stream="stdout")
    assert stored - before["stdout"] == 2 * len(b"hello\n")
    assert own("multiflexi_executor_jobs_claimed_total") - before["claimed"] == 3
    assert own("multiflexi_job_start_lag_seconds_count") - before["lag"] == 3


def test_portal_metrics_live_jobs_actions_events_workers(app: Flask, client: FlaskClient) -> None:
    company = make_company()
    rt = shell_rt("true", company)
    due, later = schedule(rt, 2)
    # One due job planned 2 minutes ago, one planned for tomorrow (waiting, not due).
    db.session.query(Job).filter(Job.id == due).update(
        {"scheduled_for": utcnow() - timedelta(minutes=2)}
    )
    db.session.query(Job).filter(Job.id == later).update(
        {"scheduled_for": utcnow() + timedelta(days=1)}
    )
    db.session.add_all(
        [
            ActionRun(job_id=due, action="webhook", mode="success", status="pending",
                      next_attempt_at=utcnow() - timedelta(minutes=1)),
            ActionRun(job_id=due, action="webhook", mode="success", status="succeeded"),
        ]
    )  # fmt: skip
    db.session.commit()
    source = make_event_source(company, name="incoming")
    make_event(source)
    make_event(source)
    quiet = make_event_source(company, kind="directory", name="quiet")
    worker = make_worker("executor", heartbeat_age=30)
    make_worker("scheduler", status="stopped")

    samples = scrape(client)
    company_id = str(company.id)
    assert value(samples, "multiflexi_jobs", status="scheduled", company=company_id) == 2
    assert value(samples, "multiflexi_queue_depth") == 1
    oldest = value(samples, "multiflexi_queue_oldest_age_seconds")
    assert oldest is not None and oldest >= 120
    assert value(samples, "multiflexi_action_runs", status="pending") == 1
    # Delivered runs (nearly all of them) are never counted at scrape time.
    assert value(samples, "multiflexi_action_runs", status="succeeded") is None
    assert value(samples, "multiflexi_action_backlog") == 1
    backlog_age = value(samples, "multiflexi_action_backlog_oldest_age_seconds")
    assert backlog_age is not None and backlog_age >= 60
    assert value(samples, "multiflexi_events", source=str(source.id), status="new") == 2
    assert value(samples, "multiflexi_events", source=str(quiet.id), status="new") is None
    info = "multiflexi_event_source_info"
    assert value(samples, info, source=str(source.id), name="incoming", kind="webhook") == 1
    assert value(samples, info, source=str(quiet.id), name="quiet", kind="directory") == 1
    ages = {k: v for k, v in samples.items() if k[0] == "multiflexi_worker_heartbeat_age_seconds"}
    assert len(ages) == 1  # the stopped scheduler has none
    labels = dict(next(iter(ages))[1])
    assert labels == {"worker": str(worker.id), "kind": "executor", "host": "testhost"}
    assert next(iter(ages.values())) >= 30


@pytest.fixture
def token_client(db_url: str, tmp_path: Path) -> FlaskClient:
    settings = make_settings(db_url, tmp_path, metrics_token="s3cret-metrics")
    app = create_app({"TESTING": True}, settings=settings)
    with app.app_context():
        reset_schema()
    return app.test_client()


def test_metrics_token(token_client: FlaskClient) -> None:
    resp = token_client.get("/metrics")
    assert resp.status_code == 401  # no login redirect for a scraper
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"multiflexi_" not in resp.data
    wrong = token_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    basic = token_client.get("/metrics", headers={"Authorization": "Basic czNjcmV0LW1ldHJpY3M="})
    assert basic.status_code == 401
    samples = scrape(token_client, Authorization="Bearer s3cret-metrics")
    assert value(samples, "multiflexi_queue_depth") == 0


def test_scheduler_slot_lag() -> None:
    before = own("multiflexi_scheduler_slot_lag_seconds_count")
    over_a_minute = own("multiflexi_scheduler_slot_lag_seconds_bucket", le="60.0")
    instruments.record_tick(0.01, 3, 0, [(0.5, 2), (120.0, 1)])
    assert own("multiflexi_scheduler_slot_lag_seconds_count") - before == 3
    # The two half-second lags fall at or below 60 s, the two-minute one above.
    assert own("multiflexi_scheduler_slot_lag_seconds_bucket", le="60.0") - over_a_minute == 2


def test_metrics_settings() -> None:
    base = {"MULTIFLEXI_ENV_FILE": "/nonexistent", "MULTIFLEXI_LOCAL_ENV": "/nonexistent"}
    off = load_settings(base)
    assert [off.metrics_port(k) for k in ("scheduler", "eventor", "executor")] == [0, 0, 0]
    assert off.metrics_addr == "127.0.0.1" and off.metrics_token == ""
    s = load_settings(
        base | {"MULTIFLEXI_METRICS_PORT": "9101", "MULTIFLEXI_EXECUTOR_METRICS_PORT": "9102"}
    )
    assert [s.metrics_port(k) for k in ("scheduler", "eventor", "executor")] == [9101, 9101, 9102]
    with pytest.raises(ConfigError, match="MULTIFLEXI_EVENTOR_METRICS_PORT"):
        load_settings(base | {"MULTIFLEXI_EVENTOR_METRICS_PORT": "70000"})


def test_eventor_counts_events_by_source(app: Flask) -> None:
    company = make_company()
    rt = make_runtemplate(company)
    source = make_event_source(company, name="hook")
    make_event_rule(source, rt)
    make_event(source)
    make_event(source)
    before = own("multiflexi_eventor_events_processed_total", source=str(source.id), result="jobs")
    db.session.commit()
    handled = eventor.drain(Runtime("eventor", app))
    assert handled == 2
    after = own("multiflexi_eventor_events_processed_total", source=str(source.id), result="jobs")
    assert after - before == 2


def test_documented_names_exist(client: FlaskClient) -> None:
    """docs/metrics.md names every family served, and the Grafana sample uses no other name."""
    exposed = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    exposed |= {f.name for f in instruments.REGISTRY.collect()}
    ours = {n for n in exposed if n.startswith("multiflexi_")}
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for name in ours:
        assert f"`{name}" in doc, f"{name} is not in docs/metrics.md"
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in NAME.findall(e)}
    # Counters are exposed as families without _total (the parser strips it), used with it.
    assert {n.removesuffix("_total") for n in used} <= ours


def test_the_last_backup_age_appears_with_the_first_backup(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    assert value(scrape(client), "multiflexi_last_backup_age_seconds") is None
    done = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "backups")])
    assert done.exit_code == 0, done.output
    age = value(scrape(client), "multiflexi_last_backup_age_seconds")
    assert age is not None and 0 <= age < 600
