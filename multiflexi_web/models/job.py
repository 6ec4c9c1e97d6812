"""Jobs, their streamed output, artifacts and uploaded input files."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TextClause,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from multiflexi_web.models.base import Base, JSONType, utcnow

if TYPE_CHECKING:
    from multiflexi_web.models.application import Application
    from multiflexi_web.models.company import Company
    from multiflexi_web.models.runtemplate import RunTemplate

# 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    BLOCKED = "blocked"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


class Transition(NamedTuple):
    """One edge of the job state machine: `by` moves a job from `frm` (None: creates it) to `to`.

    `by` names the service function that makes the change, relative to multiflexi_web.services.
    """

    frm: JobStatus | None
    to: JobStatus
    by: str
    why: str


_S = JobStatus
_ENQUEUE, _BULK = "jobs.transitions.enqueue", "scheduling.slots.insert_bulk"
_CLAIM, _FINISH = "jobs.transitions.claim", "jobs.transitions.finish"
_CANCEL = "jobs.transitions.cancel"
# Finished jobs of an upstream installation, carried over by `multiflexi upstream import`.
_HISTORY = "upstream_import.history.import_jobs"

# The job state machine, its one definition. Every status writer takes the statuses of its SQL
# from it (sources(), created(), status_in()), the test databases refuse any change it lacks
# (tests/state_guard.py) and docs/job-states.md shows it (tests/test_job_states.py compares).
TRANSITIONS: tuple[Transition, ...] = (
    Transition(None, _S.SCHEDULED, _ENQUEUE, "Run now, a CLI job, an event's job, a retry"),
    Transition(None, _S.SKIPPED, _ENQUEUE, "a scheduler slot not to run (small batch)"),
    Transition(
        None, _S.SCHEDULED, "jobs.transitions.submit", "a script's job, committed on its own"
    ),
    Transition(None, _S.SCHEDULED, _BULK, "a scheduler slot comes due"),
    Transition(
        None, _S.SKIPPED, _BULK, "a slot missed (misfire, catch-up) or whose template is busy"
    ),
    Transition(_S.SCHEDULED, _S.RUNNING, _CLAIM, "due: an executor claims it"),
    Transition(_S.BLOCKED, _S.RUNNING, _CLAIM, "its block ended: claimed again"),
    Transition(_S.RUNNING, _S.SKIPPED, _CLAIM, "another job of its template runs (overlap: skip)"),
    Transition(
        _S.RUNNING,
        _S.SCHEDULED,
        "jobs.transitions.release",
        "another job of its template runs (overlap: wait)",
    ),
    Transition(_S.RUNNING, _S.BLOCKED, "jobs.transitions.block", "a credential is unavailable"),
    Transition(_S.RUNNING, _S.SUCCEEDED, "jobs.transitions.send_success", "exit 0 (pipelined)"),
    Transition(_S.RUNNING, _S.SUCCEEDED, _FINISH, "exit 0"),
    Transition(_S.RUNNING, _S.FAILED, _FINISH, "non-zero exit, start failed, executor stopped"),
    Transition(_S.RUNNING, _S.TIMED_OUT, _FINISH, "ran past its timeout: killed"),
    Transition(_S.RUNNING, _S.CANCELLED, _FINISH, "cancel requested while running: killed"),
    Transition(_S.RUNNING, _S.LOST, "jobs.transitions.mark_lost", "its executor died (reap_*)"),
    Transition(_S.SCHEDULED, _S.CANCELLED, _CANCEL, "cancelled before it started"),
    Transition(_S.BLOCKED, _S.CANCELLED, _CANCEL, "cancelled while blocked"),
    Transition(None, _S.SUCCEEDED, _HISTORY, "an upstream job that exited 0, moved in"),
    Transition(None, _S.FAILED, _HISTORY, "an upstream job with another exit code, moved in"),
    Transition(None, _S.LOST, _HISTORY, "an upstream job still running when moved in"),
)
_PAIRS = frozenset((t.frm, t.to) for t in TRANSITIONS)

# Derived from the table: a terminal status is one no transition leaves.
TERMINAL_STATUSES = frozenset(s for s in JobStatus if s not in {t.frm for t in TRANSITIONS})
LIVE_STATUSES = frozenset(JobStatus) - TERMINAL_STATUSES
# What a cancel applies to: every status the table moves to cancelled (a running job through its
# executor, which kills it once cancel_requested is set).
CANCELLABLE_STATUSES = frozenset(
    t.frm for t in TRANSITIONS if t.to is _S.CANCELLED and t.frm is not None
)

# schedule_type values for jobs that are not tied to a schedule slot.
ADHOC_TYPES = frozenset({"adhoc", "adhoc-web", "adhoc-cli", "adhoc-api", "event"})


def allowed(frm: JobStatus | None, to: JobStatus) -> bool:
    """Whether the table has the change (frm None: creating a job in status `to`)."""
    return (frm, to) in _PAIRS


def sources(*by: str, to: JobStatus | None = None) -> tuple[JobStatus, ...]:
    """The statuses these functions move jobs from (to `to`, or to anything), in table order;
    an empty answer is refused: the caller names a change the table lacks."""
    found = [t.frm for t in TRANSITIONS if t.by in by and to in (None, t.to) and t.frm is not None]
    if not found:
        raise LookupError(f"job state table: {' or '.join(by)} never moves a job to {to}")
    return tuple(dict.fromkeys(found))


def made(by: str, frm: JobStatus | None, to: JobStatus) -> JobStatus:
    """`to`, once the table has this change by `by`: a writer names each change it makes."""
    if not any(t.frm is frm and t.to is to and t.by == by for t in TRANSITIONS):
        raise LookupError(f"job state table: {by} never moves a job from {frm} to {to}")
    return to


def created(by: str) -> tuple[JobStatus, ...]:
    """The statuses `by` creates jobs in; refused if it creates none."""
    found = tuple(t.to for t in TRANSITIONS if t.by == by and t.frm is None)
    if not found:
        raise LookupError(f"job state table: {by} creates no job")
    return found


# Jobs an executor may claim: the statuses the claim moves to running (the only way to run),
# and the predicate of the partial index ix_job_waiting. Queries use `waiting()`, which
# renders exactly this expression with the same literals: with bound parameters neither
# database can prove that a partial index applies (PostgreSQL's generic plans, SQLite
# always). "IS TRUE" keeps SQLite from serving the term with an index on `status` instead (it
# then read and sorted every waiting job on each claim).
WAITING = tuple(s.value for s in sources(_CLAIM, to=JobStatus.RUNNING))
WAITING_IN = "IN (" + ", ".join(f"'{s}'" for s in WAITING) + ")"
WAITING_SQL = f"(status {WAITING_IN}) IS TRUE"


def _set_index(name: str, *columns: str) -> Index:
    """An index over the rows whose first column is set (NULL in most jobs)."""
    where = text(f"{columns[0]} IS NOT NULL")
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        # Claiming and the queue: waiting jobs in due order. Partial, so a claim walks the
        # index from its low end and stops at the first claimable row however long the backlog
        # (a (status, scheduled_for) index cannot order two statuses: every claim read and
        # sorted the whole backlog), and finished jobs' updates never enter it.
        Index(
            "ix_job_waiting",
            "scheduled_for",
            "id",
            postgresql_where=text(WAITING_SQL),
            sqlite_where=text(WAITING_SQL),
        ),
        Index("ix_job_runtemplate_status", "runtemplate_id", "status"),
        # Only claimed jobs have a worker, only event-made ones an event, only retries a
        # predecessor: partial indexes keep the scheduler's inserts out of them. They still
        # serve the ON DELETE SET NULL look-ups (`col = $1` implies `col IS NOT NULL`).
        _set_index("ix_job_worker_status", "worker_id", "status"),
        _set_index("ix_job_event_id", "event_id"),
        _set_index("ix_job_retry_of_id", "retry_of_id"),
        Index("ix_job_company_id_desc", "company_id", "id"),
        # The portal's job list (newest first, one filter): a page is a short index range.
        Index("ix_job_status_id", "status", "id"),
        Index("ix_job_application_id_id", "application_id", "id"),
        Index("ix_job_runtemplate_id_id", "runtemplate_id", "id"),
        Index("ix_job_scheduled_for_id", "scheduled_for", "id"),
        # One scheduler-made job per (RunTemplate, slot); NULL slots (ad-hoc) never collide.
        Index("uq_job_runtemplate_slot", "runtemplate_id", "slot_at", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    runtemplate_id: Mapped[int] = mapped_column(ForeignKey("runtemplate.id", ondelete="CASCADE"))
    # Copies of the RunTemplate's (never changed after creation), for the portal's filters.
    # No foreign keys of their own: the RunTemplate's already cascade a company's deletion to
    # its jobs and restrict an application's, and each key check cost the scheduler's insert
    # ~5 µs per job (a third of its database time at 100,000 due templates).
    company_id: Mapped[int]
    application_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.SCHEDULED.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    schedule_type: Mapped[str] = mapped_column(String(32), default="adhoc")
    scheduled_for: Mapped[datetime] = mapped_column(default=utcnow)
    slot_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(default=1)
    retry_of_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("job.id", ondelete="SET NULL")
    )
    executor: Mapped[str] = mapped_column(String(32), default="native")
    command: Mapped[list[str] | None] = mapped_column(JSONType)
    # Resolved environment: [{"key", "value" (secrets redacted), "source", "secret"}].
    env: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    # One-time override, encrypted as a whole (it may carry secrets): security/secrets.py.
    env_override: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None]
    container_id: Mapped[str | None] = mapped_column(String(255))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    block_reason: Mapped[str | None] = mapped_column(Text)
    blocked_at: Mapped[datetime | None]
    app_version: Mapped[str | None] = mapped_column(String(64))
    launched_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("event.id", ondelete="SET NULL"))
    stdout_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stderr_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stdout_dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    stderr_dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    # How many chained actions led to this job (0: not chained); capped by
    # MULTIFLEXI_CHAIN_MAX_DEPTH so two templates chaining each other cannot loop forever.
    chain_depth: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    runtemplate: Mapped[RunTemplate] = relationship()
    company: Mapped[Company] = relationship(primaryjoin="foreign(Job.company_id) == Company.id")
    application: Mapped[Application] = relationship(
        primaryjoin="foreign(Job.application_id) == Application.id"
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def status_enum(self) -> JobStatus:
        return JobStatus(self.status)


def waiting() -> TextClause:
    """The job table's waiting rows, in the very form of ix_job_waiting's predicate."""
    return text(f"(job.status {WAITING_IN}) IS TRUE")


def status_in(statuses: tuple[JobStatus, ...]) -> ColumnElement[bool]:
    """Job.status is one of these (from sources()): `=` for one, else an IN list. Build it
    once, at import: a writer's WHERE on the status is fixed."""
    if len(statuses) == 1:
        return Job.status == statuses[0].value
    return Job.status.in_([s.value for s in statuses])


class Move(NamedTuple):
    """A writer's change from the table: the WHERE on the status and the status it sets."""

    where: ColumnElement[bool]
    to: str


def move(by: str, to: JobStatus) -> Move:
    """The change `by` makes to `to` (refused if the table lacks it); build it at import."""
    return Move(status_in(sources(by, to=to)), to.value)


class JobOutput(Base):
    """A raw chunk of a job's stdout or stderr, in arrival order (id)."""

    __tablename__ = "job_output"
    __table_args__ = (Index("ix_job_output_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigId, ForeignKey("job.id", ondelete="CASCADE"))
    seq: Mapped[int]
    stream: Mapped[str] = mapped_column(String(8))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    __tablename__ = "artifact"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigId, ForeignKey("job.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    # Small files live in the row; large ones on disk under MULTIFLEXI_ARTIFACT_DIR.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    storage_path: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="artifacts")


class FileUpload(Base):
    """An input file uploaded for a file-path field of a job or a RunTemplate."""

    __tablename__ = "file_upload"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("job.id", ondelete="CASCADE"), index=True
    )
    runtemplate_id: Mapped[int | None] = mapped_column(
        ForeignKey("runtemplate.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
