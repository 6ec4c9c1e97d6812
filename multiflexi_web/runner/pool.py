"""The executor's job slots: claim, run each job in a thread, reap the lost, stop in time."""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from multiflexi_web.db.engine import begin_write
from multiflexi_web.db.listen import start_listener
from multiflexi_web.db.retry import safe_rollback
from multiflexi_web.errors import first_line
from multiflexi_web.executors import registry
from multiflexi_web.extensions import db
from multiflexi_web.memory import rss_mb
from multiflexi_web.metrics import instruments as metrics
from multiflexi_web.models import JobStatus
from multiflexi_web.runner.claims import Claims
from multiflexi_web.runner.contexts import ContextCache
from multiflexi_web.runner.engines import EngineWatch
from multiflexi_web.runner.finish import Finisher
from multiflexi_web.runner.host import Host
from multiflexi_web.runner.janitor import Janitor
from multiflexi_web.runner.journal import Journal
from multiflexi_web.runner.live_sync import LiveSync
from multiflexi_web.runner.reaper import Reaper
from multiflexi_web.runner.run import JobRun, RunSettings
from multiflexi_web.runner.unit import RETRY_MAX_WAIT, writing
from multiflexi_web.security.process import job_identity
from multiflexi_web.services import installation
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import ClaimedJob
from multiflexi_web.services.jobs.transitions import Outcome

# Fallback when a wake-up (NOTIFY, or SQLite's doorbell) was missed, and for jobs planned for
# later; new work wakes the loop at once.
IDLE_POLL = 1.0
MEMORY_EXIT = 3
# While jobs take less than this on average, each slot gets its next job claimed ahead, so a
# slot never waits for the finisher's round trips between two short jobs (they took longer
# than the jobs). Longer jobs gain nothing from it, and a job claimed ahead would wait behind
# them while another executor could run it.
CLAIM_AHEAD_BELOW = 0.1


class Executor:
    """The job slots of one executor process."""

    def __init__(self, rt: Host, *, drain: bool = False) -> None:
        self.rt, self.s, self.drain = rt, rt.settings, drain
        run_as = job_identity(self.s)  # first: a ConfigError must leave no threads behind
        self.running: dict[int, JobRun] = {}
        self.ready: deque[ClaimedJob] = deque()  # claimed ahead, waiting for a slot
        self.avg_seconds: float | None = None  # jobs' recent run time (moving average)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closed = threading.Event()  # ends helper threads when serve() returns
        self.pool = ThreadPoolExecutor(self.s.max_parallel, thread_name_prefix="job")
        self.contexts = ContextCache()
        self.janitor = Janitor()
        self.reserved = 0
        self._finisher_slots = 0
        self.claims = Claims(rt)
        self.journal = Journal(Path(self.s.state_path), self.s.journal_max_mb * 1024 * 1024)
        self.finisher = Finisher(
            rt.app,
            rt.hard_stop,
            self._claim_successors,
            self._successors_claimed,
            max_pending=self.s.max_parallel,
            journal=self.journal,
            worker_id=rt.worker_id or 0,
        )
        self.reaper = Reaper(rt, self.journal, self._mine)
        self.live = LiveSync(rt.app)
        self.memory_exceeded = False
        self.engines = EngineWatch(rt, self._mine, self.reaper.reap_every)
        self.run_settings = RunSettings(
            tmp_dir=Path(self.s.tmp_dir),
            artifact_dir=Path(self.s.artifact_dir),
            inline_max=self.s.artifact_inline_max_mb * 1024 * 1024,
            cap_bytes=self.s.output_cap_mb * 1024 * 1024,
            job_timeout=self.s.job_timeout,
            kill_grace=self.s.kill_grace,
            keep_workdir_on_failure=self.s.keep_workdir_on_failure,
            heartbeat_every=min(1.0, self.rt.heartbeat_every),
            run_as=run_as,
            worker_id=rt.worker_id,
        )

    def _installation(self) -> str:
        def read() -> str:
            with self.rt.app.app_context():
                return installation.uid(db.session())

        return self.rt.retry_db(read)

    # -- one pass -------------------------------------------------------------------------------
    def tick(self) -> int:
        """Reap when due, then claim as many due jobs as there are free slots; returns the count."""
        with self.rt.app.app_context():
            self.reaper.maintain()
            if self._holding() or self.finisher.pending():
                return 0  # a pending finish claims the successors in its own transaction
            if self.journal.full() or self.rt.lease.lost():
                return 0  # unrecorded finishes pile up, or our jobs may be taken over: wait
            # Places first (no query): woken after each finished batch, whose transaction
            # already claimed for the freed slots, most ticks find none and read nothing.
            free = self._reserve()
            if not free:
                return 0
            try:
                if self.s.is_sqlite:
                    due = jobs.anything_due()
                    db.session.rollback()  # end the read: the claim must begin as a writer
                    if not due:
                        return 0
                sent = time.monotonic()
                with writing():
                    claimed = jobs.claim(self.rt.worker_id or 0, free)
                metrics.CLAIM.observe(time.monotonic() - sent)
                self.claims.made(claimed, sent)
                metrics.claimed(claimed)
                for c in claimed:
                    self._start(c)
            finally:
                self._release(free)
        return len(claimed)

    def _mine(self) -> set[int]:
        """The jobs this executor holds: running, claimed ahead, or being recorded."""
        with self.lock:
            return set(self.running) | {c.id for c in self.ready} | self.finisher.pending()

    def _new_run(self, claimed: ClaimedJob) -> JobRun:
        return JobRun(
            claimed,
            self.run_settings,
            self.rt.hard_stop,
            self.janitor.put,
            self.finisher.submit,
            self.rt.lease,
            self.finisher.exited,
            self.live,
        )

    def _start(self, claimed: ClaimedJob) -> None:
        """Run a claimed job in a free slot, or keep it ready for the next slot to free up.

        Once stopping, nothing new starts: a job whose claim was already under way waits with
        the ready ones, and _shutdown gives it back to the queue.
        """
        with self.lock:
            if self._holding() or len(self.running) >= self.s.max_parallel:
                self.ready.append(claimed)
                return
            run = self.running[claimed.id] = self._new_run(claimed)
        self.pool.submit(self._work, run)

    def _next_ready(self) -> None:
        """A slot is free: start the job claimed ahead for it, if any."""
        with self.lock:
            if not self.ready or self._holding():
                return
            claimed = self.ready.popleft()
            run = self.running[claimed.id] = self._new_run(claimed)
        self.pool.submit(self._work, run)

    def _holding(self) -> bool:
        """Nothing new starts or is claimed: stopping, over the memory limit, or draining."""
        return self.rt.stop.is_set() or self.memory_exceeded or self.rt.drain_requested.is_set()

    def _ahead(self) -> int:
        short = self.avg_seconds is not None and self.avg_seconds < CLAIM_AHEAD_BELOW
        return self.s.max_parallel if short else 0

    def _reserve(self) -> int:
        """Book the free places for a claim (the main loop and the finisher both claim): the
        free slots, plus one job ahead per slot while jobs are short."""
        with self.lock:
            places = self.s.max_parallel + self._ahead()
            free = max(0, places - len(self.running) - len(self.ready) - self.reserved)
            self.reserved += free
            return free

    def _release(self, slots: int) -> None:
        with self.lock:
            self.reserved -= slots

    def _claim_successors(self) -> list[ClaimedJob]:
        """Inside the finisher's transaction: jobs for the slots the finished ones freed."""
        self._release(self._finisher_slots)  # a retried transaction claims again
        self._finisher_slots = 0
        if self._holding():
            return []
        self._finisher_slots = slots = self._reserve()
        if not slots or self.journal.full() or self.rt.lease.lost():
            return []
        sent = time.monotonic()
        claimed = jobs.claim(self.rt.worker_id or 0, slots, commit=False)
        self.claims.made(claimed, sent)
        return claimed

    def _successors_claimed(self, claimed: list[ClaimedJob]) -> None:
        metrics.claimed(claimed)  # counted once committed: a retried transaction claims again
        for c in claimed:
            self._start(c)
        self._release(self._finisher_slots)
        self._finisher_slots = 0
        self.wake.set()

    def _work(self, run: JobRun) -> None:
        t0 = time.monotonic()
        try:
            if not self.claims.holds(run.job.id):
                return
            with self.rt.app.app_context():
                try:
                    ctx, problem = run.with_retries(
                        lambda: self.contexts.get(run.job.runtemplate_id)
                    )
                    outcome = run.run(ctx, problem)  # its finish is recorded by the finisher
                    app_id = ctx.application_id if ctx is not None else 0
                    metrics.job_ran(app_id, outcome.status.value, time.monotonic() - t0, run.sink)
                finally:
                    safe_rollback()  # the teardown must not fail on a connection killed meanwhile
            self.rt.log(
                "job_finished",
                job=run.job.id,
                status=outcome.status.value,
                exit=outcome.exit_code,
                secs=f"{time.monotonic() - t0:.3f}",
            )
        except Exception as exc:
            self.rt.log("job_error", job=run.job.id, error=repr(exc)[:300])
            if not run.handed_over:  # its finish was never recorded: record the failure
                run.settle()
                run.outcome = Outcome(JobStatus.FAILED, None, f"executor error: {first_line(exc)}")
                self.finisher.submit(run)
        finally:
            took = time.monotonic() - t0
            with self.lock:
                self.running.pop(run.job.id, None)
                avg = self.avg_seconds
                self.avg_seconds = took if avg is None else 0.8 * avg + 0.2 * took
            self._next_ready()
            self.wake.set()

    # -- the loop -------------------------------------------------------------------------------
    def serve(self) -> int:
        start_listener(self.s.database_url, jobs.NOTIFY_CHANNEL, self.wake, self.closed)
        # Whose engine objects ours are (labelled on them, fenced and swept by them): read once.
        uid = self.engines.installation = self._installation()
        self.run_settings = replace(self.run_settings, installation=uid)
        replayed = self.rt.retry_db(self.reaper.replay_journals)  # before any claim
        if replayed:
            self.rt.log("journal_replayed", entries=replayed)
        self.engines.start(self.closed)  # reports usable modules, removes leftover containers
        next_mem = 0.0
        while not self.rt.stop.is_set():
            if time.monotonic() >= next_mem:
                next_mem = time.monotonic() + 1.0
                if self._check_memory():
                    break
            claimed = self.rt.retry_db(self.tick, max_wait=RETRY_MAX_WAIT)  # back soon after
            idle = not claimed and not self.running and not self.ready and not self.finisher.busy()
            if self.drain and idle and not self._due():
                break
            if self.rt.drain_requested.is_set():
                self._drain_step(idle)
            if not claimed or len(self.running) >= self.s.max_parallel:
                self.wake.wait(IDLE_POLL)
                self.wake.clear()
        self._shutdown()
        return MEMORY_EXIT if self.memory_exceeded else 0

    def _drain_step(self, idle: bool) -> None:
        """Draining: jobs claimed ahead go back at once; drained once nothing runs any more.

        A drained executor stays up, idle (claiming nothing, still reaping and beating), until
        it is stopped: under `Restart=always`, a compose restart policy or a Deployment an exit
        would only bring a fresh, undrained executor back.
        """
        if self.ready:
            self._give_back_ready()
        if idle and not self.rt.drained.is_set():
            self.rt.drained.set()
            self.rt.log("drained")

    def _due(self) -> bool:
        def check() -> bool:
            with self.rt.app.app_context():
                return jobs.anything_due()

        return self.rt.retry_db(check)

    def _check_memory(self) -> bool:
        if not self.rt.over_memory_limit():
            return False
        self.memory_exceeded = True
        self.rt.log(
            "memory_limit",
            rss_mb=f"{rss_mb():.0f}",
            limit_mb=self.s.memory_limit_mb,
            running=len(self.running),
        )
        return True

    def _shutdown(self) -> None:
        """Stop claiming; let running jobs finish within the stop grace, then stop them.

        Past the memory limit the running jobs may take as long as they need, unless a
        SIGTERM comes meanwhile: from then on the stop grace counts.
        """
        self._give_back_ready()
        while self.running and not self.rt.stop.wait(0.1):
            pass
        grace = self.s.stop_grace
        self._wait_running(time.monotonic() + grace)
        if self.running and not self.rt.hard_stop.is_set():
            self._stop_all(f"executor shutting down (stop grace of {grace:g}s passed)")
            self._wait_running(time.monotonic() + self.s.kill_grace + 5)
        if self.rt.hard_stop.is_set():
            self._stop_all("executor received a second SIGTERM", kill=True)
            self._wait_running(time.monotonic() + 10, interruptible=False)
        self.pool.shutdown(wait=not self.running)
        self.live.close()  # after the job threads: a finishing job waits for its sync
        self.finisher.close()
        self._give_back_ready()  # claimed by a finish that was under way when the stop came
        if not self.finisher.thread.is_alive():  # else it may still write: the exit closes it
            self.journal.close()
        self.janitor.close()
        self.closed.set()

    def _give_back_ready(self) -> None:
        """Jobs claimed ahead that never started go back to the queue for any executor."""
        with self.lock:
            ready, self.ready = list(self.ready), deque()
        if not ready:
            return

        def unit() -> None:
            with self.rt.app.app_context(), writing():
                begin_write()
                for c in ready:
                    jobs.release(c.id)
                db.session.commit()

        try:
            self.rt.retry_db(unit, max_wait=2.0, tries=4)  # a few tries: shutdown must not hang
        except DBAPIError as exc:
            # Still claimed by this worker: the reaper marks them lost once it is gone.
            self.rt.log("give_back_failed", jobs=len(ready), error=first_line(exc))
            return
        self.rt.log("jobs_given_back", count=len(ready))

    def _wait_running(self, deadline: float, *, interruptible: bool = True) -> None:
        while self.running and time.monotonic() < deadline:
            if self.rt.hard_stop.wait(0.05) and interruptible:
                return

    def _stop_all(self, reason: str, *, kill: bool = False) -> None:
        with self.lock:
            runs = list(self.running.values())
        for run in runs:
            run.stop_reason = reason
            if kill:
                run.kill()
        for module in registry.engine_modules() if kill else ():
            module.kill_all()  # containers: no process group of ours to kill
        self.rt.log("stopping_jobs", count=len(runs), reason=reason.replace(" ", "_"))
