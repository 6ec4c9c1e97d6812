"""The action dispatcher: a thread of the executor daemon delivering post-job action runs.

It claims due runs (services/actions/runs.py: leased, skip-locked) for its free delivery
threads only, so a slow peer holds one thread, never the others or the claiming loop. Each
delivery reads the job with a few plain queries, ends its read transaction, performs the action
with the per-attempt timeout, then records the attempt (and applies its effects) in one write
transaction. No transaction is open while a plug-in talks to the network.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Flask

from multiflexi_web.actions import registry
from multiflexi_web.actions.base import ActionContext, Outcome
from multiflexi_web.db.engine import begin_write
from multiflexi_web.db.retry import retry
from multiflexi_web.extensions import db
from multiflexi_web.runner.unit import RETRY_MAX_WAIT, writing
from multiflexi_web.security.secrets import SecretError
from multiflexi_web.services.actions import context, runs, values
from multiflexi_web.services.actions.settings import ActionSettings

log = logging.getLogger("multiflexi.actions")
POLL = 0.1  # seconds between two looks for due runs while idle


class Dispatcher:
    def __init__(
        self, app: Flask, owner_id: int, settings: ActionSettings, stop: threading.Event
    ) -> None:
        self.app, self.owner_id, self.s, self.stop = app, owner_id, settings, stop
        self.pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="action")
        self.thread = threading.Thread(target=self._loop, name="actions", daemon=True)
        self._free = threading.Semaphore(settings.threads)
        self._done = threading.Event()  # a delivery ended: a thread is free again
        self._busy: set[Future[str | None]] = set()
        self._lock = threading.Lock()

    def start(self) -> Dispatcher:
        self.thread.start()
        return self

    def close(self, timeout: float = 60) -> None:
        self.stop.set()
        self.thread.join(timeout)
        self.pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.tick():
                    self._done.wait(POLL)
                    self._done.clear()
            except Exception as exc:  # the database is away: the next pass tries again
                log.warning("action=dispatch_failed error=%r", exc)
                self.stop.wait(1.0)

    def tick(self) -> int:
        """Claim due runs for the free threads and start them; how many were claimed."""
        free = 0
        while self._free.acquire(blocking=False):
            free += 1
        claimed = (
            retry(lambda: self._claim(free), self.stop, "actions", max_wait=RETRY_MAX_WAIT)
            if free
            else []
        )
        for _ in range(free - len(claimed)):
            self._free.release()
        for c in claimed:
            future = self.pool.submit(self.deliver, c)
            with self._lock:
                self._busy.add(future)
            future.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, future: Future[str | None]) -> None:
        with self._lock:
            self._busy.discard(future)
        self._free.release()
        self._done.set()
        if (exc := future.exception()) is not None:
            log.warning("action=delivery_failed error=%r", exc)

    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    def drain(self) -> None:
        """Deliver every run due now before returning (retries planned later are left)."""
        while self.tick() or self.busy():
            self._done.wait(POLL)
            self._done.clear()

    def _claim(self, limit: int) -> list[runs.Claimed]:
        with self.app.app_context(), writing():
            begin_write()
            claimed = runs.claim(self.owner_id, limit, self.s)
            db.session.commit()
            return claimed

    def deliver(self, c: runs.Claimed) -> str | None:
        with self.app.app_context():
            outcome, secrets = self._perform(c)
            status = retry(
                lambda: self._record(c, outcome, secrets),
                self.stop,
                f"action_run={c.id}",
                max_wait=RETRY_MAX_WAIT,
            )
        log.info(
            "action=action_run run=%s kind=%s attempt=%s status=%s",
            c.id, c.action, c.attempts, status,
        )  # fmt: skip
        return status

    def _perform(self, c: runs.Claimed) -> tuple[Outcome, list[str]]:
        secrets: list[str] = []
        try:
            kind = registry.get(c.action)
            job = context.job_facts(db.session(), c.job_id)
            if job is None:
                return Outcome(False, error=f"job {c.job_id}: gone"), secrets
            stored = context.config_for(db.session(), c.config_id)
            secrets = values.secret_plain_values(stored)
            with context.produced_files(db.session(), job) as files:
                ctx = context.build(db.session(), c, job, values.plain(stored), files, self.s)
                secrets += ctx.credential_secrets  # the chosen credential's login, masked too
                db.session.rollback()  # no transaction open while the plug-in works
                return _safely(kind.perform, ctx), secrets
        except (registry.UnknownAction, context.ContextError, SecretError) as exc:
            return Outcome(False, error=str(exc)), secrets
        finally:
            db.session.rollback()

    def _record(self, c: runs.Claimed, outcome: Outcome, secrets: list[str]) -> str | None:
        with writing():
            begin_write()
            status = runs.record(c, outcome, self.s, secrets)
            db.session.commit()
            return status


def _safely(perform: Callable[[ActionContext], Outcome], ctx: ActionContext) -> Outcome:
    """A plug-in's bug is the run's error (retryable: it may be transient), never the thread's."""
    try:
        return perform(ctx)
    except Exception as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
