"""Database faults: killed connections, a restart, outages of the private PostgreSQL."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bench.chaos.scenarios.common import Outcome, mid_jobs
from bench.chaos.world import World, utc_now


def _running(w: World) -> None:
    w.setup()
    for _ in range(w.params.executors):
        w.daemon("executor")
    w.enqueue(w.params.jobs)
    mid_jobs(w)


def kill_connections(w: World) -> Outcome:
    """pg_terminate_backend of every connection to the database every 1-2 s for a while."""
    assert w.pg is not None
    _running(w)
    killed, rounds = 0, 0
    end = time.monotonic() + w.params.fault_seconds
    while time.monotonic() < end:
        killed += w.pg.terminate_backends(w.dbname)
        rounds += 1
        time.sleep(random.uniform(1.0, 2.0))  # jitter, not security
    return Outcome(cleared=utc_now(), notes={"terminated": killed, "rounds": rounds})


def pg_restart(w: World) -> Outcome:
    """`pg_ctl restart -m fast` while jobs run."""
    assert w.pg is not None
    _running(w)
    w.pg.stop("fast")
    w.pg.start()
    return Outcome(cleared=utc_now())


def db_outage(seconds: float) -> Callable[[World], Outcome]:
    """PostgreSQL stopped for `seconds` while jobs run (MULTIFLEXI_LOST_AFTER as configured)."""

    def scenario(w: World) -> Outcome:
        assert w.pg is not None
        _running(w)
        w.pg.stop("fast")
        time.sleep(seconds)
        w.pg.start()
        return Outcome(cleared=utc_now(), notes={"outage_s": seconds})

    scenario.__name__ = f"db_outage_{int(seconds)}s"
    return scenario
