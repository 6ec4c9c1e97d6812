"""The eventor's consumers: one thread per enabled consumed source, restarted when it changes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from multiflexi_web.services.events import catalog
from multiflexi_web.services.events.sink import DbSink, Retry
from multiflexi_web.sources import KINDS
from multiflexi_web.sources.base import SourceSpec

Log = Callable[..., None]


def consumed_specs(app: Flask) -> list[SourceSpec]:
    """The enabled sources a consumer thread serves (their secrets decrypted)."""
    with app.app_context():
        return [catalog.spec_of(s) for s in catalog.consumed_sources()]


@dataclass
class _Running:
    thread: threading.Thread
    stop: threading.Event
    fingerprint: str


class Consumers:
    """One thread per enabled consumed source; restarted when it dies or its source changes."""

    def __init__(
        self, app: Flask, wake: threading.Event, *, retry: Retry, log: Log, stop_grace: float
    ) -> None:
        self.app, self.wake, self.stop_grace = app, wake, stop_grace
        self.retry, self.log = retry, log  # the daemon's: through outages, to its log lines
        self.running: dict[int, _Running] = {}

    def sync(self) -> None:
        specs = {s.id: s for s in self.retry(lambda: consumed_specs(self.app))}
        for source_id in list(self.running):
            current = self.running[source_id]
            spec = specs.get(source_id)
            if (
                spec is None
                or _fingerprint(spec) != current.fingerprint
                or not current.thread.is_alive()
            ):
                self._stop(source_id)
        for source_id, spec in specs.items():
            if source_id not in self.running:
                self._start(spec)

    def _start(self, spec: SourceSpec) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(spec, stop), name=f"source-{spec.id}", daemon=True
        )
        self.running[spec.id] = _Running(thread, stop, _fingerprint(spec))
        thread.start()
        self.log("consumer_started", source=spec.id, kind=spec.kind)

    def _run(self, spec: SourceSpec, stop: threading.Event) -> None:
        consumer = KINDS[spec.kind].consumer
        assert consumer is not None  # noqa: S101 - only consumed kinds are loaded
        sink = DbSink(self.app, spec.id, stop, retry=self.retry, wake=self.wake, log=self.log)
        try:
            consumer(spec, sink)
        except Exception as exc:  # thread boundary: logged here, sync() restarts the consumer
            self.log("consumer_crashed", source=spec.id, error=f"{type(exc).__name__}: {exc}")

    def _stop(self, source_id: int, wait: float = 5.0) -> None:
        running = self.running.pop(source_id)
        running.stop.set()
        running.thread.join(timeout=wait)
        self.log("consumer_stopped", source=source_id)

    def stop_all(self) -> None:
        for running in self.running.values():
            running.stop.set()
        deadline = time.monotonic() + self.stop_grace
        for source_id in list(self.running):
            self._stop(source_id, max(0.1, deadline - time.monotonic()))


def _fingerprint(spec: SourceSpec) -> str:
    return json.dumps([spec.kind, dict(spec.config), spec.secret], sort_keys=True, default=str)
