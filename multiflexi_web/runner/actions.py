"""The action dispatcher: delivers post-job action runs (in the executor's delivery process,
runner/action_process.py; in a thread of the executor if that process died).

Its loop does every database write, in one transaction per pass: the attempts that ended since
the last pass are recorded (their effects applied), due runs are claimed (services/actions/
runs.py: leased, skip-locked) for the free delivery threads only, and what their deliveries
need is read for all of them at once. The delivery threads hold no transaction: each builds its
run's context, performs the action with the per-attempt timeout and hands the outcome back. A
slow peer holds one thread, never the others or the loop; under load the attempts of several
deliveries share one commit instead of paying a transaction and five queries each.

A claim is a lease, and the loop stamps the leases of the runs still being delivered again
every third of it: an attempt that outlives its lease (a peer answering slowly, a long
command) must not be claimed and delivered a second time by another executor meanwhile. Only
a dispatcher that stopped passing (its process killed, its database connection gone for a
lease) lets its runs go to another executor, and an attempt stuck past every bound of its
steps (settings.stuck_after) is no longer stamped, so that it is retried elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from flask import Flask
from sqlalchemy.exc import DBAPIError

from multiflexi_web.actions import registry
from multiflexi_web.actions.base import ActionContext, Outcome
from multiflexi_web.db.engine import begin_write
from multiflexi_web.db.retry import is_transient, retry
from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db
from multiflexi_web.runner.delivery_threads import DeliveryThreads
from multiflexi_web.runner.unit import RETRY_MAX_WAIT, writing
from multiflexi_web.security.secrets import SecretError
from multiflexi_web.services.actions import context, runs, values
from multiflexi_web.services.actions.context import Gathered, JobFacts
from multiflexi_web.services.actions.settings import ActionSettings

log = logging.getLogger("multiflexi.actions")
POLL = 0.1  # seconds between two passes while deliveries are under way
# Idle: a finish that queues runs wakes this dispatcher itself, so the poll only finds runs
# queued elsewhere (a retry from the portal, another executor's leftovers) or come due later;
# at 0.1 s it was most of an idle executor's CPU (1.3% of a core against 0.1% without it).
IDLE_POLL = 1.0
# Handed runs a dispatcher keeps waiting for a thread, at most (times its threads, at least
# HANDED_MIN): past it they go back to pending, in the database, not in this process's memory
# (a peer that hangs for the attempt timeout while the executor finishes hundreds of jobs a
# second would otherwise grow this queue without a bound).
HANDED_PER_THREAD, HANDED_MIN = 8, 256
# A pass that would only record attempts waits at most `record_linger` for more of them
# (_linger), unless RECORD_BATCH of them wait already.
RECORD_BATCH = 64


class Nudged(Protocol):
    """A dispatcher of this process (a thread, or the handle on a child process)."""

    def nudge(self) -> None: ...


class Receiver(Protocol):
    """The executor's own dispatcher, taking the runs its finishes queued claimed for it."""

    def owner(self) -> int | None: ...

    def hand_over(self, items: list[Handed]) -> None: ...


_STARTED: weakref.WeakSet[Nudged] = weakref.WeakSet()
_RECEIVER: list[Receiver] = []  # at most one: the executor's delivery process handle


def track(dispatcher: Nudged) -> None:
    _STARTED.add(dispatcher)


def runs_queued() -> None:
    """This process's finisher committed action runs: an idle dispatcher looks now rather than
    at its next poll (runs queued by other executors are found by polling)."""
    for dispatcher in list(_STARTED):
        dispatcher.nudge()


@dataclass(frozen=True)
class Handed:
    """A run a finish queued claimed by this executor, handed to its dispatcher in memory."""

    run: runs.Claimed
    found: Gathered | None  # what its delivery reads; None: the dispatcher reads it


def receive_handed(receiver: Receiver | None) -> None:
    """Set (or with None, clear) where this process's finishes hand their runs over."""
    _RECEIVER[:] = [receiver] if receiver is not None else []


def handed_to() -> int | None:
    """The worker id finishes queue action runs claimed by, if a dispatcher here takes them in
    memory; None: they queue them pending, for any dispatcher to claim."""
    return _RECEIVER[0].owner() if _RECEIVER else None


def hand_over(items: list[Handed]) -> None:
    """Committed runs queued claimed by handed_to(): its dispatcher delivers them without
    claiming or reading them. Should it never get them (it died), their leases lapse and any
    dispatcher claims them then."""
    if items and _RECEIVER:
        _RECEIVER[0].hand_over(items)


@dataclass(frozen=True)
class Work:
    """What one pass writes and reads in its transaction."""

    ended: list[Attempt] = field(default_factory=list)  # attempts to record
    free: int = 0  # threads to claim due runs for
    renew: list[int] = field(default_factory=list)  # runs whose leases are stamped again
    read: list[Handed] = field(default_factory=list)  # handed runs lacking a fact
    spilled: list[int] = field(default_factory=list)  # handed runs going back to pending

    def __bool__(self) -> bool:
        return bool(self.ended or self.free or self.renew or self.read or self.spilled)


@dataclass(frozen=True)
class Attempt:
    """A delivery that ended, waiting for the loop to record it."""

    run: runs.Claimed
    outcome: Outcome
    secrets: list[str]  # masked in the recorded response and error


class Dispatcher:
    def __init__(
        self, app: Flask, owner_id: int, settings: ActionSettings, stop: threading.Event
    ) -> None:
        self.app, self.owner_id, self.s, self.stop = app, owner_id, settings, stop
        # Room beyond `threads` for deliveries that replace stuck ones (see _renewal_due): a
        # stuck thread cannot be stopped, only stop counting towards the threads in use.
        spare = max(1, settings.threads // 4)
        self.pool = DeliveryThreads(settings.threads + spare, "action")
        self._spare = spare
        self.thread = threading.Thread(target=self._loop, name="actions", daemon=True)
        self._lock = threading.Lock()
        self._delivering = 0  # threads claimed for (delivering, or about to)
        self._ended: list[Attempt] = []  # performed, not yet recorded
        self._inflight: dict[int, float] = {}  # run -> when its delivery was handed a thread
        self._stuck: set[int] = set()  # runs under way past stuck_after (logged once)
        self._replaced: set[int] = set()  # stuck ones no longer counted as delivering
        self._renewed = time.monotonic()  # when those runs' leases were last stamped
        self._wake = threading.Event()  # an attempt ended: record it, claim for its thread
        self._urgent = threading.Event()  # a pass must not wait to batch records (_linger)
        # Bounded by the lease: its renewals come from passes (a third of it, plus this).
        self._record_linger = min(settings.record_linger, settings.lease / 6)
        self._halt = threading.Event()  # drain() took the loop's place
        self._last_work = -math.inf  # monotonic time of the last pass that recorded or claimed
        self._backlog = False  # that pass claimed for every free thread
        self._handed: deque[Handed] = deque()  # claimed for us by our finishes, not yet started
        self._handed_max = max(HANDED_MIN, HANDED_PER_THREAD * settings.threads)
        self._spilled: list[int] = []  # handed past _handed_max: released by the next pass
        self._asked = True  # nudged since the last claim: due runs may be waiting
        self._claimed_at = -math.inf  # monotonic time of the last claim from the database

    def start(self) -> Dispatcher:
        self.thread.start()
        track(self)
        return self

    def nudge(self) -> None:
        with self._lock:
            self._asked = True
            idle = not self._delivering
        self._urgent.set()  # due runs may wait for a claim: no batching of records
        if idle:  # a busy one is woken by its deliveries ending (in batches)
            self._wake.set()

    def hand_over(self, items: list[Handed]) -> None:
        """Runs claimed for this dispatcher by its executor's finishes: delivered without a
        claim, and without reading what the executor already gave. Those it gave everything
        for start now on the free threads, without a transaction or a wait for the loop (which
        records their attempts later, several to a transaction); the others wait for a pass."""
        now = time.monotonic()
        with self._lock:
            self._handed.extend(items)
            ready: list[tuple[runs.Claimed, Gathered]] = []
            if not self.stop.is_set():
                while self._handed and self._delivering < self.s.threads:
                    found = self._handed[0].found
                    if found is None or found.artifacts is None:
                        break
                    h = self._handed.popleft()
                    self._delivering += 1
                    self._inflight[h.run.id] = now
                    ready.append((h.run, found))
            while len(self._handed) > self._handed_max:  # the newest go back to pending
                self._spilled.append(self._handed.pop().run.id)
            waiting = bool(self._handed) and self._delivering < self.s.threads
            spilled = bool(self._spilled)
        self._start(ready)
        if waiting or spilled:  # a pass is due; a full pool is woken by deliveries ending
            self._urgent.set()
            self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Stop passing; wait for deliveries under way up to `timeout` (default: the attempt
        timeout and 10 s, within the executor's wait for its delivery process), record what
        ended. A delivery still under way then is abandoned, its run left to its lease."""
        if timeout is None:
            timeout = self.s.timeout + 10
        _STARTED.discard(self)
        self.stop.set()
        self._halt.set()  # a lingering loop ends now too
        self._urgent.set()
        self._wake.set()  # an idle loop waits up to IDLE_POLL: it ends now
        deadline = time.monotonic() + timeout
        self.thread.join(timeout)
        abandoned = self.pool.shutdown(max(0.0, deadline - time.monotonic()))
        if abandoned:  # their runs are retried once their leases lapse
            log.warning("action=deliveries_abandoned threads=%s", ",".join(abandoned))
        with contextlib.suppress(Exception):  # unrecorded ones are retried when leases expire
            while self._pending():
                self._pass(claim=False)
        self._release_handed()

    def _release_handed(self) -> None:
        """Handed runs never started go back to pending at once (any dispatcher's to claim)
        rather than waiting out their leases; if this fails, the leases still free them."""
        with self._lock:
            left = [h.run.id for h in self._handed] + self._spilled
            self._handed.clear()
            self._spilled = []
        if not left:
            return
        try:
            with self.app.app_context(), writing():
                begin_write()
                runs.release(left, self.owner_id)
                db.session.commit()
        except Exception as exc:
            log.warning("action=release_failed runs=%s error=%r", len(left), exc)

    def _loop(self) -> None:
        while not (self.stop.is_set() or self._halt.is_set()):
            try:
                self._linger()
                if not self._pass(claim=True):
                    self._wake.wait(POLL if self.busy() else IDLE_POLL)
                    self._wake.clear()
            except Exception as exc:  # the database is away: the next pass tries again
                log.warning("action=dispatch_failed error=%r", exc)
                self.stop.wait(1.0)

    def _linger(self) -> None:
        """A pass waits until `linger` has passed since the last one that did work, unless that
        one claimed a thread for every run it could (a backlog is worked off at once). Runs
        queued one by one by a busy executor are then claimed, read and recorded several to a
        transaction instead of one or two: a pass costs ~1.5 ms of CPU however few runs it
        carries, and this process's CPU is taken from the jobs. An idle dispatcher's first pass
        does not wait (a lone job's delivery is as prompt as before).

        A pass that would only record the attempts that ended waits `record_linger` after the
        last (250 ms), unless a run needs claiming or reading (a nudge, handed runs waiting) or
        RECORD_BATCH attempts wait: handed runs' deliveries start without a pass, so nothing but
        their records waits, and a crash meanwhile only repeats a delivery whose record was
        lost, as a crash during its request would. At 150 handed WebHooks a second a pass
        carried ~5 records after 30 ms and ~20 after 150 ms; a pass costs ~1.3 ms of CPU
        however many it carries, and the delivery process's CPU per run fell by a quarter
        (1.38 to 1.01 ms, bench/actions.py --parts overhead, PostgreSQL)."""
        if self._backlog:
            return
        gap = self._last_work + self.s.linger - time.monotonic()
        if gap > 0:
            self._halt.wait(gap)
        gap = self._last_work + self._record_linger - time.monotonic()
        if gap > 0 and not self._urgent.is_set() and self._records_only():
            self._urgent.wait(gap)
        self._urgent.clear()

    def _records_only(self) -> bool:
        """Nothing but ended attempts (fewer than RECORD_BATCH) waits for a pass."""
        with self._lock:
            waiting = self._asked or self._handed or self._spilled
            return not waiting and 0 < len(self._ended) < RECORD_BATCH

    def tick(self) -> int:
        """Record the attempts that ended, start handed runs and claim due ones for the free
        threads; how many were started."""
        return self._pass(claim=True, ask=True)

    def busy(self) -> int:
        """Deliveries under way or ended and not yet recorded."""
        with self._lock:
            return self._delivering + len(self._ended)

    def _pending(self) -> bool:
        with self._lock:
            return bool(self._ended)

    def drain(self) -> None:
        """Deliver every run due now before returning (retries planned later are left); the
        loop is stopped first: both wait on the one wake-up event, and the loop clearing it
        left this thread waiting out a whole POLL between its passes."""
        self._halt.set()
        self._urgent.set()
        self._wake.set()
        if self.thread.is_alive():
            self.thread.join()
        while self._pass(claim=True, ask=True) or self.busy():
            self._wake.wait(POLL)
            self._wake.clear()

    def _pass(self, *, claim: bool, ask: bool = False) -> int:
        now = time.monotonic()
        with self._lock:
            ended, self._ended = self._ended, []
            free = self.s.threads - self._delivering if claim else 0
            taken = [self._handed.popleft() for _ in range(min(free, len(self._handed)))]
            free -= len(taken)
            # The database is asked for due runs when nudged, or a poll's time after the last
            # claim: handed runs need no claim, and one per pass was a pass's biggest cost.
            if free and not (ask or self._asked or now - self._claimed_at >= POLL):
                free = 0
            if free:
                self._asked, self._claimed_at = False, now
            self._delivering += free + len(taken)  # held for this pass's claims
            self._inflight.update((h.run.id, now) for h in taken)
            renew = self._renewal_due()
            backlog = bool(self._handed)
            spilled, self._spilled = self._spilled, []
        # Handed runs whose facts the executor did not hold all, or whose artifacts it stored
        # without learning their ids: read in this pass.
        read = [h for h in taken if h.found is None or h.found.artifacts is None]
        work = Work(ended, free, renew, read, spilled)
        if not work:
            if taken:  # no transaction at all: the executor claimed them and gave their facts
                self._start([(h.run, _facts_of(h, {})) for h in taken])
                self._backlog = backlog
            return len(taken)
        self._last_work = now
        try:
            claimed, found = self._exchange(work)
        except BaseException:
            with self._lock:
                self._ended[:0] = ended  # recorded by a later pass (their leases hold)
                self._spilled[:0] = spilled
                self._handed.extendleft(reversed(taken))  # started by a later pass
                for h in taken:
                    self._inflight.pop(h.run.id, None)
                self._delivering -= free + len(taken)
            raise
        full = bool(free) and len(claimed) == free  # more may be due: ask again next pass
        with self._lock:
            self._delivering -= free - len(claimed)
            now = time.monotonic()
            self._inflight.update((c.id, now) for c in claimed)
            self._asked = self._asked or full
        self._backlog = backlog or full
        self._start([(h.run, _facts_of(h, found)) for h in taken])
        self._start([(c, found[c.id]) for c in claimed])
        return len(taken) + len(claimed)

    def _start(self, deliveries: list[tuple[runs.Claimed, Gathered]]) -> None:
        for c, found in deliveries:
            self.pool.submit(self.deliver, c, found)

    def _renewal_due(self) -> list[int]:
        """The runs whose leases this pass stamps again: those under way and not stuck, once a
        third of the lease has passed since the last stamp (the lock is held)."""
        now = time.monotonic()
        if not (self._inflight or self._handed) or now - self._renewed < self.s.lease / 3:
            return []
        self._renewed = now
        due = [h.run.id for h in self._handed]  # claimed for us, waiting for a thread
        for run_id, since in sorted(self._inflight.items()):
            if now - since < self.s.stuck_after:
                due.append(run_id)
            elif run_id not in self._stuck:
                self._stuck.add(run_id)
                # Its thread no longer counts as delivering while spare threads remain, so the
                # other runs are not held up by it.
                replaced = len(self._replaced) < self._spare
                if replaced:
                    self._replaced.add(run_id)
                    self._delivering -= 1
                log.warning(
                    "action=delivery_stuck run=%s seconds=%.0f thread_replaced=%s",
                    run_id, now - since, replaced,
                )  # fmt: skip
        return due

    def _exchange(self, work: Work) -> tuple[list[runs.Claimed], dict[int, Gathered]]:
        """One transaction; an attempt whose record is refused (not the database being away)
        is left to its lease, so it cannot hold up the others."""
        try:
            return self._retried(lambda: self._write(work))
        except DBAPIError as exc:
            if is_transient(exc) or not work.ended:
                raise
        for attempt in work.ended:
            try:
                self._retried(functools.partial(self._write, Work([attempt])))
            except DBAPIError as exc:
                if is_transient(exc):
                    raise
                log.warning(
                    "action=record_refused run=%s error=%s", attempt.run.id, first_line(exc)
                )
        return self._retried(lambda: self._write(replace(work, ended=[])))

    def _retried(
        self, fn: Callable[[], tuple[list[runs.Claimed], dict[int, Gathered]]]
    ) -> tuple[list[runs.Claimed], dict[int, Gathered]]:
        return retry(fn, self.stop, "actions", max_wait=RETRY_MAX_WAIT)

    def _write(self, work: Work) -> tuple[list[runs.Claimed], dict[int, Gathered]]:
        ended, read = work.ended, work.read
        with self.app.app_context(), writing():
            begin_write()
            if work.renew:
                runs.renew(work.renew, self.owner_id)
            if work.spilled:
                runs.release(work.spilled, self.owner_id)
            statuses = runs.record_all([(a.run, a.outcome, a.secrets) for a in ended], self.s)
            claimed = runs.claim(self.owner_id, work.free, self.s) if work.free else []
            wanted = claimed + [h.run for h in read if h.found is None]
            found = context.gather(db.session(), wanted) if wanted else {}
            partial = {h.run.id: h.found for h in read if h.found is not None}
            if partial:
                found.update(context.with_artifacts(db.session(), partial))
            db.session.commit()
        for a, status in zip(ended, statuses, strict=True):
            log.info(
                "action=action_run run=%s kind=%s attempt=%s status=%s",
                a.run.id, a.run.action, a.run.attempts, status,
            )  # fmt: skip
        return claimed, found

    def deliver(self, c: runs.Claimed, found: Gathered) -> None:
        """Perform one claimed run (a delivery thread) and hand its outcome to the loop."""
        secrets: list[str] = []
        try:
            with self.app.app_context():
                outcome, secrets = self._perform(c, found)
        except Exception as exc:  # reading produced files failed: tried again later
            outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
        with self._lock:
            self._ended.append(Attempt(c, outcome, secrets))
            self._inflight.pop(c.id, None)
            self._stuck.discard(c.id)
            if c.id in self._replaced:
                self._replaced.discard(c.id)  # no longer counted (see _renewal_due)
            else:
                self._delivering -= 1
            # Wake the loop once half the threads are free (or none is busy): under load one
            # transaction then records and claims for several, not one each; an attempt waits
            # at most POLL to be recorded (record_linger when that is all a pass would do).
            batch = len(self._ended) >= max(1, self.s.threads // 2) or not self._delivering
            full = len(self._ended) >= RECORD_BATCH
        if full:
            self._urgent.set()
        if batch:
            self._wake.set()

    def _perform(self, c: runs.Claimed, found: Gathered) -> tuple[Outcome, list[str]]:
        if found.job is None:
            return Outcome(False, error=f"job {c.job_id}: gone"), []
        if found.stored is None:
            return Outcome(False, error="its action configuration was removed"), []
        secrets: list[str] = []
        try:
            kind = registry.get(c.action)
            secrets = values.secret_plain_values(found.stored)
            config = values.plain(found.stored)
            with self._produced(found.job) as files:
                ctx = context.build(c, found.job, found, config, files, self.s)
                secrets += ctx.credential_secrets  # the chosen credential's login, masked too
                return _safely(kind.perform, ctx), secrets
        except (registry.UnknownAction, context.ContextError, SecretError) as exc:
            return Outcome(False, error=str(exc)), secrets

    @contextlib.contextmanager
    def _produced(self, job: JobFacts) -> Iterator[dict[str, Path]]:
        """Temp copies of the job's produced files (read only when its app declares some)."""
        if not job.template.produces:
            yield {}
            return
        try:
            with context.produced_files(db.session(), job) as files:
                db.session.rollback()  # no transaction open while the plug-in works
                yield files
        finally:
            db.session.rollback()


def _facts_of(h: Handed, found: dict[int, Gathered]) -> Gathered:
    """A handed run's facts: as read in this pass, else as the executor gave them whole."""
    got = found.get(h.run.id, h.found)
    if got is None or got.artifacts is None:
        raise RuntimeError(f"action run {h.run.id}: its facts were neither handed nor read")
    return got


def _safely(perform: Callable[[ActionContext], Outcome], ctx: ActionContext) -> Outcome:
    """A plug-in's bug is the run's error (retryable: it may be transient), never the thread's."""
    try:
        return perform(ctx)
    except Exception as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
