"""Draining an executor: it claims nothing more, finishes its running jobs, then idles."""

from __future__ import annotations

from sqlalchemy import update

from multiflexi_web.extensions import db
from multiflexi_web.models import Worker, utcnow

DRAINING = "draining"
DRAINED = "drained"  # nothing runs any more; the executor idles until it is stopped


def request_drain(worker_id: int) -> Worker:
    """Flag a live executor to drain (it reads the flag with its next heartbeat).

    ValueError for a missing worker, a daemon that is not an executor, or one already stopped.
    Asking twice is harmless: the first request's time is kept.
    """
    worker = db.session.get(Worker, worker_id)  # the caller began the unit of work as writer
    if worker is None:
        raise ValueError(f"worker: no worker {worker_id}")
    if worker.kind != "executor":
        raise ValueError(f"worker: {worker.label} is not an executor (only executors drain)")
    if worker.stopped_at is not None or worker.status in {"stopped", "dead"}:
        raise ValueError(f"worker: {worker.label} is not running")
    if worker.drain_requested_at is None:
        # Shown as draining at once; the executor's own beats keep saying so.
        db.session.execute(
            update(Worker)
            .where(Worker.id == worker_id, Worker.drain_requested_at.is_(None))
            .values(drain_requested_at=utcnow(), status=DRAINING)
        )
        db.session.refresh(worker)
    return worker
