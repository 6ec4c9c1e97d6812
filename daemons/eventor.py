"""multiflexi-eventor: consumers in threads store events; the main loop turns them into jobs.

Options: `--drain` turns every stored event into jobs and exits; `--once` also polls each
changes-db source once first; `--poll SECONDS` is the wait between idle passes (a consumer in
this process, or a webhook through NOTIFY or the SQLite doorbell, wakes the loop at once).
Without options it runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from daemons.runtime import Runtime, boot
from multiflexi_web.db.listen import start_listener
from multiflexi_web.extensions import db
from multiflexi_web.metrics import instruments as metrics
from multiflexi_web.services.events.consumers import Consumers, consumed_specs
from multiflexi_web.services.events.intake import NOTIFY_CHANNEL
from multiflexi_web.services.events.process import process_batch
from multiflexi_web.services.events.sink import DbSink
from multiflexi_web.sources import KINDS

SYNC_EVERY = 5.0  # how soon an added, changed or disabled source is picked up
EXIT_MEMORY = 3


def tick(rt: Runtime) -> int:
    """One committed batch of stored events turned into jobs; returns how many were handled."""

    def unit() -> int:
        with rt.app.app_context():
            outcomes = process_batch()
            db.session.commit()
        for o in outcomes:
            result = "jobs" if o.job_ids else ("failed" if o.error else "no_match")
            metrics.EVENTS_PROCESSED.labels(str(o.source_id), result).inc()
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
    for spec in consumed_specs(rt.app):
        poll = KINDS[spec.kind].poll_once
        if poll is not None:
            poll(spec, DbSink(rt.app, spec.id, rt.stop, retry=rt.retry_db, log=rt.log))


def run(rt: Runtime, poll: float) -> int:
    wake = threading.Event()
    consumers = Consumers(
        rt.app, wake, retry=rt.retry_db, log=rt.log, stop_grace=rt.settings.stop_grace
    )
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
        help="seconds between idle passes (default 2: a new event wakes it at once, by NOTIFY "
        "on PostgreSQL and a doorbell on SQLite)",
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
            code = run(rt, args.poll or 2.0)
    finally:
        rt.unregister()
    sys.exit(code)


if __name__ == "__main__":
    main()
