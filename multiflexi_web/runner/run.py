"""Running one claimed job: work directory, environment, argv, the module, output, finish.

A short job touches the database once more after its claim: its finish (status, command,
environment, output, artifacts, counters), recorded by the daemon's Finisher together with other
finishes and the claim of successors. A job that runs longer than SYNC_FIRST also records its
command, environment and pid, streams its output and beats its heartbeat while it runs: in the
daemon those live syncs run on the LiveSync thread (runner/live_sync.py), never on the job's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select, text

from multiflexi_web.db.engine import begin_write
from multiflexi_web.db.raw import driver
from multiflexi_web.db.retry import LINK, retry, safe_rollback
from multiflexi_web.errors import first_line
from multiflexi_web.executors import registry
from multiflexi_web.executors.base import (
    AppInfo,
    AttemptFence,
    AttemptGone,
    Cleared,
    ExecutorModule,
    JobSpec,
    RunAs,
    RunResult,
)
from multiflexi_web.extensions import db
from multiflexi_web.models import Job, JobStatus
from multiflexi_web.runner import fence
from multiflexi_web.runner.actions import Handed
from multiflexi_web.runner.lease import Lease
from multiflexi_web.runner.live_sync import LiveSync
from multiflexi_web.runner.unit import RETRY_MAX_WAIT, writing
from multiflexi_web.security.masking import JobMasks
from multiflexi_web.services.actions import context as action_context
from multiflexi_web.services.actions import runs
from multiflexi_web.services.actions.context import DeliveryFacts
from multiflexi_web.services.jobs import artifacts, onetime, output
from multiflexi_web.services.jobs import inputs as job_inputs
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import ClaimedJob
from multiflexi_web.services.jobs.command import CommandError, fill_argv
from multiflexi_web.services.jobs.environment import (
    RESULT_FILE,
    ResolvedEnv,
    TemplateContext,
    resolve,
)
from multiflexi_web.services.jobs.output import Batch
from multiflexi_web.services.jobs.transitions import Outcome, Queued

log = logging.getLogger("multiflexi.executor")
T = TypeVar("T")
SYNC_FIRST = 0.3  # a job shorter than this touches the database only when it ends
# Its template's cached delivery facts go with its action runs only if its context was read
# (checked against the configuration epoch) this recently: a config changed while a longer job
# ran must reach its deliveries, which then read it (the dispatcher's usual path).
FACTS_FRESH = 1.0
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO off")
PENDING_MAX = 1024 * 1024  # ...unless its output would make the daemon hold more than this
# A job whose output outruns its live syncs waits for the one under way past this much.
BACKLOG_MAX = 4 * PENDING_MAX


@dataclass(frozen=True)
class RunSettings:
    tmp_dir: Path
    artifact_dir: Path
    inline_max: int
    cap_bytes: int
    job_timeout: int
    kill_grace: float
    keep_workdir_on_failure: bool
    heartbeat_every: float
    run_as: RunAs | None = None  # jobs run as this user (the daemon is root or has the caps)
    worker_id: int | None = None
    installation: str = ""  # labelled on engine objects (models/installation.py)


class JobRun:
    """One job from claim to finish; it is also the JobIO the executor module talks to."""

    def __init__(
        self,
        claimed: ClaimedJob,
        cfg: RunSettings,
        hard_stop: threading.Event,
        discard: Callable[[Path], None] | None = None,
        recorder: Callable[[JobRun], None] | None = None,
        lease: Lease | None = None,
        exited: Callable[[JobRun], None] | None = None,
        live: LiveSync | None = None,
    ) -> None:
        self.job, self.cfg, self.hard_stop = claimed, cfg, hard_stop
        self.lease = lease  # the executor's: lost, the job is stopped (another may run it)
        self.discard = discard or _remove
        # Records the finish: the daemon's Finisher (off this thread, batched), else here.
        self.recorder = recorder
        # Journals the outcome the moment the job's process ended (the Finisher's), so that a
        # kill -9 while the artifacts are collected records the job instead of running it again.
        self.exited = exited
        self._exit_journaled = False
        self._ended = False  # the outcome is known (ended(), or after the module returned)
        # The daemon's sync thread (else the syncs run here), the batches it is storing, and
        # the end of its sync under way (set: none is).
        self.live = live
        self._inflight: list[Batch] = []
        self._sync_done = threading.Event()
        self._sync_done.set()
        self.outcome = Outcome(JobStatus.FAILED)
        self.rows: list[dict[str, Any]] = []
        self.sink = output.OutputSink(claimed.id, cfg.cap_bytes)
        self.workdir = cfg.tmp_dir / f"job-{claimed.id}"
        self.pid: int | None = None
        self.stop_reason: str | None = None  # set by the daemon: shutdown
        self.cancelled = False
        self.handed_over = False  # to the recorder: its finish will be recorded
        self._meta: dict[str, Any] = {}
        self._meta_saved = False
        self._t0 = time.monotonic()
        self._next_sync = self._t0 + SYNC_FIRST
        self._unsent: list[Batch] = []
        self.masks = JobMasks()  # the job's known secret values, once its env is resolved
        # Unknown until its context is read: queue, with every trigger evaluated, to be safe.
        self.has_actions = self.action_triggers = True
        self.action_facts: DeliveryFacts | None = None  # handed over with its action runs
        self._facts_read = 0.0  # when (monotonic) its context, and so those facts, was read
        self._tails: dict[str, list[bytes]] | None = None  # each stream's last stored rows
        self.queued: Queued = []  # action runs its finish queued claimed (the last try's)
        # Set while its finish hands the runs over: the artifacts' ids are then returned.
        self._handing = False
        self._artifact_ids: Callable[[], list[tuple[int, str]]] | None = None

    # -- JobIO ----------------------------------------------------------------------------------
    def started(self, pid: int | None = None, container_id: str | None = None) -> None:
        self.pid = pid
        self._meta["pid"] = pid
        if container_id:
            self._meta["container_id"] = container_id
            self._next_sync = self._t0  # recorded at once: the reaper and the portal need it

    def output(self, stream: str, data: bytes) -> None:
        if self.masks.streams:
            data = self.masks.streams[stream].feed(data)
        self.sink.add(stream, data)
        if self.sink.due() and (
            self.sink.pending_bytes >= PENDING_MAX or time.monotonic() - self._t0 >= SYNC_FIRST
        ):
            if self.sink.pending_bytes >= BACKLOG_MAX:
                self._sync_done.wait()  # the memory bound: it writes faster than we store
            self._sync(beat=False)

    def should_stop(self) -> bool:
        if self.hard_stop.is_set():
            self.stop_reason = self.stop_reason or "executor received a second SIGTERM"
            self.kill()
        if self._lease_lost():
            return True  # no database round trip: it is away, or hangs
        now = time.monotonic()
        if now >= self._next_sync or (self.sink.due() and now - self._t0 >= SYNC_FIRST):
            self._sync(beat=now >= self._next_sync)
        return self.cancelled or self.stop_reason is not None

    def _lease_lost(self) -> bool:
        if self.lease is None or not self.lease.lost():
            return False
        if self.stop_reason is None:
            self.stop_reason = (
                f"lease lost (no worker heartbeat written for {self.lease.age():.0f}s;"
                " another executor may run the job)"
            )
            log.warning("action=lease_lost job=%s", self.job.id)
        return True

    def ended(self, result: RunResult) -> None:
        """The module's process ended (not yet reaped): the outcome, and its exit entry."""
        if self._ended:
            return
        self._ended = True
        for stream, rest in self.masks.rests():
            self.sink.add(stream, rest)
        if result.error:  # it becomes the job's status reason and a line of its stderr
            result = dataclasses.replace(result, error=self.masks.text(result.error))
        self.outcome = self._outcome(result)
        if result.error:
            self.sink.add("stderr", f"multiflexi: {result.error}\n".encode())
        if self.exited is not None:
            self.exited(self)
            self._exit_journaled = True

    def kill(self) -> None:
        """Second SIGTERM: no grace for the job's process group."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    # -- while running --------------------------------------------------------------------------
    def _sync(self, *, beat: bool) -> None:
        """Stream output, record meta once, beat and read the cancel flag: on the LiveSync
        thread, one sync per job at a time (a due one waits for the next call). Never raises."""
        if not self._sync_done.is_set():
            return
        self.settle()
        self._inflight, self._unsent = [*self._unsent, self.sink.take()], []
        if beat:
            self._next_sync = time.monotonic() + self.cfg.heartbeat_every
        self._sync_done.clear()
        if self.live is None or not self.live.submit(lambda: self._sync_inflight(beat)):
            self._sync_inflight(beat)

    def _sync_inflight(self, beat: bool) -> None:
        try:
            with writing():
                self._sync_unit(beat, self._inflight)
            self._inflight = []  # stored (the job's thread reads this list, never changes it)
        except Exception as exc:  # whatever a dying connection raises: the job runs on
            safe_rollback()
            LINK.failed()
            log.warning("action=sync_failed job=%s error=%s", self.job.id, first_line(exc))
        finally:
            self._sync_done.set()

    def settle(self) -> None:
        """Wait for this job's sync under way; what it could not store is sent again later."""
        self._sync_done.wait()
        if self._inflight:
            self._unsent[:0], self._inflight = self._inflight, []

    def _sync_unit(self, beat: bool, batches: list[Batch]) -> None:
        begin_write()
        if driver(db.session()).is_pg:
            # Live output and heartbeats need not wait for the WAL to reach the disk (hundreds
            # of ms on a busy one): a server crash loses at most their last fraction of a
            # second, never a finish (that is the Finisher's, with a synchronous commit).
            db.session.execute(_ASYNC_COMMIT)
        if not self._meta_saved:
            self._meta_saved = jobs.start(self.job.id, **self._meta_fields())
        for batch in batches:
            output.store(db.session(), batch, self.job.id)
        flag = jobs.heartbeat(self.job.id) if beat else False
        db.session.commit()
        if flag is None:  # reaped as lost meanwhile (e.g. a long outage): never run twice
            self.stop_reason = self.stop_reason or "the job was no longer running in the database"
        self.cancelled = self.cancelled or bool(flag)

    def _meta_fields(self) -> dict[str, Any]:
        return {
            "pid": self._meta.get("pid"),
            "command": self._meta.get("command", []),
            "env": self._meta.get("env", []),
            "container_id": self._meta.get("container_id"),
        }

    # -- the whole run --------------------------------------------------------------------------
    def run(self, ctx: TemplateContext | None, problem: str | None = None) -> Outcome:
        result, env = RunResult(None, error=problem), None
        if ctx is not None:
            # A template without actions: no outbox statement; with only "always" ones: a cheap one.
            self.has_actions, self.action_triggers = ctx.has_actions, ctx.action_triggers
            self.action_facts = ctx.action_facts
            self._facts_read = time.monotonic()
        if ctx is not None and problem is None:
            result, env = self._execute(ctx)
        self.ended(result)  # done already if the module said so before reaping its process
        outcome = self.outcome
        self.settle()  # only now: the exit is journaled whatever a sync under way waits for
        try:
            self.rows = self.with_retries(lambda: self._collect(ctx, env))
        except Exception as exc:  # the finish is recorded all the same (without the artifacts)
            log.error("action=collect_failed job=%s error=%s", self.job.id, first_line(exc))
        if self.action_facts is not None:  # the tails its action runs are handed over with
            self._tails = self._memory_tails()
        self._unsent.append(self.sink.take())
        self._cleanup(outcome)  # everything kept is in memory or the artifact store by now
        if self.recorder is not None:
            self.handed_over = True
            self.recorder(self)
        else:
            self._persist(self._finish_alone)
            self.recorded()
        return outcome

    def recorded(self) -> None:
        """The finish is committed: let go of what was kept for it."""
        self._unsent.clear()
        self.rows = []

    def _memory_tails(self) -> dict[str, list[bytes]] | None:
        tails = {s: self.sink.memory_tail(s, action_context.TAIL_CHUNKS) for s in output.STREAMS}
        if any(t is None for t in tails.values()):
            return None  # some output is stored already: the dispatcher reads the tails
        return {s: t for s, t in tails.items() if t is not None}

    def handed(self, owner_id: int) -> list[Handed]:
        """The action runs its committed finish queued claimed by `owner_id`, each with what
        its delivery needs where this run holds it (else the dispatcher reads it)."""
        facts, env = self.action_facts, self._meta.get("env", [])  # the env its finish wrote
        if time.monotonic() - self._facts_read > FACTS_FRESH:
            facts = None  # maybe changed since: the dispatcher reads them
        arts = self._stored_artifacts() if self.queued else None
        out = []
        for run_id, job_id, action, config_id, key, attempts in self.queued:
            claimed = runs.Claimed(run_id, job_id, action, config_id, key, attempts, owner_id)
            found = None
            if facts is not None:
                job = (job_id, self.outcome.status.value, self.outcome.exit_code, env)
                found = action_context.from_memory(facts, claimed, job, self._tails, arts)
            out.append(Handed(claimed, found))
        return out

    def _stored_artifacts(self) -> list[tuple[int, str]] | None:
        """(id, file name) of the artifacts its finish stored; None: their ids are unknown."""
        if not self.rows:
            return []
        return self._artifact_ids() if self._artifact_ids is not None else None

    def _execute(self, ctx: TemplateContext) -> tuple[RunResult, ResolvedEnv | None]:
        try:
            self._make_workdir()
            once = onetime.unseal(self.job.env_override)
            env = resolve(
                ctx,
                job_id=self.job.id,
                executor=self.job.executor,
                workdir=self.workdir,
                override=once.values,
                override_secret=once.secret,
                uploads=self._inputs(ctx),
                slot_at=self.job.slot_at,
            )
            self._hand_workdir()
            argv = fill_argv(ctx.executable, ctx.cmd_words, env.values)
            module = registry.get(self.job.executor)
        except (CommandError, KeyError, OSError, ValueError) as exc:
            return RunResult(None, error=str(exc.args[0] if exc.args else exc)), None
        for dropped in env.dropped:
            log.warning("action=env_dropped job=%s name=%s", self.job.id, dropped.split()[0])
            self.sink.add("stderr", f"multiflexi: environment ignored: {dropped}\n".encode())
        for note in env.unfilled:
            self.sink.add("stderr", f"multiflexi: environment: {note}\n".encode())
        self.masks = JobMasks(env.secret_values(), output.STREAMS if ctx.mask_output else ())
        self._meta.update(command=self._shown_argv(ctx, env), env=self._shown_env(env))
        spec = JobSpec(
            job_id=self.job.id,
            argv=tuple(argv),
            env=env.values,
            workdir=self.workdir,
            app=AppInfo(ctx.application_name, ctx.executable, ctx.ociimage, ctx.kubernetes),
            timeout=float(ctx.timeout or self.cfg.job_timeout) or None,
            kill_grace=self.cfg.kill_grace,
            secret_keys=env.secret_keys,
            options=dict(ctx.options),
            run_as=self.cfg.run_as,
            worker_id=self.cfg.worker_id,
            installation=self.cfg.installation,
            previous_attempt=self.job.retry_of,
        )
        fenced = self._fence(module, spec)
        if fenced is not None:
            return fenced, env
        try:
            return module.run(spec, self), env
        except Exception as exc:
            log.exception("action=module_error job=%s", self.job.id)
            return RunResult(None, error=f"executor module {module.name!r} failed: {exc}"), env

    def _fence(self, module: ExecutorModule, spec: JobSpec) -> RunResult | None:
        """A retry: end what runs of the attempt it replaces: its processes on this host
        (runner/fence.py) and, for a module running jobs elsewhere, its engine objects. None:
        the retry may run; else its result without running (the fence failed, or the previous
        attempt's container had ended: its work was done, and is recorded, not done again)."""
        previous = self.job.retry_of
        if previous is None:
            return None
        module = self._module_of(previous, module)
        try:
            killed = fence.clear(previous, self.cfg.tmp_dir / f"job-{previous}")
            cleared = (
                module.clear_attempt(spec, self) if isinstance(module, AttemptFence) else Cleared()
            )
        except (fence.LeftoverError, AttemptGone, OSError) as exc:
            return RunResult(None, error=str(exc))
        if killed:
            log.warning(
                "action=leftovers_killed job=%s previous=%s pids=%s", self.job.id, previous, killed
            )
            note = f"multiflexi: killed {len(killed)} leftover process(es) of job {previous}\n"
            self.sink.add("stderr", note.encode())
        if cleared.removed:
            log.warning(
                "action=attempt_removed job=%s previous=%s module=%s objects=%s exit=%s",
                self.job.id, previous, module.name, ",".join(cleared.removed).replace(" ", ":"),
                cleared.exit_code,
            )  # fmt: skip
            note = (
                f"multiflexi: stopped and removed job {previous}'s {', '.join(cleared.removed)}\n"
            )
            self.sink.add("stderr", note.encode())
        # Its container had ended: the module handed its exit over (executors/base.py
        # previous_ended) before removing it; the work is not run again.
        return None if cleared.exit_code is None else RunResult(cleared.exit_code)

    def _module_of(self, previous: int, mine: ExecutorModule) -> ExecutorModule:
        """The module the previous attempt ran with: its template's module may have changed
        since (a retry takes the template's), and its objects are where that one put them."""

        def read() -> str | None:
            found = db.session.scalar(select(Job.executor).where(Job.id == previous))
            db.session.commit()  # end the read
            return found

        name = self.with_retries(read)
        if name is None or name == mine.name:
            return mine
        try:
            return registry.get(name)
        except KeyError:  # a module no longer installed here: nothing of it to reach
            log.warning("action=fence_module_unknown job=%s previous=%s module=%s",
                        self.job.id, previous, name)  # fmt: skip
            return mine

    def _shown_argv(self, ctx: TemplateContext, env: ResolvedEnv) -> list[str]:
        """The argv as stored and shown: secret values masked (the real one lives only in
        this process's memory and the job's)."""
        words = fill_argv(ctx.executable, ctx.cmd_words, env.masked_values())
        return [self.masks.text(w) for w in words]

    def _shown_env(self, env: ResolvedEnv) -> list[dict[str, Any]]:
        """The environment as stored and shown: sources kept, secret values (also inside
        other values) masked."""
        return [{**e, "value": self.masks.text(str(e["value"]))} for e in env.entries]

    def _inputs(self, ctx: TemplateContext) -> dict[str, str]:
        """Write the uploaded input files into the work directory; field -> path."""
        if not (self.job.has_uploads or ctx.upload_fields):
            return {}  # the common case: no query at all

        def load() -> dict[str, tuple[str, bytes]]:
            files = job_inputs.load(
                db.session(), self.job.id, ctx.runtemplate_id, templated=bool(ctx.upload_fields)
            )
            db.session.commit()  # end the read: the job may run for hours
            return files

        owner = (self.cfg.run_as.uid, self.cfg.run_as.gid) if self.cfg.run_as else None
        return job_inputs.materialise(self.workdir, self.with_retries(load), owner)

    def _make_workdir(self) -> None:
        """The job's directory, the daemon's alone (0700) until _hand_workdir(): while the
        daemon writes the uploads into it, no process of the job user (another company's job
        running now, or one left behind) may plant a link there to write through as root."""
        try:
            self.workdir.mkdir(mode=0o700)
        except FileExistsError:  # left by a crash (job ids are unique, the files are stale)
            shutil.rmtree(self.workdir)
            self.workdir.mkdir(mode=0o700)
        except FileNotFoundError:
            self.workdir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.workdir.mkdir(mode=0o700)

    def _hand_workdir(self) -> None:
        if self.cfg.run_as is not None:  # the job's own: the daemon (root or caps) still reads it
            os.chown(self.workdir, self.cfg.run_as.uid, self.cfg.run_as.gid)

    def _outcome(self, r: RunResult) -> Outcome:
        if r.timed_out:
            return Outcome(JobStatus.TIMED_OUT, r.exit_code, "timed out (process group killed)")
        if r.cancelled and self.cancelled:
            return Outcome(JobStatus.CANCELLED, r.exit_code, "cancelled on request while running")
        if self.lease_lost_after_success(r):
            return Outcome(JobStatus.SUCCEEDED, 0)
        if r.cancelled or self.stop_reason:
            return Outcome(JobStatus.FAILED, r.exit_code, f"stopped: {self.stop_reason}")
        if r.error:
            return Outcome(JobStatus.FAILED, r.exit_code, r.error)
        if r.exit_code == 0:
            return Outcome(JobStatus.SUCCEEDED, 0)
        return Outcome(JobStatus.FAILED, r.exit_code, f"exit code {r.exit_code}")

    def lease_lost_after_success(self, r: RunResult) -> bool:
        """Stopped for a lost lease, but the program said it succeeded (it ended as the stop
        came, or handled the TERM): its work is done, and a failure would be re-run."""
        return bool(self.stop_reason and self.stop_reason.startswith("lease lost")) and (
            r.exit_code == 0 and not r.error and not r.timed_out
        )

    def _collect(
        self, ctx: TemplateContext | None, env: ResolvedEnv | None
    ) -> list[dict[str, Any]]:
        """Artifacts: the output streams, then RESULT_FILE and files matching the app's patterns.

        On the job's own thread: the worker heartbeat thread and the main loop (signals) go on
        meanwhile, and the scan is bounded (RE2 patterns, artifacts.SCAN_MAX files)."""
        col = artifacts.Collector(self.job.id, self.cfg.artifact_dir, self.cfg.inline_max)
        try:
            self._collect_streams(col)
            result = env.values.get(RESULT_FILE) if env is not None else None
            if ctx is not None and (result or ctx.artifact_patterns):
                for path in artifacts.files_to_keep(
                    self.workdir, ctx.artifact_patterns, Path(result) if result else None
                ):
                    # One file that cannot be kept (gone, unreadable, a full disk) loses only
                    # itself, not every file found after it.
                    try:
                        col.add_job_file(self.workdir, path, str(path.relative_to(self.workdir)))
                    except OSError as exc:
                        log.warning(
                            "action=artifact_failed job=%s file=%r error=%s",
                            self.job.id,
                            str(path),
                            exc,
                        )
        except OSError as exc:
            log.warning("action=artifact_failed job=%s error=%s", self.job.id, exc)
        return col.rows

    def _collect_streams(self, col: artifacts.Collector) -> None:
        for stream in output.STREAMS:
            content = self.sink.memory_content(stream)
            if content is not None:
                if content:
                    col.add_chunks(f"{stream}.txt", [content])
                continue
            self._flush_all()
            st = self.sink.streams[stream]
            chunks = output.stored_with_marker(db.session(), self.job.id, stream, st)
            col.add_chunks(f"{stream}.txt", chunks, size=st.total - st.dropped)

    def _flush_all(self) -> None:
        self._unsent.append(self.sink.take())

        def send() -> None:
            begin_write()
            for batch in self._unsent:
                output.store(db.session(), batch, self.job.id, counters=False)

        self._persist(send)
        self._unsent.clear()
        if self.exited is not None and self._exit_journaled:
            self.exited(self)  # again: the exit entry must not store those rows a second time

    def _finish_alone(self) -> None:
        begin_write()
        self.record_finish()

    def record_finish(self) -> bool:
        """Inside the caller's write transaction: the final status, output, artifacts and the
        RunTemplate's counters (its row, shared by all its jobs, locked last)."""
        return self._finish(then=self.store_rows, count=True)

    def record_status(self, deliver_by: int | None = None) -> bool:
        """Only the final status: the caller then stores the rows and adds the counters.
        `deliver_by`: its action runs are queued claimed by that worker (see handed())."""
        self._handing = deliver_by is not None and self.has_actions
        return self._finish(then=None, count=False, deliver_by=deliver_by)

    def send_success(self, deliver_by: int | None = None) -> Callable[[], bool]:
        """The succeeded status, sent without waiting (see jobs.send_success)."""
        self._handing = deliver_by is not None and self.has_actions
        answer = jobs.send_success(
            self.job.id,
            self._record(),
            actions=self.has_actions,
            conditional=self.action_triggers,
            deliver_by=deliver_by,
        )

        def ours() -> bool:
            ok, self.queued = answer()
            return ok

        return ours

    def journal_entry(self, worker_id: int, *, exited: bool = False) -> dict[str, Any]:
        """The finish as plain data, for the journal (replay.py records it from there).
        `exited`: written as the process ended, before the artifacts are collected: the output
        not yet stored, no artifacts (the entry written at the hand-over supersedes it)."""
        rec, job, out = self._record(), self.job, self.outcome
        # A sync may still be storing its batches: they are in the exit entry all the same
        # (replay skips rows already stored).
        batches = [*self._inflight, *self._unsent, self.sink.peek()] if exited else self._unsent
        return {
            "job": job.id,
            "worker": worker_id,
            "rt": job.runtemplate_id,
            "started_at": job.started_at.isoformat(),
            "status": out.status.value,
            "exit": out.exit_code,
            "reason": out.reason,
            "pid": rec.pid,
            "command": rec.command,
            "env": rec.env,
            "counters": rec.counters,
            "output": [{"rows": b.rows, "deletes": b.deletes} for b in batches],
            "artifacts": [] if exited else self.rows,
            "exited_only": exited,
        }

    def _record(self) -> jobs.RunRecord:
        meta = self._meta_fields()
        return jobs.RunRecord(meta["pid"], meta["command"], meta["env"], self.sink.counters())

    def _finish(
        self, *, then: Callable[[], None] | None, count: bool, deliver_by: int | None = None
    ) -> bool:
        record = self._record()
        job = self.job
        self.queued = []  # a try that was rolled back queued nothing
        if jobs.finish(
            job.id,
            job.runtemplate_id,
            job.started_at,
            self.outcome,
            record,
            then,
            count=count,
            actions=self.has_actions,
            conditional=self.action_triggers,
            deliver_by=deliver_by,
            queued=self.queued,
        ):
            return True
        log.warning("action=finish_skipped job=%s reason=no_longer_running", job.id)
        return False

    def store_rows(self) -> None:
        """The output and artifact rows kept for the finish (no result is read: pipelinable)."""
        for batch in self._unsent:
            output.store(db.session(), batch, self.job.id, counters=False)
        if self._handing and self.rows:  # its action runs are handed over with their links
            self._artifact_ids = artifacts.store_returning(db.session(), self.rows)
        else:
            self._artifact_ids = None
            artifacts.store(db.session(), self.rows)

    def _persist(self, fn: Callable[[], None]) -> None:
        """Run a unit of work until it commits; a database outage only delays it."""

        def unit() -> None:
            with writing():
                fn()
                db.session.commit()

        self.with_retries(unit)

    def with_retries(self, fn: Callable[[], T]) -> T:
        return retry(fn, self.hard_stop, f"job={self.job.id}", max_wait=RETRY_MAX_WAIT)

    def _cleanup(self, outcome: Outcome) -> None:
        keep = self.cfg.keep_workdir_on_failure and outcome.status is not JobStatus.SUCCEEDED
        if not keep:
            self.discard(self.workdir)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
