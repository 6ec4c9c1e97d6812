"""Workers: every scheduler, executor and eventor daemon with its heartbeat; stale ones flagged."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, render_template

from multiflexi_web.models import Worker, utcnow
from multiflexi_web.services import settings
from multiflexi_web.services.accounts.access import visible_company_ids
from multiflexi_web.services.backup.history import last_backup_at
from multiflexi_web.views._helpers import is_htmx, me
from multiflexi_web.views.queries.operations import workers_with_running

bp = Blueprint("workers", __name__, url_prefix="/workers")


def heartbeat_age(worker: Worker, now: datetime) -> float:
    return max(0.0, (now - worker.heartbeat_at).total_seconds())


def is_stale(worker: Worker, now: datetime, lost_after: float) -> bool:
    """A worker that says it runs but has not beaten its heart for longer than `lost_after`."""
    return worker.stopped_at is None and heartbeat_age(worker, now) > lost_after


@bp.get("/")
def index() -> str:
    now, lost_after = utcnow(), settings().lost_after
    rows = [
        {
            "worker": w,
            "age": heartbeat_age(w, now),
            "stale": is_stale(w, now, lost_after),
            "running": running,
        }
        for w, running in workers_with_running(visible_company_ids(me()))
    ]
    if is_htmx():
        return render_template("workers/_table.html", rows=rows, lost_after=lost_after)
    backup = last_backup_at() if me().is_admin else None
    return render_template(
        "workers/index.html", rows=rows, lost_after=lost_after, last_backup=backup
    )
