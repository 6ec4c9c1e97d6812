"""Read-side job queries for the portal: the filtered keyset list and the queue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, or_, select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    LIVE_STATUSES,
    Application,
    Company,
    Job,
    JobStatus,
    RunTemplate,
    waiting,
)
from multiflexi_web.models.bounds import BIGINT_MAX, INT32_MAX, parse_id

PAGE_SIZE = 50
QUEUE_LIMIT = 200
# Columns a list row shows, in JobRow's order (_job_row() takes them by position); the big
# ones (env, command, override) stay in the database.
LIST_COLUMNS = (
    Job.id,
    Job.status,
    Job.schedule_type,
    Job.scheduled_for,
    Job.started_at,
    Job.finished_at,
    Job.exit_code,
    Job.company_id,
    Job.application_id,
    Job.runtemplate_id,
    Job.executor,
    Job.attempt,
    Job.cancel_requested,
)


class JobFilterError(ValueError):
    """A list filter parameter is malformed; the message names it."""


def _int_arg(args: Mapping[str, str], name: str, high: int = INT32_MAX) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    value = parse_id(raw, high)
    if value is None:
        raise JobFilterError(f"{name}: must be a whole number, got {raw[:40]!r}")
    return value


def _date_arg(args: Mapping[str, str], name: str) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise JobFilterError(f"{name}: must be a date like 2026-01-31, got {raw!r}") from None
    if day == date.max:  # `until` reads the next day's start, which does not exist
        raise JobFilterError(f"{name}: must be a date before 9999-12-31, got {raw!r}")
    return day


@dataclass(frozen=True)
class JobFilter:
    company: int | None = None
    app: int | None = None
    runtemplate: int | None = None
    status: str | None = None
    since: date | None = None
    until: date | None = None
    before: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> JobFilter:
        status = (args.get("status") or "").strip() or None
        if status is not None and status not in {s.value for s in JobStatus}:
            known = ", ".join(s.value for s in JobStatus)
            raise JobFilterError(f"status: {status!r} is not one of {known}")
        return cls(
            company=_int_arg(args, "company"),
            app=_int_arg(args, "app"),
            runtemplate=_int_arg(args, "runtemplate"),
            status=status,
            since=_date_arg(args, "since"),
            until=_date_arg(args, "until"),
            before=_int_arg(args, "before", BIGINT_MAX),
        )

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query arguments for url_for (unset ones left out)."""
        values = {**asdict(self), **changes}
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items() if v}


@dataclass(frozen=True, slots=True)
class Named:
    """The company, application or RunTemplate of a listed job: what a list shows of it."""

    id: int
    name: str
    slug: str | None = None


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as the lists show it (the attributes of a Job they read, the same names).

    Lists read plain rows rather than ORM objects: a page of 100 Job objects with their
    company, application and RunTemplate cost ~15 ms of Python to build (an instance state
    per object, a deferred-column callable per column left out) against ~1.5 ms of SQL."""

    id: int
    status: str
    schedule_type: str
    scheduled_for: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    company_id: int
    application_id: int
    runtemplate_id: int
    executor: str
    attempt: int
    cancel_requested: bool
    block_reason: str | None
    company: Named | None
    application: Named | None
    runtemplate: Named | None


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRow]
    next_before: int | None
    any_live: bool


def _listed() -> Select[*tuple[Any, ...]]:
    """Jobs with the names a list shows, joined (outer: a list never hides a job)."""
    return (
        select(
            *LIST_COLUMNS,
            Job.block_reason,
            RunTemplate.name,
            Company.name,
            Company.slug,
            Application.name,
        )
        .select_from(Job)
        .outerjoin(RunTemplate, RunTemplate.id == Job.runtemplate_id)
        .outerjoin(Company, Company.id == Job.company_id)
        .outerjoin(Application, Application.id == Job.application_id)
    )


def _job_row(r: Row[*tuple[Any, ...]]) -> JobRow:
    # LIST_COLUMNS, block_reason, then the names in _listed()'s order.
    (id_, status, kind, planned, started, finished, code, company_id, app_id, rt_id, executor,
     attempt, cancel, block, rt_name, company_name, slug, app_name) = r  # fmt: skip
    return JobRow(
        id_, status, kind, planned, started, finished, code, company_id, app_id, rt_id,
        executor, attempt, cancel, block,
        company=None if company_name is None else Named(company_id, company_name, slug),
        application=None if app_name is None else Named(app_id, app_name),
        runtemplate=None if rt_name is None else Named(rt_id, rt_name),
    )  # fmt: skip


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(q: Select[Any], f: JobFilter, visible: set[int] | None) -> Select[Any]:
    if visible is not None:
        q = q.where(Job.company_id.in_(visible or {-1}))
    if f.company is not None:
        q = q.where(Job.company_id == f.company)
    if f.app is not None:
        q = q.where(Job.application_id == f.app)
    if f.runtemplate is not None:
        q = q.where(Job.runtemplate_id == f.runtemplate)
    if f.status is not None:
        q = q.where(Job.status == f.status)
    if f.since is not None:
        q = q.where(Job.scheduled_for >= _day_start(f.since))
    if f.until is not None:
        q = q.where(Job.scheduled_for < _day_start(f.until + timedelta(days=1)))
    return q


def by_planned_time(f: JobFilter) -> bool:
    """A date-filtered list is ordered by planned time (its index), others by id."""
    return f.since is not None or f.until is not None


def _keyset(q: Select[Any], f: JobFilter, visible: set[int] | None) -> Select[Any]:
    """Rows after the `before` job in the list's order (planned time lists use its time too).

    The cursor job's time is read only if the caller sees that job: another company's id
    would cut the list at that company's planned time, and so tell it (an id it cannot see
    is an id cursor, as a missing one is)."""
    if f.before is None:
        return q
    if by_planned_time(f):
        cursor = select(Job.scheduled_for).where(Job.id == f.before)
        if visible is not None:
            cursor = cursor.where(Job.company_id.in_(visible))
        planned = db.session.scalar(cursor)
        if planned is not None:
            return q.where(
                Job.scheduled_for <= planned,
                or_(Job.scheduled_for < planned, Job.id < f.before),
            )
    return q.where(Job.id < f.before)


def _order(f: JobFilter, visible: set[int] | None) -> list[ColumnElement[Any]]:
    """Newest first, phrased so the planner walks the index of the most selective filter.

    Each equality filter has a (column, id) index; ordering by the filtered column first gives
    the same rows in the same order but lets SQLite (whose statistics see no skew) pick that
    index rather than scanning the primary key.
    """
    single = visible is not None and len(visible) == 1
    if by_planned_time(f):
        return [Job.scheduled_for.desc(), Job.id.desc()]
    if f.status is not None and f.status in LIVE_STATUSES:
        return [Job.status.desc(), Job.id.desc()]
    if f.runtemplate is not None:
        return [Job.runtemplate_id.desc(), Job.id.desc()]
    if f.app is not None:
        return [Job.application_id.desc(), Job.id.desc()]
    if f.status is not None:
        return [Job.status.desc(), Job.id.desc()]
    if f.company is not None or single:
        return [Job.company_id.desc(), Job.id.desc()]
    return [Job.id.desc()]


def _companies_running(app_id: int, visible: set[int]) -> set[int]:
    """The visible companies with a RunTemplate of the app: only they can have its jobs.

    A job's company and application are its RunTemplate's, which never change, and jobs go
    with their template. Without this, an app that only other companies use would make the
    database walk every job of the app (or of the table) to find none.
    """
    q = select(RunTemplate.company_id).where(
        RunTemplate.application_id == app_id, RunTemplate.company_id.in_(visible or {-1})
    )
    return set(db.session.scalars(q.distinct()))


def list_jobs(f: JobFilter, visible: set[int] | None, limit: int = PAGE_SIZE) -> JobPage:
    """One page of jobs, newest first, after the keyset `before`: one query (names joined);
    a date-filtered page costs one more primary-key lookup for the keyset."""
    if visible is not None and f.app is not None:
        visible = _companies_running(f.app, visible)
    if visible is not None and not visible:
        return JobPage(jobs=[], next_before=None, any_live=False)
    q = _listed().order_by(*_order(f, visible)).limit(limit + 1)
    rows = [_job_row(r) for r in db.session.execute(_keyset(_filtered(q, f, visible), f, visible))]
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage(
        jobs=rows,
        next_before=rows[-1].id if more and rows else None,
        any_live=any(j.status in LIVE_STATUSES for j in rows),
    )


def queued_jobs(visible: set[int] | None, limit: int = QUEUE_LIMIT) -> list[JobRow]:
    """Jobs waiting to run (scheduled or blocked), the earliest planned first."""
    q = (
        _listed()
        .where(waiting())  # walks ix_job_waiting in this order: a page reads only its rows
        .order_by(Job.scheduled_for, Job.id)
        .limit(limit)
    )
    if visible is not None:
        # "+ 0": waiting jobs are few, so the status index must drive, not the company one.
        q = q.where((Job.company_id + 0).in_(visible or {-1}))
    return [_job_row(r) for r in db.session.execute(q)]


def queue_count(visible: set[int] | None) -> int:
    q = select(func.count()).select_from(Job).where(Job.status == JobStatus.SCHEDULED.value)
    if visible is not None:
        q = q.where((Job.company_id + 0).in_(visible or {-1}))
    return db.session.scalar(q) or 0


def wait_text(planned: datetime, now: datetime) -> str:
    """How long a job has waited past its planned time ("overdue 2h 45m") or until it ("in 5m")."""
    delta = now - planned
    words = _duration_words(abs(delta.total_seconds()))
    return f"waiting {words}" if delta.total_seconds() >= 0 else f"in {words}"


def _duration_words(seconds: float) -> str:
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    text = " ".join(p for p in parts if p)
    return text if days or hours or minutes else f"{secs}s"


def duration_text(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else _duration_words(seconds)


def filter_choices(
    visible: set[int] | None, company: int | None
) -> dict[str, list[tuple[int, str]]]:
    """Options of the job list's filter selects: only what the user may see.
    RunTemplates are offered once a company is chosen (there can be thousands)."""
    companies = select(Company.id, Company.name).order_by(Company.name)
    if visible is not None:
        companies = companies.where(Company.id.in_(visible or {-1}))
    apps = select(Application.id, Application.name).order_by(Application.name)
    choices: dict[str, list[tuple[int, str]]] = {
        "companies": [(r.id, r.name) for r in db.session.execute(companies)],
        "apps": [(r.id, r.name) for r in db.session.execute(apps)],
        "runtemplates": [],
    }
    if company is not None and (visible is None or company in visible):
        rts = (
            select(RunTemplate.id, RunTemplate.name)
            .where(RunTemplate.company_id == company)
            .order_by(RunTemplate.name)
            .limit(500)
        )
        choices["runtemplates"] = [(r.id, r.name) for r in db.session.execute(rts)]
    return choices
