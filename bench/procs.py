"""Worker memory as the benchmarks report it: the RSS of a daemon's process tree, sampled."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

# Job processes are the work, not the worker: left out of the worker's RSS.
JOB_COMMANDS = {"sh", "setpriv"}  # setpriv: a job switching to the job user, before its exec


def tree(pid: int) -> list[int]:
    """pid and its descendants (Linux /proc children lists)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def rss_mib(pid: int) -> tuple[str, float] | None:
    """(command name, RSS MiB) of one process, or None once it is gone. A Python process is
    named by what it runs (`-m daemons.executor`, `-I .../guard.py`)."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        if name.startswith("python") and len(argv) > 1:
            name = " ".join(Path(a).name for a in argv[1:3])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return name, int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


class RssSampler(threading.Thread):
    """Samples the RSS of every worker process under the given roots until stopped.

    `peak_mib` is the largest single process seen; `processes` how many worker processes there
    are at the last sample (taken idle by the callers: a job's child between fork and exec
    still looks like its worker), so a row reads "58 MiB (x3)"."""

    def __init__(self, roots: list[int], every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.roots, self.every = roots, every
        self.peak_mib, self.processes = 0.0, 0
        self.names: set[str] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.every)

    def sample(self) -> None:
        seen = [rss_mib(p) for root in self.roots for p in tree(root)]
        workers = [got for got in seen if got and got[0] not in JOB_COMMANDS]
        sizes = [mib for _, mib in workers]
        self.names.update(name for name, _ in workers)
        if sizes:
            self.peak_mib = max(self.peak_mib, *sizes)
        self.processes = len(sizes)

    def stop(self) -> dict[str, Any]:
        self.sample()
        self._stop_event.set()
        self.join()
        return {
            "worker_rss_mib": round(self.peak_mib, 1),
            "worker_processes": self.processes,
            "worker_commands": sorted(self.names),
        }


def server_cpu_s(name: str = "postgres") -> float:
    """CPU seconds (user + system) used so far by every live process called `name` (a local
    PostgreSQL's postmaster and backends; root or the server's user reads them all). Taken
    before and after a run, the difference is what the server spent on it, backends that
    ended meanwhile included: a backend's CPU is added to the postmaster's children's times
    once it is reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        if comm == name:
            fields = rest.split()
            # utime, stime, cutime, cstime (fields 14-17): its own and its reaped children's
            total += sum(int(f) for f in fields[11:15])
    return total / tick
