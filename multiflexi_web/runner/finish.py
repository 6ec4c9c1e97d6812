"""Recording finished jobs off the job threads: every finish waiting, in one transaction.

A job thread hands its finished run over and is free for the next job at once. One thread
records the finishes as they come; while one transaction commits, the next finishes queue up
and share the following one, and successors for the freed slots are claimed in it too. The
RunTemplate counters' row is written by this thread alone, so job threads never queue on it.
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
from multiflexi_web.db.retry import retry
from multiflexi_web.extensions import db
from multiflexi_web.models import JobStatus
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
    ) -> None:
        self.app, self.hard_stop = app, hard_stop
        self.claim, self.claimed = claim, claimed  # successors: claimed in, handed out after
        self.queue: queue.Queue[JobRun | None] = queue.Queue(maxsize=max_pending)
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="finisher", daemon=True)
        self.thread.start()

    def submit(self, run: JobRun) -> None:
        """Queue a finished run (blocks while max_pending runs wait: bounded memory)."""
        with self._lock:
            self._pending.add(run.job.id)
        self.queue.put(run)

    def pending(self) -> set[int]:
        """Jobs finished but not yet recorded: still 'running' in the database, and ours."""
        with self._lock:
            return set(self._pending)

    def close(self, timeout: float = 60) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while (first := self.queue.get()) is not None:
            batch, stop = [first], False
            while len(batch) < MAX_BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._record(batch)
            if stop:
                return

    def _record(self, batch: list[JobRun]) -> None:
        ids = ",".join(str(r.job.id) for r in batch)
        successors: list[ClaimedJob] = []
        try:
            with self.app.app_context():
                successors = retry(
                    lambda: self._commit(batch),
                    self.hard_stop,
                    f"jobs={ids}",
                    max_wait=RETRY_MAX_WAIT,
                )
        except Exception as exc:
            log.warning("action=finish_failed jobs=%s error=%r", ids, exc, exc_info=True)
        with self._lock:
            self._pending -= {r.job.id for r in batch}
        self.claimed(successors)

    def _commit(self, batch: list[JobRun]) -> list[ClaimedJob]:
        with writing():
            begin_write()
            successors = self._in_one_trip(batch) if self._one_trip_fits(batch) else None
            if successors is None:
                successors = self._step_by_step(batch)
            db.session.commit()
        for run in batch:
            run.recorded()
        return successors

    def _step_by_step(self, batch: list[JobRun]) -> list[ClaimedJob]:
        """Statuses first (each a conditional UPDATE whose answer decides the rest), then the
        rows and counters without waiting on each statement, then the successors' claim."""
        done = [run for run in batch if run.record_status()]
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

    def _in_one_trip(self, batch: list[JobRun]) -> list[ClaimedJob] | None:
        """PostgreSQL: statuses, rows, counters and the successors' claim in one round trip,
        betting that every job is still ours (it is, unless it was reaped meanwhile). If one was
        not, everything is rolled back and None says: go step by step."""
        with pipelined():
            answers = [run.send_success() for run in batch]
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
