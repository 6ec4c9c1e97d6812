"""Many daemons at once: 3 executors + 3 schedulers + an eventor on PostgreSQL, two executors
and a CLI on one SQLite file, and scheduler clock jumps (MULTIFLEXI_FAKE_CLOCK)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from bench.chaos.scenarios.common import Outcome, mid_jobs
from bench.chaos.world import ROOT, JobRow, World, utc_now, wait_until

SPEED = 30.0  # fake seconds per real second: a minutely slot every 2 s


def fake_clock(start: datetime) -> str:
    """A MULTIFLEXI_FAKE_CLOCK value reading `start` now and running SPEED times faster."""
    return f"{start.isoformat()},{time.time():.3f},{SPEED}"


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _minutely(w: World, first_slot: datetime) -> int:
    """A minutely RunTemplate (overlap: wait) whose first slot is `first_slot`."""
    sleep = w.params.short_sleep
    rt = w.add_rt("minutely", sleep, interval="i", next_run_at=first_slot, overlap_policy="wait")
    return rt.id


def slot_notes(rows: list[JobRow], rt_id: int) -> dict[str, Any]:
    """Slot jobs of the minutely RunTemplate: how many, duplicates, missing minutes between."""
    slots = sorted(r.slot_at for r in rows if r.runtemplate_id == rt_id and r.slot_at)
    distinct = sorted(set(slots))
    gaps = sum(int((b - a).total_seconds() // 60) - 1 for a, b in itertools.pairwise(distinct))
    return {"slot_jobs": len(slots), "slots": len(distinct), "missing_slots_between": gaps}


def three_executors_three_schedulers(w: World) -> Outcome:
    """All daemons on one PostgreSQL; one executor and one scheduler kill -9'd and restarted."""
    w.setup()
    start = _minute(utc_now() - timedelta(hours=2))
    rt_id = _minutely(w, start + timedelta(minutes=1))
    clock = fake_clock(start)
    executors = [w.daemon("executor") for _ in range(w.params.executors)]
    schedulers = [w.daemon("scheduler", MULTIFLEXI_FAKE_CLOCK=clock) for _ in range(3)]
    w.daemon("eventor")
    w.enqueue(w.params.jobs)
    mid_jobs(w)
    w.procs.kill(executors[0], signal.SIGKILL)
    w.procs.kill(schedulers[0], signal.SIGKILL)
    time.sleep(1)
    w.daemon("executor")
    schedulers.append(w.daemon("scheduler", MULTIFLEXI_FAKE_CLOCK=clock))
    cleared = utc_now()
    time.sleep(w.params.fault_seconds)
    for s in schedulers[1:]:  # no new slots from here on; the executors finish what is left
        w.procs.kill(s, signal.SIGTERM)
    wait_until(lambda: all(s.poll() is not None for s in schedulers), 30)
    return Outcome(cleared=cleared, notes=slot_notes(w.rows(), rt_id))


def sqlite_two_executors_cli_enqueue(w: World) -> Outcome:
    """Two executors on one SQLite file while `multiflexi runtemplate schedule` enqueues."""
    w.setup()
    for _ in range(2):
        w.daemon("executor")
    w.enqueue(w.params.jobs // 2)
    mid_jobs(w, 2)
    failures, runs = 0, 0
    end = time.monotonic() + w.params.fault_seconds
    while time.monotonic() < end or runs < 2:
        kind = "long" if runs % 4 == 3 else "short"
        argv = [sys.executable, "-m", "multiflexi_web.cli", "runtemplate", "schedule"]
        argv += [str(w.rts[kind].id), "--count", "3"]
        done = subprocess.run(argv, cwd=ROOT, env=w.env(), capture_output=True, timeout=120)
        runs, failures = runs + 1, failures + (done.returncode != 0)
    return Outcome(cleared=utc_now(), notes={"cli_runs": runs, "cli_failures": failures})


def clock_jump(w: World) -> Outcome:
    """The scheduler's clock jumps 10 min back, then 1 h forward (restarted with a new fake
    clock: the platform's only clock hook is read at start). Slots stay behind real time, so
    the (real-clock) executor runs each slot job at once."""
    w.setup()
    start = _minute(utc_now() - timedelta(hours=3))
    rt_id = _minutely(w, start + timedelta(minutes=1))
    w.daemon("executor")
    phase = max(w.params.fault_seconds / 2, 8.0)  # a scheduler needs ~2 s to boot
    counts, fake_now = [], start
    for shift in (timedelta(0), timedelta(minutes=-10), timedelta(hours=1)):
        fake_now = fake_now + shift
        sched = w.daemon("scheduler", MULTIFLEXI_FAKE_CLOCK=fake_clock(fake_now))
        began = time.monotonic()
        cleared = utc_now()
        time.sleep(phase)
        w.procs.kill(sched, signal.SIGTERM)
        wait_until(lambda s=sched: s.poll() is not None, 30)  # type: ignore[misc]
        fake_now += timedelta(seconds=(time.monotonic() - began) * SPEED)
        counts.append(sum(1 for r in w.rows() if r.runtemplate_id == rt_id))
    notes = slot_notes(w.rows(), rt_id)
    notes["slot_jobs_after_phase"] = counts  # normal, 10 min back, 1 h forward
    notes["executor_clock"] = "real (no hook to fake it)"
    return Outcome(cleared=cleared, notes=notes)
