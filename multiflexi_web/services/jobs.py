"""The job service: the only code that creates jobs and changes their status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, RunTemplate, utcnow
from multiflexi_web.services.secrets import cipher

NOTIFY_CHANNEL = "multiflexi_jobs"


def enqueue(
    rt: RunTemplate,
    *,
    schedule_type: str,
    when: datetime | None = None,
    env_override: dict[str, str] | None = None,
    slot_at: datetime | None = None,
    launched_by_id: int | None = None,
    event_id: int | None = None,
    retry_of: Job | None = None,
    status: JobStatus = JobStatus.SCHEDULED,
) -> Job:
    """Add a job for a RunTemplate (flushed, not committed); executors are woken on commit."""
    job = Job(
        runtemplate_id=rt.id,
        company_id=rt.company_id,
        application_id=rt.application_id,
        status=status.value,
        schedule_type=schedule_type,
        scheduled_for=when or utcnow(),
        slot_at=slot_at,
        executor=rt.executor,
        env_override=cipher().encrypt_json(env_override) if env_override else None,
        launched_by_id=launched_by_id,
        event_id=event_id,
        attempt=(retry_of.attempt + 1) if retry_of else 1,
        retry_of_id=retry_of.id if retry_of else None,
        app_version=rt.application.version,
    )
    if status is JobStatus.SKIPPED:
        job.finished_at = utcnow()
        job.status_reason = "slot missed while no scheduler ran (misfire policy: skip)"
    db.session.add(job)
    db.session.flush()
    _notify()
    return job


def _notify() -> None:
    # NOTIFY is transactional on PostgreSQL: executors hear it only when the job is committed.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
