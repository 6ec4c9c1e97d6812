"""What a scenario function returns, and the steps several scenarios share."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.chaos.world import World, utc_now, wait_until


@dataclass
class Outcome:
    """When the fault cleared (recovery is measured from it), and what else the scenario saw."""

    cleared: datetime | None = None
    expected: list[Any] | None = None  # logical keys that must exist (e.g. messages sent)
    skipped: str | None = None
    killed_at: float | None = None  # time.time() of a kill -9: job processes must die with it
    notes: dict[str, Any] = field(default_factory=dict)
    # More notes, computed once every job is terminal.
    settled_notes: Callable[[World], dict[str, Any]] | None = None


def mid_jobs(w: World, done: int | None = None, timeout: float = 60) -> None:
    """Wait until `done` jobs (default: one executor's worth) succeeded: the fault hits mid-run."""
    want = w.params.parallel if done is None else done
    if not wait_until(lambda: w.count("succeeded") >= want, timeout):
        raise RuntimeError(f"{w.name}: fewer than {want} jobs succeeded within {timeout}s")


def restart_executor(w: World, sig: int) -> Outcome:
    """Executors, jobs, `sig` to the first one mid-jobs, wait for it to exit, start a new one."""
    w.setup()
    ex, *_ = [w.daemon("executor") for _ in range(w.params.executors)]
    w.enqueue(w.params.jobs)
    mid_jobs(w)
    killed_at = time.time()
    w.procs.kill(ex, sig)
    stop_grace = float(w.env().get("MULTIFLEXI_STOP_GRACE", "30"))
    exited = wait_until(lambda: ex.poll() is not None, stop_grace + w.params.long_sleep + 30)
    w.daemon("executor")
    out = Outcome(cleared=utc_now(), notes={"exit_code": ex.returncode, "exited": exited})
    out.killed_at = killed_at if sig == signal.SIGKILL else None
    return out


def kill9_executor(w: World) -> Outcome:
    return restart_executor(w, signal.SIGKILL)


def sigterm_executor(w: World) -> Outcome:
    return restart_executor(w, signal.SIGTERM)
