"""Recording finished jobs off the job threads: every finish waiting, in one transaction.

A job thread hands its finished run over and is free for the next job at once. One thread
records the finishes as they come; while one transaction commits, the next finishes queue up
and share the following one, and successors for the freed slots are claimed in it too. The
RunTemplate counters' row is written by this thread alone, so job threads never queue on it.

A finish is never given up: a batch that fails (any error: the database away, the connection
killed mid-pipeline or mid-commit) is written to the journal (journal.py) and tried again after
a back-off until it commits. Only a job the database says is no longer running is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime

from flask import Flask

from multiflexi_web.db.engine import begin_write
from multiflexi_web.db.raw import driver
from multiflexi_web.db.retry import FIRST_WAIT, LINK, is_transient, safe_rollback
from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus
from multiflexi_web.runner import actions
from multiflexi_web.runner.journal import Journal
from multiflexi_web.runner.run import JobRun
from multiflexi_web.runner.unit import RETRY_MAX_WAIT, pipelined, writing
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import ClaimedJob

log = logging.getLogger("multiflexi.executor")
MAX_BATCH = 64


class Finisher:
    def __init__(
        self,
        app: Flask,
        hard_stop: threading.Event,
        claim: Callable[[], list[ClaimedJob]],
        claimed: Callable[[list[ClaimedJob]], None],
        max_pending: int,
        journal: Journal | None = None,
        worker_id: int = 0,
    ) -> None:
        self.app, self.hard_stop = app, hard_stop
        self.journal, self.worker_id = journal, worker_id
        self.claim, self.claimed = claim, claimed  # successors: claimed in, handed out after
        self.queue: queue.Queue[JobRun | None] = queue.Queue(maxsize=max_pending)
        self._pending: set[int] = set()
        self._handing_over = 0  # batches whose successors are being started
        self._journaled: set[int] = set()  # jobs whose finish is in the journal file
        self._closing = False  # close() was asked: record what is queued, then end
        self._lock = threading.Lock()
        self._journal_lock = threading.Lock()  # job threads append, the finisher clears
        self.thread = threading.Thread(target=self._loop, name="finisher", daemon=True)
        self.thread.start()

    def submit(self, run: JobRun) -> None:
        """Queue a finished run (blocks while max_pending runs wait: bounded memory).

        Journaled first, in the job's own thread: a kill -9 between the job's exit and the
        commit (the finisher may be busy with the previous batch) must not leave a finished job
        to be reaped as lost and run again. Not fsync'd here (a write to the page cache survives
        the process); the failure path fsyncs."""
        with self._lock:
            self._pending.add(run.job.id)
        self._journal([run], sync=False)
        self.queue.put(run)

    def exited(self, run: JobRun) -> None:
        """The job's process ended: journal its outcome now, in the job's thread, before its
        artifacts are collected (a millisecond, or much longer for large result files). A
        kill -9 from here on then has the job recorded from the journal instead of reaped as
        lost and run again. submit()'s entry, written next, supersedes this one at replay. The
        job is pending from now on, so the journal is not cleared under its entry."""
        with self._lock:
            self._pending.add(run.job.id)
        if self.journal is None:
            return
        with self._journal_lock:
            try:
                self.journal.append([run.journal_entry(self.worker_id, exited=True)], sync=False)
            except OSError as exc:  # submit() tries again with the whole entry
                log.error("action=journal_failed jobs=%s error=%s", run.job.id, exc)

    def pending(self) -> set[int]:
        """Jobs finished but not yet recorded: still 'running' in the database, and ours."""
        with self._lock:
            return set(self._pending)

    def busy(self) -> bool:
        """Runs wait to be recorded, or a recorded batch's successors are not in a slot yet."""
        with self._lock:
            return bool(self._pending) or self._handing_over > 0

    def close(self, timeout: float = 60) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while not self._closing and (first := self.queue.get()) is not None:
            self._record([first, *self._take(MAX_BATCH - 1)])

    def _take(self, most: int) -> list[JobRun]:
        """Finished runs waiting in the queue, up to `most` (the close marker is noted)."""
        runs: list[JobRun] = []
        while len(runs) < most and not self._closing:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._closing = True
            else:
                runs.append(item)
        return runs

    def _record(self, batch: list[JobRun]) -> None:
        """Commit the batch, however many tries it takes. While it fails, every run finishing
        meanwhile joins it, and each is journaled at once: all of them survive a crash."""
        delay = FIRST_WAIT
        while True:
            try:
                successors = self._try(batch)
                break
            except Exception as exc:
                self._journal(batch)
                if not is_transient(exc) and len(batch) > 1:
                    for run in batch:  # a refused batch: find the one run that is refused
                        self._record([run])
                    return
                log.warning(
                    "action=finish_retry jobs=%s retry_in=%.1fs error=%s",
                    _ids(batch),
                    delay,
                    first_line(exc),
                )
                if self.hard_stop.wait(delay):
                    self._let_go(batch)  # recorded from the journal by the next executor
                    return
                batch += self._take(self.queue.maxsize)
                self._journal(batch)
                delay = min(delay * 2, RETRY_MAX_WAIT)
        # busy() until the successors reached their slots: an executor that finds nothing
        # busy, running or ready may stop (--drain, a drained host), and must not do so between
        # this commit and the successors' start (they would stay claimed, never run, until
        # their lease ran out). The batch is let go first, as always: its journal is cleared
        # before the successors start writing theirs.
        with self._lock:
            self._handing_over += 1
        try:
            self._let_go(batch)
            self.claimed(successors)
        finally:
            with self._lock:
                self._handing_over -= 1

    def _try(self, batch: list[JobRun]) -> list[ClaimedJob]:
        with self.app.app_context():
            try:
                return self._commit(batch)
            except BaseException as exc:
                if not isinstance(exc, Exception) or is_transient(exc):
                    LINK.failed()
                raise
            finally:
                # Never let the context's teardown roll back a killed connection: it would
                # raise after the commit, and the successors claimed in it would be forgotten.
                safe_rollback()

    def _journal(self, batch: list[JobRun], *, sync: bool = True) -> None:
        """Keep the runs on disk too: a crash now must not lose a result that was produced.
        Runs already written unsynced are synced (the whole file) when `sync` is asked."""
        if self.journal is None:
            return
        with self._journal_lock:
            new = [run for run in batch if run.job.id not in self._journaled]
            try:
                if new:
                    self.journal.append(
                        [run.journal_entry(self.worker_id) for run in new], sync=sync
                    )
                elif sync:
                    self.journal.sync()
            except OSError as exc:  # kept in memory all the same; said loudly
                log.error("action=journal_failed jobs=%s error=%s", _ids(new or batch), exc)
                return
            self._journaled.update(run.job.id for run in new)

    def _let_go(self, batch: list[JobRun]) -> None:
        with self._lock:
            self._pending -= {r.job.id for r in batch}
            idle = not self._pending and self.queue.empty()
        if idle and self.journal is not None:
            self._clear_journal(self.journal)

    def _clear_journal(self, journal: Journal) -> None:
        if self.hard_stop.is_set():
            return  # a batch may have been let go unrecorded: its entries must stay
        with self._journal_lock:
            with self._lock:  # a run submitted meanwhile is pending before it is journaled
                if self._pending or not self.queue.empty():
                    return
            try:
                journal.clear()
                self._journaled.clear()
            except OSError as exc:
                log.error("action=journal_clear_failed error=%s", exc)

    def _commit(self, batch: list[JobRun]) -> list[ClaimedJob]:
        # Action runs are queued claimed by this executor's own dispatcher when it takes them
        # in memory: it then neither claims nor reads them (runner/actions.py, Handed).
        owner = actions.handed_to()
        with writing():
            begin_write()
            successors = self._in_one_trip(batch, owner) if self._one_trip_fits(batch) else None
            if successors is None:
                successors = self._step_by_step(batch, owner)
            db.session.commit()
        if owner is not None:
            actions.hand_over([h for run in batch for h in run.handed(owner)])
        for run in batch:
            run.recorded()
        if owner is None and any(run.has_actions for run in batch):
            actions.runs_queued()  # delivered now by this executor, not at its next poll
        return successors

    def _step_by_step(self, batch: list[JobRun], owner: int | None) -> list[ClaimedJob]:
        """Statuses first (each a conditional UPDATE whose answer decides the rest), then the
        rows and counters without waiting on each statement, then the successors' claim."""
        done = [run for run in batch if run.record_status(owner)]
        with pipelined():
            for run in done:
                run.store_rows()
            for rt_id, (ok, failed, last) in _counts(done).items():
                jobs.add_counts(rt_id, ok, failed, last)
        return self.claim()

    @staticmethod
    def _one_trip_fits(batch: list[JobRun]) -> bool:
        # Failures go step by step: one may need a retry, planned from the job's row.
        return driver(db.session()).is_pg and all(
            run.outcome.status is JobStatus.SUCCEEDED for run in batch
        )

    def _in_one_trip(self, batch: list[JobRun], owner: int | None) -> list[ClaimedJob] | None:
        """PostgreSQL: statuses, rows, counters and the successors' claim in one round trip,
        betting that every job is still ours (it is, unless it was reaped meanwhile). If one was
        not, everything is rolled back and None says: go step by step."""
        with pipelined():
            answers = [run.send_success(owner) for run in batch]
            for run in batch:
                run.store_rows()
            for rt_id, (ok, failed, last) in _counts(batch).items():
                jobs.add_counts(rt_id, ok, failed, last)
            successors = self.claim()  # reading its rows ends the round trip
        if all(ours() for ours in answers):
            return successors
        db.session.rollback()  # the claim too: step by step claims again
        begin_write()
        return None


def _ids(batch: list[JobRun]) -> str:
    return ",".join(str(r.job.id) for r in batch)


def _counts(runs: list[JobRun]) -> dict[int, tuple[int, int, datetime]]:
    """Per RunTemplate (in id order, so two writers lock them alike): successes, failures and
    the latest start."""
    out: dict[int, tuple[int, int, datetime]] = {}
    for run in sorted(runs, key=lambda r: r.job.runtemplate_id):
        ok = run.outcome.status is JobStatus.SUCCEEDED
        prev = out.get(run.job.runtemplate_id, (0, 0, run.job.started_at))
        out[run.job.runtemplate_id] = (
            prev[0] + ok,
            prev[1] + (not ok),
            max(prev[2], run.job.started_at),
        )
    return out
