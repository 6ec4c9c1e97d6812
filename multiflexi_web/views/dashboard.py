"""Dashboard: what is running, queued and failing."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, render_template
from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, utcnow

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> str:
    since = utcnow() - timedelta(hours=24)
    counts = {
        "running": db.session.scalar(
            select(func.count()).select_from(Job).where(Job.status == JobStatus.RUNNING)
        ),
        "queued": db.session.scalar(
            select(func.count()).select_from(Job).where(Job.status == JobStatus.SCHEDULED)
        ),
        "failed_24h": db.session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.status == JobStatus.FAILED, Job.finished_at >= since)
        ),
    }
    recent = db.session.scalars(select(Job).order_by(Job.id.desc()).limit(20)).all()
    return render_template("dashboard/index.html", counts=counts, recent=recent)
