"""multiflexi-eventor: consumers in threads store events; the main loop turns them into jobs.

Options: `--drain` turns every stored event into jobs and exits; `--once` also polls each
changes-db source once first; `--poll SECONDS` is the wait between idle passes (a consumer in
this process, or a webhook on PostgreSQL through NOTIFY, wakes the loop at once).
Without options it runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass

from daemons.runtime import Runtime, boot
from multiflexi_web.db.listen import start_listener
from multiflexi_web.extensions import db
from multiflexi_web.services.events import catalog
from multiflexi_web.services.events.intake import NOTIFY_CHANNEL
from multiflexi_web.services.events.process import process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.sources import KINDS
from multiflexi_web.sources.base import SourceSpec

SYNC_EVERY = 5.0  # how soon an added, changed or disabled source is picked up
EXIT_MEMORY = 3


@dataclass
class _Running:
    thread: threading.Thread
    stop: threading.Event
    fingerprint: str


class Consumers:
    """One thread per enabled consumed source; restarted when it dies or its source changes."""

    def __init__(self, rt: Runtime, wake: threading.Event) -> None:
        self.rt, self.wake = rt, wake
        self.running: dict[int, _Running] = {}

    def sync(self) -> None:
        specs = {s.id: s for s in self.rt.retry_db(self._load)}
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

    def _load(self) -> list[SourceSpec]:
        with self.rt.app.app_context():
            return [catalog.spec_of(s) for s in catalog.consumed_sources()]

    def _start(self, spec: SourceSpec) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(spec, stop), name=f"source-{spec.id}", daemon=True
        )
        self.running[spec.id] = _Running(thread, stop, _fingerprint(spec))
        thread.start()
        self.rt.log("consumer_started", source=spec.id, kind=spec.kind)

    def _run(self, spec: SourceSpec, stop: threading.Event) -> None:
        consumer = KINDS[spec.kind].consumer
        assert consumer is not None  # noqa: S101 - only consumed kinds are loaded
        sink = DbSink(
            self.rt.app, spec.id, stop, retry=self.rt.retry_db, wake=self.wake, log=self.rt.log
        )
        try:
            consumer(spec, sink)
        except Exception as exc:  # thread boundary: logged here, sync() restarts the consumer
            self.rt.log("consumer_crashed", source=spec.id, error=f"{type(exc).__name__}: {exc}")

    def _stop(self, source_id: int, wait: float = 5.0) -> None:
        running = self.running.pop(source_id)
        running.stop.set()
        running.thread.join(timeout=wait)
        self.rt.log("consumer_stopped", source=source_id)

    def stop_all(self) -> None:
        for running in self.running.values():
            running.stop.set()
        deadline = time.monotonic() + self.rt.settings.stop_grace
        for source_id in list(self.running):
            self._stop(source_id, max(0.1, deadline - time.monotonic()))


def _fingerprint(spec: SourceSpec) -> str:
    return json.dumps([spec.kind, dict(spec.config), spec.secret], sort_keys=True, default=str)


def tick(rt: Runtime) -> int:
    """One committed batch of stored events turned into jobs; returns how many were handled."""

    def unit() -> int:
        with rt.app.app_context():
            outcomes = process_batch()
            db.session.commit()
        for o in outcomes:
            fields: dict[str, object] = {"rules": list(o.matched_rules), "jobs": list(o.job_ids)}
            if o.error:
                fields["error"] = o.error
            rt.log("event_processed", logging.INFO, event=o.event_id, **fields)
        return len(outcomes)

    handled: int = rt.retry_db(unit)
    return handled


def drain(rt: Runtime) -> int:
    total = 0
    while not rt.stop.is_set():
        handled = tick(rt)
        total += handled
        if handled == 0:
            break
    return total


def poll_all_once(rt: Runtime) -> None:
    """One pass over every source that can be polled (changes-db), in this thread."""
    for spec in Consumers(rt, threading.Event())._load():
        poll = KINDS[spec.kind].poll_once
        if poll is not None:
            poll(spec, DbSink(rt.app, spec.id, rt.stop, retry=rt.retry_db, log=rt.log))


def run(rt: Runtime, poll: float) -> int:
    wake = threading.Event()
    consumers = Consumers(rt, wake)
    if not rt.settings.is_sqlite:
        start_listener(rt.settings.database_url, NOTIFY_CHANNEL, wake, rt.stop)
    next_sync, code = 0.0, 0
    try:
        while not rt.stop.is_set():
            if rt.over_memory_limit():
                rt.log("memory_limit", limit_mb=rt.settings.memory_limit_mb)
                code = EXIT_MEMORY
                break
            if time.monotonic() >= next_sync:
                consumers.sync()
                next_sync = time.monotonic() + SYNC_EVERY
            if tick(rt) == 0:
                wake.wait(poll)
                wake.clear()
    finally:
        consumers.stop_all()
    return code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="multiflexi-eventor", description=__doc__.splitlines()[0])
    p.add_argument("--drain", action="store_true", help="turn stored events into jobs and exit")
    p.add_argument("--once", action="store_true", help="poll changes-db sources once, drain, exit")
    p.add_argument(
        "--poll",
        type=float,
        default=None,
        help="seconds between idle passes (default 0.2 on SQLite; 2 on PostgreSQL, where NOTIFY "
        "wakes it at once)",
    )
    args = p.parse_args(argv)
    if args.poll is not None and args.poll <= 0:
        p.error("--poll must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rt = boot("eventor")
    rt.register()
    rt.start_heartbeat()
    code = 0
    try:
        if args.once:
            poll_all_once(rt)
        if args.once or args.drain:
            rt.log("drained", events=drain(rt))
        else:
            code = run(rt, args.poll or (0.2 if rt.settings.is_sqlite else 2.0))
    finally:
        rt.unregister()
    sys.exit(code)


if __name__ == "__main__":
    main()
