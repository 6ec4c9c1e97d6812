"""Figures read from the database at scrape time (docs/metrics.md): the same on every portal
worker and every host, so nothing needs prometheus_client's multiprocess mode.

Each query is an aggregate served by an existing index (EXPLAINs in docs/metrics.md); the
whole scrape is one read transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from flask import Flask
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    LIVE_STATUSES as LIVE_JOB_STATUSES,
)
from multiflexi_web.models import (
    ActionRun,
    Application,
    Event,
    EventSource,
    EventStatus,
    Job,
    RunTemplate,
    Worker,
    waiting,
)
from multiflexi_web.services.actions.runs import WAITING as ACTION_WAITING
from multiflexi_web.services.backup.history import last_backup_at
from multiflexi_web.services.jobs.transitions import database_now

LIVE_WORKERS = ("running", "stopping")
ACTION_COUNTED = (*ACTION_WAITING, "running", "failed")
EVENTS_COUNTED = (EventStatus.NEW.value, EventStatus.FAILED.value)
LIVE_STATUSES = sorted(s.value for s in LIVE_JOB_STATUSES)


class DatabaseCollector(Collector):
    """Yields the database-derived gauges; each collect() is one short read of `app`'s database."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        with self.app.app_context():
            try:
                now = database_now()
                metrics = [
                    *jobs_by_status(),
                    *queue(now),
                    *action_runs(now),
                    *events(),
                    heartbeat_ages(now),
                    *last_backup(now),
                    application_info(),
                ]
            finally:
                db.session.rollback()  # a read: end it, hold no snapshot between scrapes
        yield from metrics


def jobs_by_status() -> list[Metric]:
    """Live jobs by status and company (ranges of ix_job_status_id: as many rows as live jobs),
    and finished ones by result from the RunTemplates' counters. Counting every finished job by
    status would read the whole table: 350 ms of both cores at 1,000,000 jobs, each scrape."""
    live = GaugeMetricFamily(
        "multiflexi_jobs",
        "Jobs waiting or running, by status and company",
        labels=["status", "company"],
    )
    rows = db.session.execute(
        select(Job.status, Job.company_id, func.count())
        .where(Job.status.in_(LIVE_STATUSES))
        .group_by(Job.status, Job.company_id)
    )
    for status, company, count in rows:
        live.add_metric([status, str(company)], count)
    finished = CounterMetricFamily(
        "multiflexi_jobs_finished",
        "Finished jobs by company and result, as counted on their RunTemplates",
        labels=["company", "result"],
    )
    totals = db.session.execute(
        select(
            RunTemplate.company_id,
            func.sum(RunTemplate.success_count),
            func.sum(RunTemplate.failure_count),
        ).group_by(RunTemplate.company_id)
    )
    for company, ok, failed in totals:
        finished.add_metric([str(company), "success"], ok or 0)
        finished.add_metric([str(company), "failure"], failed or 0)
    return [live, finished]


def queue(now: datetime) -> list[Metric]:
    """Due waiting jobs (ix_job_waiting: a range of the partial index) and the oldest's wait."""
    count, oldest = db.session.execute(
        select(func.count(), func.min(Job.scheduled_for)).where(waiting(), Job.scheduled_for <= now)
    ).one()
    depth = GaugeMetricFamily(
        "multiflexi_queue_depth", "Jobs due to run and waiting for an executor", value=count
    )
    age = GaugeMetricFamily(
        "multiflexi_queue_oldest_age_seconds",
        "How long the longest-waiting due job has waited past its planned time (0: none)",
        value=_age(now, oldest),
    )
    return [depth, age]


def action_runs(now: datetime) -> list[Metric]:
    """Action runs not delivered (ranges of ix_action_run_due: succeeded ones, nearly all of
    them, are never read) and the due backlog."""
    by_status = GaugeMetricFamily(
        "multiflexi_action_runs",
        "Post-job action runs waiting, being delivered or failed, by status",
        labels=["status"],
    )
    for status, count in db.session.execute(
        select(ActionRun.status, func.count())
        .where(ActionRun.status.in_(ACTION_COUNTED))
        .group_by(ActionRun.status)
    ):
        by_status.add_metric([status], count)
    count, oldest = db.session.execute(
        select(func.count(), func.min(ActionRun.next_attempt_at)).where(
            ActionRun.status.in_(ACTION_WAITING), ActionRun.next_attempt_at <= now
        )
    ).one()
    backlog = GaugeMetricFamily(
        "multiflexi_action_backlog", "Action runs due for delivery and not yet taken", value=count
    )
    age = GaugeMetricFamily(
        "multiflexi_action_backlog_oldest_age_seconds",
        "How long the oldest due action run has waited (0: none)",
        value=_age(now, oldest),
    )
    return [by_status, backlog, age]


def events() -> list[Metric]:
    """Events waiting for the eventor or failed, per source (ranges of ix_event_status_id), and
    every source's name. Intake totals come from the eventor's counters: counting every stored
    event would read the whole event index (165 ms at 1,000,000 events)."""
    info = GaugeMetricFamily(
        "multiflexi_event_source_info",
        "1 per event source: its name and kind for the id the other metrics carry",
        labels=["source", "name", "kind"],
    )
    for source_id, name, kind in db.session.execute(
        select(EventSource.id, EventSource.name, EventSource.kind)
    ):
        info.add_metric([str(source_id), name, kind], 1)
    by_status = GaugeMetricFamily(
        "multiflexi_events",
        "Events waiting for the eventor (new) or failed, by source id",
        labels=["source", "status"],
    )
    for source_id, status, count in db.session.execute(
        select(Event.source_id, Event.status, func.count())
        .where(Event.status.in_(EVENTS_COUNTED))
        .group_by(Event.source_id, Event.status)
    ):
        by_status.add_metric([str(source_id), status], count)
    return [info, by_status]


def heartbeat_ages(now: datetime) -> Metric:
    """Seconds since each live daemon's last heartbeat, by the database's clock."""
    m = GaugeMetricFamily(
        "multiflexi_worker_heartbeat_age_seconds",
        "Seconds since a live daemon's last heartbeat (the reaper judges it dead past "
        "MULTIFLEXI_LOST_AFTER)",
        labels=["worker", "kind", "host"],
    )
    rows = db.session.execute(
        select(Worker.id, Worker.kind, Worker.hostname, Worker.heartbeat_at).where(
            Worker.status.in_(LIVE_WORKERS)
        )
    )
    for worker_id, kind, host, beat in rows:
        m.add_metric([str(worker_id), kind, host], _age(now, beat))
    return m


def last_backup(now: datetime) -> list[Metric]:
    """Seconds since the newest `multiflexi backup` recorded in the audit log; nothing before
    the first. A nightly timer that fails says nothing by itself: alert on this growing."""
    at = last_backup_at()
    if at is None:
        return []
    m = GaugeMetricFamily(
        "multiflexi_last_backup_age_seconds",
        "Seconds since the newest backup recorded in the audit log (multiflexi backup)",
    )
    m.add_metric([], _age(now, at))
    return [m]


def application_info() -> Metric:
    """1 per application: its name for the id the other metrics carry (join in PromQL)."""
    m = GaugeMetricFamily(
        "multiflexi_application_info", "Application names by id", labels=["app", "name"]
    )
    for app_id, name in db.session.execute(select(Application.id, Application.name)):
        m.add_metric([str(app_id), name], 1)
    return m


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0
