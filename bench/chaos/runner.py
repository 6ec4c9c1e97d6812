"""Runs scenarios one after another on one private PostgreSQL, always cleaning up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from bench.chaos.account import Result, account, cut_by_guards, outlived
from bench.chaos.infra import PrivatePostgres, Procs, kill_strays, pids_mentioning
from bench.chaos.scenarios import Scenario
from bench.chaos.scenarios.common import Outcome
from bench.chaos.world import ROOT, World, migrate, wait_until

TEMPLATE = "chaos_template"
NO_ENV_FILES = {"MULTIFLEXI_ENV_FILE": "/nonexistent", "MULTIFLEXI_LOCAL_ENV": "/nonexistent"}


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so every finally block below runs
    (SIGINT too: a shell starting us in the background may have set it to be ignored)."""

    def raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = {
        s: signal.signal(s, raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class Suite:
    """The run's temp folder, its PostgreSQL (started on first need) and its processes."""

    def __init__(self, keep: bool = False) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mf-chaos-"))
        self.folder.chmod(0o755)  # the postgres user must reach its data folder below
        self.keep = keep
        self.pg: PrivatePostgres | None = None

    def postgres(self) -> PrivatePostgres:
        """The private server, with a freshly migrated template database the scenarios copy."""
        if self.pg is None:
            self.pg = PrivatePostgres(self.folder / "pg")
            self.pg.init()
            url = self.pg.create_database(TEMPLATE)
            migrate({**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)} | NO_ENV_FILES)
        elif not (self.pg.data / "postmaster.pid").exists():
            self.pg.start()  # a scenario ended while its outage was on
        return self.pg

    def run(self, sc: Scenario, quick: bool, jobs: int | None) -> Result:
        """One scenario on a fresh database; whatever happens, its processes are gone after."""
        params = sc.for_run(quick, jobs)
        procs = Procs(self.folder / "logs")
        pg = self.postgres() if sc.backend == "postgres" else None
        w = World(sc.name, self.folder / sc.name, params, procs, pg, TEMPLATE if pg else None)
        try:
            t0 = time.monotonic()
            out = sc.run(w)
            if out.skipped:
                return Result(sc.name, skipped=out.skipped)
            return self._measure(w, out, time.monotonic() - t0)
        except Exception as exc:  # a measuring tool reports a broken scenario and goes on
            traceback.print_exc()
            return Result(sc.name, skipped=f"harness error: {exc!r}"[:300])
        finally:
            procs.stop_all()
            kill_strays(str(w.side))
            w.close()
            if pg is not None and not (pg.data / "postmaster.pid").exists():
                pg.start()  # an interrupted outage

    def _measure(self, w: World, out: Outcome, fault_s: float) -> Result:
        """Probe jobs, wait for every job to be terminal and every job process to end, count."""
        t0 = time.monotonic()
        probes = w.enqueue_probes()  # so there is always a job to measure recovery by
        settled = wait_until(w.all_terminal, w.params.settle)
        # Job processes orphaned by a killed executor may still write their lines.
        wait_until(lambda: not pids_mentioning(str(w.side)), w.params.long_sleep + 15)
        w.procs.stop_all()
        cut = cut_by_guards(w.procs.log_text())
        res = account(w.name, w.rows(), w.side, out.cleared, out.expected, cut)
        res.notes.update(out.notes, settled=settled, probes=len(probes))
        # seconds until the fault cleared + seconds after it until every job was terminal
        res.notes["seconds"] = f"{fault_s:.0f}+{time.monotonic() - t0:.0f}"
        if out.settled_notes is not None:
            res.notes.update(out.settled_notes(w))
        if out.killed_at is not None:
            res.notes["outlived_kill"] = outlived(w.side, out.killed_at)
        return res

    def close(self) -> None:
        if self.pg is not None:
            self.pg.destroy()
        kill_strays(str(self.folder))
        if self.keep:
            print(f"kept {self.folder}")
        else:
            time.sleep(0.2)
            shutil.rmtree(self.folder, ignore_errors=True)
