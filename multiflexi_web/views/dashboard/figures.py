"""Dashboard figures: live counts, recent jobs and per-application success and duration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, case, cast, func, select
from sqlalchemy.orm import joinedload

from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Company, Job, JobStatus, RunTemplate, utcnow

FAILED = (JobStatus.FAILED.value, JobStatus.TIMED_OUT.value, JobStatus.LOST.value)
FINISHED = (JobStatus.SUCCEEDED.value, *FAILED)


@dataclass(frozen=True)
class AppStat:
    app_id: int
    name: str
    total: int
    succeeded: int
    avg_seconds: float | None

    @property
    def rate(self) -> float:
        return self.succeeded / self.total if self.total else 0.0


def _scope(query: Select[Any], visible: set[int] | None) -> Select[Any]:
    return query if visible is None else query.where(Job.company_id.in_(visible))


def _count(visible: set[int] | None, *conditions: ColumnElement[bool]) -> int:
    query = _scope(select(func.count()).select_from(Job).where(*conditions), visible)
    return db.session.scalar(query) or 0


def counts(visible: set[int] | None) -> dict[str, int]:
    since = utcnow() - timedelta(hours=24)
    return {
        "running": _count(visible, Job.status == JobStatus.RUNNING.value),
        "queued": _count(visible, Job.status == JobStatus.SCHEDULED.value),
        "blocked": _count(visible, Job.status == JobStatus.BLOCKED.value),
        "failed_24h": _count(visible, Job.status.in_(FAILED), Job.finished_at >= since),
        "succeeded_24h": _count(
            visible, Job.status == JobStatus.SUCCEEDED.value, Job.finished_at >= since
        ),
    }


def recent(visible: set[int] | None, limit: int = 15) -> list[Job]:
    query = (
        select(Job)
        .options(joinedload(Job.application), joinedload(Job.company))
        .order_by(Job.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(_scope(query, visible)))


def _duration_seconds() -> ColumnElement[Any]:
    # Interval arithmetic differs: PostgreSQL subtracts timestamps, SQLite has julianday().
    if db.session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", Job.finished_at - Job.started_at)
    return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0


def app_stats(visible: set[int] | None, days: int = 30, limit: int = 12) -> list[AppStat]:
    """Finished jobs per application over the last `days`: the busiest `limit` applications."""
    since = utcnow() - timedelta(days=days)
    ok = func.sum(case((Job.status == JobStatus.SUCCEEDED.value, 1), else_=0))
    query = (
        select(
            Job.application_id,
            Application.name,
            func.count(),
            ok,
            func.avg(cast(_duration_seconds(), Float)),
        )
        .join(Application, Application.id == Job.application_id)
        .where(Job.status.in_(FINISHED), Job.finished_at >= since)
        .group_by(Job.application_id, Application.name)
        .order_by(func.count().desc(), Application.name)
        .limit(limit)
    )
    rows = db.session.execute(_scope(query, visible)).all()
    return [
        AppStat(app_id, name, int(total), int(succ or 0), float(avg) if avg is not None else None)
        for app_id, name, total, succ, avg in rows
    ]


@dataclass(frozen=True)
class WorkerHealth:
    kind: str
    live: int
    stale: int
    newest_heartbeat_s: float | None


def worker_health(lost_after: float) -> list[WorkerHealth]:
    """Per daemon kind: registered workers that run, those silent for longer than `lost_after`."""
    from multiflexi_web.models import Worker

    now = utcnow()
    by_kind: dict[str, list[float]] = {}
    for w in db.session.scalars(select(Worker).where(Worker.stopped_at.is_(None))):
        by_kind.setdefault(w.kind, []).append((now - w.heartbeat_at).total_seconds())
    return [
        WorkerHealth(
            kind,
            sum(1 for a in ages if a <= lost_after),
            sum(1 for a in ages if a > lost_after),
            max(0.0, min(ages)),
        )
        for kind, ages in sorted(by_kind.items())
    ]


@dataclass(frozen=True)
class FirstSteps:
    """What a new portal still lacks on the way to its first job (the dashboard's start card)."""

    apps: int
    companies: int
    runtemplates: int

    @property
    def done(self) -> bool:
        return bool(self.apps and self.companies and self.runtemplates)


def first_steps(visible: set[int] | None) -> FirstSteps:
    """Enabled applications, and the companies and RunTemplates the user can see."""
    companies = select(func.count()).select_from(Company)
    templates = select(func.count()).select_from(RunTemplate)
    if visible is not None:
        companies = companies.where(Company.id.in_(visible))
        templates = templates.where(RunTemplate.company_id.in_(visible))
    apps = select(func.count()).select_from(Application).where(Application.enabled.is_(True))
    return FirstSteps(
        db.session.scalar(apps) or 0,
        db.session.scalar(companies) or 0,
        db.session.scalar(templates) or 0,
    )
