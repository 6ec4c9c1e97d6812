"""Retry policy: whether and when a failed job is tried again."""

from __future__ import annotations

from datetime import datetime, timedelta

from multiflexi_web.models import Job, JobStatus, RetryBackoff

RETRYABLE_STATUSES = {JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.LOST}


def retry_delay(backoff: str, min_gap: int, attempt: int) -> int:
    """Seconds to wait before attempt `attempt + 1`."""
    mode = RetryBackoff(backoff)
    if mode is RetryBackoff.LINEAR:
        return min_gap * attempt
    if mode is RetryBackoff.EXPONENTIAL:
        return min_gap * (1 << max(attempt - 1, 0))
    return min_gap


def plan_retry(job: Job, now: datetime) -> datetime | None:
    """When to run a retry of this finished job, or None when it must not be retried.

    The app's exitCodes may mark a code as final (retry false) or retryable (retry true);
    a cancelled job is never retried.
    """
    rt = job.runtemplate
    if JobStatus(job.status) not in RETRYABLE_STATUSES or job.attempt >= rt.max_attempts:
        return None
    meaning = rt.application.exit_code(job.exit_code) if job.exit_code is not None else None
    if meaning is not None and meaning.retry is False:
        return None
    return now + timedelta(seconds=retry_delay(rt.retry_backoff, rt.retry_min_gap, job.attempt))
