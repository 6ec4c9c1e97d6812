"""What the retention policies remove from the database: old jobs, old output, old artifacts.

`plan()` only reads; `apply()` deletes exactly the planned rows, in short transactions of at
most `batch` rows, and only while they still qualify (a terminal job never changes status, so
a live job is never touched; a job with an undelivered action is kept until it is delivered).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, not_, select
from sqlalchemy.orm import Session

from multiflexi_web.db.engine import write_session
from multiflexi_web.models import ActionRun, Artifact, Company, Job, JobOutput, JobStatus
from multiflexi_web.models.job import TERMINAL_STATUSES
from multiflexi_web.services.housekeeping.policy import Policy

FAILED = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.LOST})
OTHER_FINISHED = TERMINAL_STATUSES - FAILED
_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)


@dataclass
class Plan:
    """Rows the policies remove; bytes are what those rows hold (output data, artifact sizes)."""

    jobs: list[int] = field(default_factory=list)
    job_bytes: int = 0
    outputs: list[int] = field(default_factory=list)  # jobs whose output rows go (job kept)
    output_rows: int = 0
    output_bytes: int = 0
    artifacts: list[int] = field(default_factory=list)
    artifact_bytes: int = 0


def _finished_before(cutoff: datetime) -> ColumnElement[bool]:
    """Due and finished before the cutoff; scheduled_for leads so its index bounds the scan."""
    return and_(
        Job.scheduled_for < cutoff, func.coalesce(Job.finished_at, Job.scheduled_for) < cutoff
    )


def _settled() -> ColumnElement[bool]:
    """Terminal, and no action delivery still to make for it: its output and artifacts may
    go (a delivery reads them: the output tail, the artifact links, the produced files)."""
    pending = exists().where(ActionRun.job_id == Job.id, ActionRun.finished_at.is_(None))
    return and_(Job.status.in_(_TERMINAL), not_(pending))


def _removable() -> ColumnElement[bool]:
    """Settled, and not the newest job: SQLite gives a new row max(id) + 1, so deleting the
    newest would give its id, and with it its deliveries' idempotency keys and its links, to
    the next job."""
    newest = select(func.max(Job.id)).scalar_subquery()
    return and_(_settled(), Job.id < newest)


# What the "recovery" and "N failures in a row" triggers read (services/actions/outbox.py):
# a template's last result before a new one, and its last success. Pruned while older failures
# stay (they are kept longer), one failure after a success would count the old ones again.
RESULTS = ("succeeded", "failed", "timed_out", "lost")


def _last_of_templates(session: Session, company_id: int) -> set[int]:
    """Each of the company's templates' last result and last success, by finish time as the
    triggers order them: one pass over its finished jobs, not a lookup per candidate (a
    template with a million jobs made that quadratic). Rows only get newer: a job last now is
    at worst not last any more when deleted, never the other way round."""
    found: set[int] = set()
    for statuses in (RESULTS, ("succeeded",)):
        rank = func.row_number().over(
            partition_by=Job.runtemplate_id, order_by=(Job.finished_at.desc(), Job.id.desc())
        )
        ranked = (
            select(Job.id, rank.label("n"))
            .where(
                Job.company_id == company_id,
                Job.status.in_(statuses),
                Job.finished_at.is_not(None),
            )
            .subquery()
        )
        found |= set(_ids(session, select(ranked.c.id).where(ranked.c.n == 1)))
    return found


def _ids(session: Session, stmt: Any) -> list[int]:
    return [int(i) for i in session.scalars(stmt)]


def _old_jobs(session: Session, p: Policy, now: datetime) -> list[int]:
    found: list[int] = []
    kept = _last_of_templates(session, p.company_id)
    for statuses, cutoff in (
        (OTHER_FINISHED, p.jobs_cutoff(now)),
        (FAILED, p.failed_cutoff(now)),
    ):
        if cutoff is None:
            continue
        stmt = select(Job.id).where(
            Job.company_id == p.company_id,
            Job.status.in_(sorted(s.value for s in statuses)),
            _finished_before(cutoff),
            _removable(),
        )
        found += [i for i in _ids(session, stmt) if i not in kept]
    return sorted(found)


def _old_outputs(session: Session, p: Policy, now: datetime, going: set[int]) -> list[int]:
    cutoff = p.output_cutoff(now)
    if cutoff is None:
        return []
    has_output = exists().where(JobOutput.job_id == Job.id)
    stmt = select(Job.id).where(
        Job.company_id == p.company_id, _finished_before(cutoff), _settled(), has_output
    )
    return [i for i in _ids(session, stmt.order_by(Job.id)) if i not in going]


def _old_artifacts(session: Session, p: Policy, now: datetime, going: set[int]) -> list[int]:
    """Artifacts past their age, then the oldest ones over the company's budget."""
    rows = session.execute(
        select(Artifact.id, Artifact.size, Job.id, Job.scheduled_for, Job.finished_at)
        .join(Job, Job.id == Artifact.job_id)
        .where(Job.company_id == p.company_id, _settled())
        .order_by(Artifact.id.desc())
    ).all()
    cutoff, budget = p.artifacts_cutoff(now), p.budget_bytes
    chosen: list[int] = []
    kept = 0
    for art_id, size, job_id, due, finished in rows:
        if job_id in going:
            continue
        aged = cutoff is not None and due < cutoff and (finished or due) < cutoff
        if aged or (budget and kept + int(size or 0) > budget):
            chosen.append(int(art_id))
        else:
            kept += int(size or 0)
    return sorted(chosen)


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _output_figures(session: Session, job_ids: Sequence[int]) -> tuple[int, int]:
    rows = bytes_ = 0
    for chunk in _chunks(job_ids, 500):
        n, b = session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(JobOutput.data)), 0)).where(
                JobOutput.job_id.in_(chunk)
            )
        ).one()
        rows, bytes_ = rows + int(n), bytes_ + int(b)
    return rows, bytes_


def _artifact_bytes(session: Session, where: Callable[[list[int]], Any], ids: list[int]) -> int:
    total = 0
    for chunk in _chunks(ids, 500):
        total += int(
            session.scalar(select(func.coalesce(func.sum(Artifact.size), 0)).where(where(chunk)))
            or 0
        )
    return total


def plan(session: Session, policies: Sequence[Policy], now: datetime) -> Plan:
    """What the policies remove at `now`; reads only."""
    out = Plan()
    for p in policies:
        jobs = _old_jobs(session, p, now)
        going = set(jobs)
        out.jobs += jobs
        out.outputs += _old_outputs(session, p, now, going)
        out.artifacts += _old_artifacts(session, p, now, going)
    _rows, job_output_bytes = _output_figures(session, out.jobs)
    out.job_bytes = job_output_bytes + _artifact_bytes(
        session, lambda c: Artifact.job_id.in_(c), out.jobs
    )
    out.output_rows, out.output_bytes = _output_figures(session, out.outputs)
    out.artifact_bytes = _artifact_bytes(session, lambda c: Artifact.id.in_(c), out.artifacts)
    return out


def policies(session: Session, make: Callable[[Company], Policy]) -> list[Policy]:
    return [make(c) for c in session.scalars(select(Company).order_by(Company.id))]


@dataclass
class Removed:
    jobs: int = 0
    output_rows: int = 0
    artifacts: int = 0
    files: list[Path] = field(default_factory=list)  # artifact files whose rows went


def apply(session: Session, planned: Plan, batch: int, stop: Callable[[], bool]) -> Removed:
    """Delete the planned rows, `batch` per transaction; the caller unlinks `files`."""
    done = Removed()
    for chunk in _chunks(planned.artifacts, batch):
        if stop():
            return done
        # The conditions again, as for the jobs: an operator may have retried an action of
        # the job since the plan, and its delivery reads the job's artifacts.
        settled = select(Job.id).where(Job.id == Artifact.job_id, _settled()).exists()
        stmt = delete(Artifact).where(Artifact.id.in_(chunk), settled)
        paths = _in_tx(session, stmt, Artifact.storage_path)
        done.artifacts += len(paths)
        done.files += [Path(p) for p in paths if p]
    for chunk in _chunks(planned.outputs, batch):
        if stop():
            return done
        write_session(session)
        jobs = select(Job.id).where(Job.id.in_(chunk), _settled())
        result = session.execute(
            delete(JobOutput).where(JobOutput.job_id.in_(chunk), JobOutput.job_id.in_(jobs))
        )
        session.commit()
        done.output_rows += int(getattr(result, "rowcount", 0) or 0)
    for chunk in _chunks(planned.jobs, batch):
        if stop():
            return done
        count, files = _delete_jobs(session, chunk)
        done.jobs += count
        done.files += files
    return done


def _in_tx(session: Session, stmt: Any, returning: Any) -> list[Any]:
    write_session(session)
    values = list(session.scalars(stmt.returning(returning)))
    session.commit()
    return values


def _delete_jobs(session: Session, ids: list[int]) -> tuple[int, list[Path]]:
    """Delete the jobs that still qualify; how many, and their artifact files to unlink."""
    write_session(session)
    stored = session.execute(
        select(Artifact.job_id, Artifact.storage_path).where(
            Artifact.job_id.in_(ids), Artifact.storage_path.is_not(None)
        )
    ).all()
    gone = set(session.scalars(delete(Job).where(Job.id.in_(ids), _removable()).returning(Job.id)))
    session.commit()
    return len(gone), [Path(p) for job_id, p in stored if job_id in gone and p]
