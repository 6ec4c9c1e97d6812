"""The queue: jobs waiting to run, with their planned time and how long they have waited."""

from __future__ import annotations

from flask import Blueprint

from multiflexi_web.models import utcnow
from multiflexi_web.services.accounts.access import visible_company_ids
from multiflexi_web.views._helpers import me, render
from multiflexi_web.views.jobs.queries import QUEUE_LIMIT, queue_count, queued_jobs, wait_text

bp = Blueprint("queue", __name__, url_prefix="/queue")


@bp.get("/")
def index() -> str:
    visible = visible_company_ids(me())
    jobs = queued_jobs(visible)
    now = utcnow()
    return render(
        "queue/index.html",
        "queue/_table.html",
        jobs=jobs,
        total=queue_count(visible),
        limit=QUEUE_LIMIT,
        now=now,
        wait_text=wait_text,
    )
