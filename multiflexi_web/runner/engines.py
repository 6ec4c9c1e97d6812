"""Container engines seen from one executor: what it can run (on its worker row), and leftovers.

What it can run: each module's availability and the application executables its host lacks.

A thread of its own (a ping of an absent engine may take a second; the claim loop must not
wait for it) reports every module's availability on the worker row when it changes, and
removes containers labelled with a job that is not running here and whose executor is gone:
the job is over, or ran on this executor but is not among its jobs, or its executor stopped,
went stale, or was a process on this host that no longer exists (a `kill -9` and a restart).
Only this installation's containers (by label): another's on a shared engine are not ours.
A container that ended while its job is still running under a dead executor (killed after the
container's exit, before journaling it) has its job recorded from the engine's exit code first;
one whose job was already reaped as lost, with a retry waiting, is left for that retry's fence.
Kubernetes Pods (their Secrets with them) and Azure container groups are swept the same way.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from multiflexi_web.db.engine import begin_write
from multiflexi_web.errors import first_line
from multiflexi_web.executors import registry
from multiflexi_web.executors.base import Leftover
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus, Worker
from multiflexi_web.models.worker import MISSING_KEY, MODULES_KEY
from multiflexi_web.runner.executables import missing_here
from multiflexi_web.runner.host import Host
from multiflexi_web.runner.replay import record_ended
from multiflexi_web.runner.unit import writing
from multiflexi_web.services import installation
from multiflexi_web.services.jobs.transitions import database_now


class EngineWatch:
    def __init__(self, host: Host, mine: Callable[[], set[int]], every: float) -> None:
        self.host, self.mine, self.every = host, mine, every
        self.reported: dict[str, object] | None = None
        self.installation: str | None = None  # given by the pool, else read at the first tick

    def start(self, closed: threading.Event) -> threading.Thread:
        def loop() -> None:
            while True:
                self.tick()
                if closed.wait(self.every):
                    return

        thread = threading.Thread(target=loop, name="engines", daemon=True)
        thread.start()
        return thread

    def tick(self) -> list[str]:
        """Report and reap once; returns the references of the leftovers removed."""
        try:
            with self.host.app.app_context():
                self._report()
                return self._reap()
        except DBAPIError as exc:
            self.host.log("engines_failed", error=first_line(exc).replace(" ", "_"))
            return []
        except Exception as exc:  # a module's failure: the next pass tries again
            # Nothing may end this thread: with it went every later sweep of leftovers and
            # every report of the modules usable here, and nothing said so.
            error = f"{type(exc).__name__}:{first_line(exc)}".replace(" ", "_")
            self.host.log("engines_failed", logging.WARNING, error=error)
            return []

    def _report(self) -> None:
        report: dict[str, object] = {
            MODULES_KEY: registry.availability(),
            MISSING_KEY: missing_here(),
        }
        db.session.rollback()  # end the read of the applications
        if report == self.reported or self.host.worker_id is None:
            return
        with writing():
            begin_write()
            worker = db.session.get(Worker, self.host.worker_id)
            if worker is not None:
                info = {**(worker.info or {}), **report}
                db.session.execute(update(Worker).where(Worker.id == worker.id).values(info=info))
            db.session.commit()
        self.reported = report

    def _reap(self) -> list[str]:
        removed: list[str] = []
        if self.installation is None:
            self.installation = installation.uid(db.session())
        for module in registry.engine_modules():
            found = module.leftovers(self.installation)
            mine, lost_after = self.mine(), self.host.settings.lost_after
            old = [_with_exit(lo) for lo in stale(found, self.host.worker_id, mine, lost_after)]
            evidence = retried_soon({lo.job_id for lo in old if lo.exit_code is not None})
            for lo in old:
                if lo.exit_code is not None and lo.job_id in evidence:
                    # Its job was reaped as lost before its exit code was read, and its retry is
                    # not over: that retry's fence reads the code and records it instead of
                    # running the work again (runner/run.py), and removes the container.
                    continue
                if lo.exit_code is not None and lo.worker_id != self.host.worker_id:
                    # Its container ended, but its executor died before journaling that: the
                    # engine kept the exit code, so the job is recorded, not reaped as lost
                    # and run again (a no-op once the job is no longer running).
                    record_ended(lo.job_id, lo.exit_code, "engine")
                module.remove_leftover(lo.ref)
                self.host.log("container_removed", job=lo.job_id, container=lo.ref[:12])
                removed.append(lo.ref)
        db.session.rollback()  # end the read
        return removed


def stale(
    leftovers: Iterable[Leftover], me: int | None, mine: set[int], lost_after: float
) -> list[Leftover]:
    """The leftovers whose job is not running here nor on a live executor."""
    candidates = [lo for lo in leftovers if lo.job_id not in mine]
    if not candidates:
        return []
    rows = db.session.execute(
        select(Job.id, Job.status, Job.worker_id).where(
            Job.id.in_({lo.job_id for lo in candidates})
        )
    ).all()
    running = {r.id: r.worker_id for r in rows if r.status == JobStatus.RUNNING.value}
    others = {w for w in running.values() if w is not None and w != me}
    live = _live_workers(others, lost_after)
    return [
        lo
        for lo in candidates
        if lo.job_id not in running or running[lo.job_id] == me or running[lo.job_id] not in live
    ]


def _with_exit(lo: Leftover) -> Leftover:
    """Its exit code read now if the listing had none (only leftovers about to go are asked)."""
    if lo.exit_code is None and lo.read_exit is not None:
        return replace(lo, exit_code=lo.read_exit())
    return lo


def retried_soon(job_ids: set[int]) -> set[int]:
    """Those of the jobs that are lost with a retry not yet over: waiting, or running (its fence
    may be reading the exit code just now; a finished retry's fence removed the object)."""
    if not job_ids:
        return set()
    retry = aliased(Job)
    found = db.session.scalars(
        select(Job.id)
        .join(retry, retry.retry_of_id == Job.id)
        .where(
            Job.id.in_(job_ids),
            Job.status == JobStatus.LOST.value,
            retry.status.in_(
                (JobStatus.SCHEDULED.value, JobStatus.BLOCKED.value, JobStatus.RUNNING.value)
            ),
        )
    )
    return set(found)


def _live_workers(ids: set[int], lost_after: float) -> set[int]:
    if not ids:
        return set()
    # Heartbeats are stamped by the database's clock: judged by this host's, an executor whose
    # clock ran ahead would take live ones for dead and remove their running jobs' Pods.
    oldest = database_now() - timedelta(seconds=lost_after)
    here = socket.gethostname()
    workers = db.session.scalars(select(Worker).where(Worker.id.in_(ids))).all()
    return {w.id for w in workers if _alive(w, oldest, here)}


def _alive(w: Worker, oldest: datetime, here: str) -> bool:
    if w.stopped_at is not None or w.status == "stopped" or w.heartbeat_at < oldest:
        return False
    return w.hostname != here or (w.pid != os.getpid() and _process_exists(w.pid))


def _process_exists(pid: int) -> bool:
    """A process that is not a zombie (TESTING.md: PID 1 reaps orphans late here)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
