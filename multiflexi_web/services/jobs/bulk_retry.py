"""Bulk retry: failed, lost and timed-out jobs chosen by a filter, re-run in one action.

Each job is re-run through the Re-run button's service (adhoc.rerun), so the one-time env,
uploaded files and the name rules hold exactly as for one job. A job that already has an
automatic retry (retry_of) is left out: its retry covers it. The preview and the re-run read
the same query; the re-run takes only the previewed ids that still match it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import aliased, joinedload

from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus
from multiflexi_web.models.bounds import INT32_MAX, parse_id
from multiflexi_web.services.jobs.adhoc import rerun
from multiflexi_web.services.timerange import parse_time

STATUSES = (JobStatus.FAILED, JobStatus.LOST, JobStatus.TIMED_OUT)
# One action re-runs at most this many jobs: a wider filter is refused, so nobody floods the
# queue with a typo.
MAX_JOBS = 500


class BulkRetryError(ValueError):
    """A filter value is malformed or selects too much; the message names the field."""


@dataclass(frozen=True)
class RetryFilter:
    """Which finished jobs to re-run; unset fields do not filter."""

    company: int | None = None
    app: int | None = None
    runtemplate: int | None = None
    since: datetime | None = None  # due (scheduled_for) at or after
    until: datetime | None = None  # due before
    statuses: tuple[JobStatus, ...] = STATUSES
    exit_code: int | None = None

    @classmethod
    def parse(cls, values: Mapping[str, str], timezone: str) -> RetryFilter:
        """From text values (form, query, CLI); a time without a zone is in `timezone`."""
        return cls(
            company=_id(values, "company"),
            app=_id(values, "app"),
            runtemplate=_id(values, "runtemplate"),
            since=parse_time(values.get("since"), "since", timezone),
            until=parse_time(values.get("until"), "until", timezone),
            statuses=_statuses(values.get("status") or ""),
            exit_code=_exit_code(values.get("exit_code") or ""),
        )

    def as_args(self) -> dict[str, str]:
        """The filter as text values again (links, hidden form fields, audit details)."""
        out = {k: str(v) for k, v in self._set().items()}
        out["status"] = ",".join(s.value for s in self.statuses)
        return out

    def _set(self) -> dict[str, object]:
        values = {
            "company": self.company,
            "app": self.app,
            "runtemplate": self.runtemplate,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "exit_code": self.exit_code,
        }
        return {k: v for k, v in values.items() if v is not None}


def _id(values: Mapping[str, str], name: str) -> int | None:
    raw = (values.get(name) or "").strip()
    if not raw:
        return None
    found = parse_id(raw, INT32_MAX)
    if found is None:
        raise BulkRetryError(f"{name}: must be a whole number, got {raw[:40]!r}")
    return found


def _statuses(raw: str) -> tuple[JobStatus, ...]:
    words = [w.strip() for w in raw.replace(" ", ",").split(",") if w.strip()]
    if not words:
        return STATUSES
    allowed = {s.value: s for s in STATUSES}
    wrong = [w for w in words if w not in allowed]
    if wrong:
        names = ", ".join(allowed)
        raise BulkRetryError(f"status {wrong[0][:20]!r}: must be among {names}")
    return tuple(dict.fromkeys(allowed[w] for w in words))


def _exit_code(raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        code = int(raw)
    except ValueError:
        raise BulkRetryError(f"exit_code: must be a whole number, got {raw[:20]!r}") from None
    if not -INT32_MAX <= code <= INT32_MAX:
        raise BulkRetryError("exit_code: out of range")
    return code


def _where(filt: RetryFilter, company_ids: set[int] | None) -> list[ColumnElement[bool]]:
    retried = aliased(Job)
    conds = [
        Job.status.in_([s.value for s in filt.statuses]),
        ~exists().where(retried.retry_of_id == Job.id),
    ]
    if company_ids is not None:
        conds.append(Job.company_id.in_(company_ids or {-1}))
    pairs = (
        (filt.company, Job.company_id),
        (filt.app, Job.application_id),
        (filt.runtemplate, Job.runtemplate_id),
        (filt.exit_code, Job.exit_code),
    )
    conds += [column == value for value, column in pairs if value is not None]
    if filt.since is not None:
        conds.append(Job.scheduled_for >= filt.since)
    if filt.until is not None:
        conds.append(Job.scheduled_for < filt.until)
    return conds


@dataclass(frozen=True)
class Preview:
    jobs: list[Job]  # oldest first, at most MAX_JOBS
    too_many: bool  # the filter selects more than MAX_JOBS


def preview(filt: RetryFilter, company_ids: set[int] | None) -> Preview:
    """The jobs a retry with this filter would re-run (within companies `company_ids`)."""
    q = (
        select(Job)
        .where(*_where(filt, company_ids))
        .options(joinedload(Job.runtemplate))
        .order_by(Job.id)
        .limit(MAX_JOBS + 1)
    )
    found = list(db.session.scalars(q))
    return Preview(found[:MAX_JOBS], len(found) > MAX_JOBS)


@dataclass(frozen=True)
class Retried:
    old: Job
    new: Job


def retry(
    filt: RetryFilter,
    company_ids: set[int] | None,
    launched_by_id: int | None,
    schedule_type: str,
    ids: Collection[int] | None = None,
) -> list[Retried]:
    """Re-run the jobs the filter selects (only those among `ids`, the preview's, if given)."""
    found = preview(filt, company_ids)
    if found.too_many:
        raise BulkRetryError(
            f"filter: selects more than {MAX_JOBS} jobs; narrow it (time range, template)"
        )
    chosen = [j for j in found.jobs if ids is None or j.id in ids]
    return [Retried(j, rerun(j, launched_by_id, schedule_type)) for j in chosen]
