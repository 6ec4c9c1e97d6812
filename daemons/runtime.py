"""Shared daemon runtime: signals, stop event, worker row with heartbeat, DB retry, logging."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from flask import Flask
from sqlalchemy import ColumnElement, case, update
from sqlalchemy.exc import DBAPIError

from daemons.sdnotify import notify
from multiflexi_web import create_app
from multiflexi_web.config import ConfigError, Settings, load_settings
from multiflexi_web.db.engine import engine_options
from multiflexi_web.db.retry import LINK, retry, safe_rollback
from multiflexi_web.errors import first_line
from multiflexi_web.extensions import db
from multiflexi_web.memory import limit_malloc_arenas, rss_mb
from multiflexi_web.metrics import instruments
from multiflexi_web.models import Worker, utcnow
from multiflexi_web.runner.lease import Lease
from multiflexi_web.security.process import harden_daemon
from multiflexi_web.services.jobs.transitions import heartbeat_clock
from multiflexi_web.services.operations.drain import DRAINED, DRAINING

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

T = TypeVar("T")
log = logging.getLogger("multiflexi.daemon")
# At most; with a short LOST_AFTER a sixth of it, so that with the fence at 3/4 of LOST_AFTER
# a lease survives several beats that commit late (a loaded host, a busy SQLite write lock).
HEARTBEAT_EVERY = 5.0
BEATS_PER_LOST_AFTER = 6


class Runtime:
    """One daemon process: its app, its worker row and its stop flags."""

    def __init__(self, kind: str, app: Flask) -> None:
        self.kind = kind
        self.app = app
        self.settings: Settings = app.config["MULTIFLEXI"]
        self.stop = threading.Event()  # first SIGTERM: finish current work, then exit
        self.hard_stop = threading.Event()  # second SIGTERM: stop at once
        # An operator asked this executor to drain (its worker row's flag, read by beat()).
        self.drain_requested = threading.Event()
        self.drained = threading.Event()  # draining done: nothing runs, nothing is claimed
        self.worker_id: int | None = None
        lost_after = self.settings.lost_after
        self.heartbeat_every = min(HEARTBEAT_EVERY, max(lost_after / BEATS_PER_LOST_AFTER, 0.2))
        self.lease = Lease(lost_after, self.settings.lease_fence)
        self._hb_thread: threading.Thread | None = None
        self._hb_done = threading.Event()  # unregistering: no beat may follow the "stopped" row
        self._metrics: WSGIServer | None = None

    # -- signals -------------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags here: the main loop does the work outside the handler.
        if self.stop.is_set():
            self.hard_stop.set()
            self.log("hard_stop", signal=signal.Signals(signum).name)
        else:
            self.stop.set()
            notify("STOPPING=1")
            self.log("stopping", signal=signal.Signals(signum).name)

    # -- worker row and heartbeat ------------------------------------------------------------------
    def register(self) -> int:
        def _insert() -> int:
            sent = time.monotonic()
            with self.app.app_context():
                worker = Worker(kind=self.kind, hostname=socket.gethostname(), pid=os.getpid())
                db.session.add(worker)
                db.session.commit()
                self.lease.renewed(sent)
                return worker.id

        self.worker_id = self.retry_db(_insert)
        self._serve_metrics()
        notify("READY=1")
        self.log("started")
        return self.worker_id

    def start_heartbeat(self, extra: Callable[[], None] | None = None) -> None:
        """Beat the worker row (and run `extra`, e.g. job heartbeats) every few seconds."""

        def loop() -> None:
            # Due a period after the previous beat was sent, not after it committed: a slow
            # commit must not stretch the gap the lease is judged by.
            due = time.monotonic() + self.heartbeat_every
            while not self._hb_done.wait(max(0.0, due - time.monotonic())):
                if self.hard_stop.is_set():
                    break
                due = time.monotonic() + self.heartbeat_every
                try:
                    self.beat()
                    # Only a loop that reached the database proves liveness to systemd.
                    notify("WATCHDOG=1")
                    if extra is not None:
                        extra()
                except DBAPIError as exc:
                    with self.app.app_context():
                        safe_rollback()
                    LINK.failed()
                    self.log("heartbeat_failed", error=first_line(exc))

        self._hb_thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
        self._hb_thread.start()

    def beat(self) -> None:
        """Renew the worker row (stamped by the database's clock), and with it the lease."""
        sent = time.monotonic()
        draining = case((Worker.drain_requested_at.is_not(None), DRAINING), else_="running")
        with self.app.app_context():
            drain = db.session.execute(
                update(Worker)
                .where(Worker.id == self.worker_id)
                .values(
                    heartbeat_at=heartbeat_clock(),
                    status=self._status(draining),
                    stopped_at=None,  # a worker marked dead while cut off is back
                )
                .returning(Worker.drain_requested_at)
            ).scalar()
            db.session.commit()
        self.lease.renewed(sent)
        if drain is not None and not self.drain_requested.is_set():
            self.drain_requested.set()
            self.log("drain_requested")

    def _status(self, draining: ColumnElement[str]) -> str | ColumnElement[str]:
        if self.stop.is_set():
            return "stopping"
        return DRAINED if self.drained.is_set() else draining

    def _serve_metrics(self) -> None:
        """This daemon's metrics port (docs/metrics.md), when one is configured for its kind."""
        port = self.settings.metrics_port(self.kind)
        if not port:
            return  # nothing would read the instruments: they stay off (metrics/instruments.py)
        from multiflexi_web.metrics.server import serve

        registry = instruments.enable()
        instruments.bind_daemon(self.kind, self.worker_id, self.lease.age)
        s = self.settings
        try:
            self._metrics = serve(registry, s.metrics_addr, port, s.metrics_token)
        except OSError as exc:  # the port is taken: the jobs matter more than their metrics
            self.log("metrics_failed", logging.ERROR, addr=s.metrics_addr, port=port, error=exc)
            return
        self.log("metrics_serving", addr=s.metrics_addr, port=port)

    def unregister(self) -> None:
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None
        if self.worker_id is None:
            return
        # A beat under way would write "stopping" (and stopped_at NULL) over "stopped".
        self._hb_done.set()
        if self._hb_thread is not None:
            self._hb_thread.join(timeout=30)
        try:
            with self.app.app_context():
                db.session.execute(
                    update(Worker)
                    .where(Worker.id == self.worker_id)
                    .values(status="stopped", stopped_at=utcnow(), heartbeat_at=utcnow())
                )
                db.session.commit()
        except DBAPIError as exc:
            self.log("unregister_failed", error=first_line(exc))
        self.log("stopped")

    # -- database outages ----------------------------------------------------------------------
    def retry_db(
        self, fn: Callable[[], T], *, max_wait: float = 30.0, tries: int | None = None
    ) -> T:
        """Run fn; through transient database errors (db/retry.py) log, back off and retry."""
        label = f"daemon={self.kind} worker={self.worker_id}"
        return retry(fn, self.hard_stop, label, max_wait=max_wait, tries=tries)

    # -- memory ceiling ------------------------------------------------------------------------
    def over_memory_limit(self) -> bool:
        limit = self.settings.memory_limit_mb
        return limit > 0 and rss_mb() > limit

    # -- logging -------------------------------------------------------------------------------
    def log(self, action: str, level: int = logging.INFO, **fields: object) -> None:
        """One line per event: daemon, worker id (once registered), action word, then
        key=value pairs."""
        parts = [f"daemon={self.kind}"]
        if self.worker_id is not None:  # not yet registered at start: no `worker=None`
            parts.append(f"worker={self.worker_id}")
        parts.append(f"action={action}")
        parts += [f"{k}={v}" for k, v in fields.items()]
        log.log(level, " ".join(parts))


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("MULTIFLEXI_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )


def boot(kind: str) -> Runtime:
    """Logging, settings (a bad value exits 2 with one line naming the key), app, signals."""
    limit_malloc_arenas()  # before any thread of the daemon exists
    setup_logging()
    try:
        settings = load_settings()
        options = engine_options(
            settings.database_url,
            pre_ping=False,
            application_name=f"multiflexi-{kind}",
            idle_tx_timeout=settings.db_idle_tx_timeout,
        )
        app = create_app({"SQLALCHEMY_ENGINE_OPTIONS": options}, settings=settings, daemon=True)
    except ConfigError as exc:
        print(f"multiflexi-{kind}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    harden_daemon(kind, settings)
    rt = Runtime(kind, app)
    rt.install_signals()
    return rt
