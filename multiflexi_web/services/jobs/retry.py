"""Retry policy: whether and when a finished job is tried again.

A retry is a new job (schedule_type "retry", attempt + 1, linked to the job it retries) with no
slot, so it never moves the RunTemplate's cadence. Wait before attempt n + 1, with gap =
retry_min_gap: none and fixed -> gap (no growth, as upstream), linear -> gap * n,
exponential -> gap * 2^(n-1); capped at MAX_RETRY_DELAY.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from multiflexi_web.models import ADHOC_TYPES, Job, JobStatus, RetryBackoff

RETRYABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.LOST})
MAX_RETRY_DELAY = 7 * 24 * 3600  # a week: a huge attempt count never overflows a datetime


def retry_delay(backoff: str, min_gap: int, attempt: int) -> int:
    """Seconds to wait after attempt `attempt` (1-based) failed, before attempt `attempt + 1`."""
    mode = RetryBackoff(backoff)
    gap, n = max(0, min_gap), max(1, attempt)
    if mode is RetryBackoff.LINEAR:
        delay = gap * n
    elif mode is RetryBackoff.EXPONENTIAL:
        delay = gap * 2 ** min(n - 1, 32)
    else:
        delay = gap
    return min(delay, MAX_RETRY_DELAY)


def retry_refusal(job: Job) -> str | None:
    """Why this finished job must not be retried, or None when it may be."""
    rt = job.runtemplate
    if JobStatus(job.status) not in RETRYABLE_STATUSES:
        return f"status {job.status} is not retried"
    if job.attempt >= rt.max_attempts:
        return f"attempt {job.attempt} of {rt.max_attempts}: no attempts left"
    if not rt.active and job.schedule_type not in ADHOC_TYPES:
        return "the RunTemplate is inactive"
    meaning = rt.application.exit_code(job.exit_code) if job.exit_code is not None else None
    if meaning is not None and meaning.retry is False:
        return f"exit code {job.exit_code} is marked final by the application"
    return None


def plan_retry(job: Job, now: datetime) -> datetime | None:
    """When to run a retry of this finished job, or None when it must not be retried.

    Failed, timed-out and lost jobs are retried while attempts remain; the app's exitCodes can
    mark a code final (retry false). A code marked retryable (retry true) or unlisted follows
    the RunTemplate's policy. Cancelled and skipped jobs are never retried.
    """
    if retry_refusal(job) is not None:
        return None
    rt = job.runtemplate
    return now + timedelta(seconds=retry_delay(rt.retry_backoff, rt.retry_min_gap, job.attempt))
