"""Read models of the job page: the summary's facts and the details, each built on its own."""

from __future__ import annotations

import shlex
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload, load_only

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    CANCELLABLE_STATUSES,
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    Artifact,
    FileUpload,
    Job,
    Role,
    User,
    Worker,
)
from multiflexi_web.security.secrets import MASK
from multiflexi_web.services.accounts.access import RANK
from multiflexi_web.services.jobs.adhoc import exit_meaning, one_time_env
from multiflexi_web.views.jobs.queries import duration_text

# The summary names the job's RunTemplate, application and company: loaded with the job.
NAMED = (joinedload(Job.runtemplate), joinedload(Job.application), joinedload(Job.company))


def load_job(job_id: int, *, named: bool) -> Job | None:
    return db.session.get(Job, job_id, options=NAMED if named else ())


def summary_context(job: Job, role: Role) -> dict[str, Any]:
    """What jobs/_summary.html renders: the page's header, also sent with the output poll that
    first sees a new status. The buttons follow the job state table (models/job.py)."""
    operator = RANK[role] >= RANK[Role.OPERATOR]
    return {
        "job": job,
        "live": job.status in LIVE_STATUSES,
        "launched_by": db.session.get(User, job.launched_by_id) if job.launched_by_id else None,
        "worker": db.session.get(Worker, job.worker_id) if job.worker_id else None,
        "can_cancel": operator and job.status in CANCELLABLE_STATUSES and not job.cancel_requested,
        "can_rerun": operator and job.status in TERMINAL_STATUSES,
        "meaning": exit_meaning(job),
        # Only a finished job has a duration: the header is not refreshed every second.
        "duration": duration_text(job.started_at, job.finished_at) if job.finished_at else "",
    }


def details_context(job: Job) -> dict[str, Any]:
    """What jobs/_details.html renders: command, environment, artifacts, uploads (and the action
    runs, read by the action_runs template global)."""
    return {
        "job": job,
        "live": job.status in LIVE_STATUSES,
        "mask": MASK,
        "command_text": shlex.join(job.command) if job.command else "",
        "one_time_keys": sorted(one_time_env(job)),
        "artifacts": _artifacts(job.id),
        "uploads": _uploads(job.id),
    }


def _artifacts(job_id: int) -> list[Artifact]:
    columns = (Artifact.id, Artifact.filename, Artifact.mime_type, Artifact.size, Artifact.sha256)
    query = select(Artifact).options(load_only(*columns, Artifact.note))
    return list(db.session.scalars(query.where(Artifact.job_id == job_id).order_by(Artifact.id)))


def _uploads(job_id: int) -> list[FileUpload]:
    query = select(FileUpload).options(
        load_only(FileUpload.id, FileUpload.field, FileUpload.filename)
    )
    return list(
        db.session.scalars(query.where(FileUpload.job_id == job_id).order_by(FileUpload.id))
    )
