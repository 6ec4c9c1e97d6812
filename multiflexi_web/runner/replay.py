"""Recording journaled finishes: those of this host's dead executors, before any claim or reap."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus
from multiflexi_web.runner import journal
from multiflexi_web.runner.unit import writing
from multiflexi_web.services.jobs import artifacts, output
from multiflexi_web.services.jobs import transitions as jobs

log = logging.getLogger("multiflexi.executor")


def replay_orphans(
    folder: Path, mine: Path | None, run_unit: Callable[[Callable[[], None]], None]
) -> int:
    """Record every entry of the journals no live executor of this host holds, then remove
    them; `run_unit` runs a unit of work through the caller's retry. Returns how many."""
    count = 0
    for orphan in journal.orphans(folder, mine):
        try:
            entries = orphan.entries()
            # A job's last entry is its fullest: the one written as its process ended is
            # superseded by the one written when it was handed to the finisher.
            last = {e["job"]: e for e in entries}
            for entry in last.values():
                run_unit(lambda e=entry: _record(e))  # type: ignore[misc]
            # Jobs that ended before their exit entry was written: their guard saw the status.
            witnessed = {j: c for j, c in orphan.exits().items() if j not in last}
            for job_id, code in witnessed.items():
                run_unit(lambda j=job_id, c=code: _record_witnessed(j, c))  # type: ignore[misc]
        except BaseException:
            orphan.release()  # kept for the next try (this process or another)
            raise
        orphan.done()
        count += len(entries) + len(witnessed)
        if entries:  # an empty file is only what a crashed executor left: removed quietly
            log.info("action=journal_replayed file=%s entries=%d", orphan.path.name, len(entries))
    return count


def _record(entry: dict[str, Any]) -> None:
    with writing():
        begin_write()
        if not jobs.finish(
            entry["job"],
            entry["rt"],
            datetime.fromisoformat(entry["started_at"]),
            jobs.Outcome(JobStatus(entry["status"]), entry["exit"], entry["reason"]),
            jobs.RunRecord(entry["pid"], entry["command"], entry["env"], entry["counters"]),
            lambda: _store_rows(entry),
        ):
            log.info("action=journal_skip job=%s reason=no_longer_running", entry["job"])
        elif entry.get("exited_only"):
            # Its executor died while it collected the artifacts: the job's outcome and output
            # are recorded, its artifacts are not (rather than running the job a second time).
            log.warning("action=journal_exit_only job=%s artifacts=not_collected", entry["job"])
        db.session.commit()


def _record_witnessed(job_id: int, code: int) -> None:
    record_ended(job_id, 128 - code if code < 0 else code, "guard")


def record_ended(job_id: int, exit_code: int, by: str) -> bool:
    """A job that ended as its executor died, before the exit was journaled: recorded from its
    exit code as `by` saw it (its guard, or the container engine); its output is what live
    syncs stored, its artifacts none. False if it was no longer running."""
    with writing():
        begin_write()
        job = db.session.get(Job, job_id)
        if job is None or job.status != JobStatus.RUNNING.value or job.started_at is None:
            log.info("action=exit_skip job=%s reason=no_longer_running by=%s", job_id, by)
            db.session.rollback()
            return False
        if exit_code == 0:
            outcome = jobs.Outcome(JobStatus.SUCCEEDED, 0)
        else:
            outcome = jobs.Outcome(JobStatus.FAILED, exit_code, f"exit code {exit_code}")
        done = jobs.finish(job_id, job.runtemplate_id, job.started_at, outcome)
        db.session.commit()
    if done:
        log.warning(
            "action=exit_witnessed job=%s exit=%s output=live_only artifacts=not_collected by=%s",
            job_id, exit_code, by,
        )  # fmt: skip
    return done


def _store_rows(entry: dict[str, Any]) -> None:
    # An exit entry also holds the rows a live sync was storing as the process ended, and those
    # written again by a flush while collecting: rows already stored are skipped by their seq
    # (a job's seq numbers each one row, whose content never changes once taken).
    stored = output.stored_seqs(db.session(), entry["job"])
    for batch in entry["output"]:
        deletes = {s: (int(a), int(b)) for s, (a, b) in batch["deletes"].items()}
        fresh = [r for r in batch["rows"] if r["seq"] not in stored]
        output.store(db.session(), output.Batch(fresh, deletes, {}), entry["job"], counters=False)
    artifacts.store(db.session(), entry["artifacts"])
