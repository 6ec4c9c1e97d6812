"""Read models of the workers and audit log pages."""

from __future__ import annotations

from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, Job, JobStatus, Worker


def workers_with_running(visible: set[int] | None = None) -> list[tuple[Worker, int]]:
    """Every worker (running ones first, newest first per kind) with its running jobs' count,
    only those of the `visible` companies when given (None: all, for an administrator): a
    member must not watch another company's activity by the executors' counts."""
    workers = db.session.scalars(
        select(Worker).order_by(Worker.stopped_at.is_not(None), Worker.kind, Worker.id.desc())
    ).all()
    running = select(Job.worker_id, func.count()).where(
        Job.status == JobStatus.RUNNING.value, Job.worker_id.is_not(None)
    )
    if visible is not None:
        running = running.where(Job.company_id.in_(visible))
    rows = db.session.execute(running.group_by(Job.worker_id))
    counts = {worker_id: count for worker_id, count in rows}
    return [(w, counts.get(w.id, 0)) for w in workers]


def audit_page(filters: dict[str, str], before: int | None, limit: int) -> list[AuditLog]:
    """Newest audit rows matching `filters` (column == value), below `before`; one extra row
    tells whether another page follows."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit + 1)
    for key, value in filters.items():
        query = query.where(getattr(AuditLog, key) == value)
    if before is not None:
        query = query.where(AuditLog.id < before)
    return list(db.session.scalars(query))
