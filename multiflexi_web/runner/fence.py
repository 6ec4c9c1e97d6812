"""Fencing on this host: a job's processes, found by its marker, end with it and before a retry.

Every job process carries MULTIFLEXI_JOB_ID and its work directory (MULTIFLEXI_TMP) in its
environment (children inherit them, a setsid that escaped the job's process group too). The
processes whose /proc/<pid>/environ names a job by both (both: another installation on the same
host, or another test database, has a job of the same id, in its own work area) are killed
before a retry of it starts, and at the end of every native job (executors/native.py), and the
caller waits until each has exited (a pidfd per process: no pid reuse, no polling). Other hosts
are out of reach: there the previous attempt's own executor ends it (its guard, or its lease;
docs/architecture.md).

Reading every process's environment costs ~5 ms per 100 processes, more than a short job: at a
job's end only the pids allocated since its first process started are read (`Since`), which
are its descendants' and the few others started meanwhile, unless the allocator may have gone
round (then all of them).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from multiflexi_web.runner.guard import MARKER, WORKDIR, marked, needles

__all__ = ["MARKER", "WORKDIR", "LeftoverError", "Since", "clear", "forks", "leftovers", "marks"]
EXIT_WAIT = 10.0  # SIGKILL is not refused; only a process stuck in the kernel (D) outlasts this
RESERVED_PIDS = 300  # where the kernel's pid allocator wraps to (include/linux/pid.h)
PROBE_MAX = 64  # a wider range of pids is filtered from a listing of /proc instead
LAST_PID, PID_MAX = "/proc/sys/kernel/ns_last_pid", "/proc/sys/kernel/pid_max"


class LeftoverError(RuntimeError):
    """Processes of the previous attempt are still running after SIGKILL."""


def marks(job_id: int, workdir: Path) -> dict[str, str]:
    """The environment entries that mark a process as job `job_id`'s."""
    return {MARKER: str(job_id), WORKDIR: str(workdir)}


@dataclass(frozen=True)
class Since:
    """The host's pid allocator when a job's first process started: every process of the job
    has a pid allocated after that one, so a cyclic range from it holds them all, unless the
    allocator went all the way round (told by the host's count of forks)."""

    pid: int
    forks: int  # /proc/stat `processes` before the job's first process was started

    def pids(self) -> Iterable[int] | None:
        """Candidates for the job's processes now; None: they may be anywhere."""
        try:
            made, last, top = forks(), _read_int(LAST_PID), _read_int(PID_MAX)
        except (OSError, ValueError):
            return None
        if made - self.forks >= top - RESERVED_PIDS:  # it may have gone round
            return None
        spans = [(self.pid + 1, last + 1)]
        if last < self.pid:  # it wrapped once
            spans = [(self.pid + 1, top), (1, last + 1)]
        if sum(end - start for start, end in spans) <= PROBE_MAX:
            return [pid for start, end in spans for pid in range(start, end)]
        return [p for p in _listed() if any(start <= p < end for start, end in spans)]


def leftovers(job_id: int, workdir: Path, pids: Iterable[int] | None = None) -> list[int]:
    """Pids on this host (or of `pids`) whose environment says they belong to job `job_id`,
    run in `workdir`. Unreadable environments (another user's, when this process cannot read
    them) are skipped."""
    found = marked({0: needles(job_id, str(workdir))}, _listed() if pids is None else pids)
    return found.get(0, [])


def clear(
    job_id: int, workdir: Path, timeout: float = EXIT_WAIT, pids: Iterable[int] | None = None
) -> list[int]:
    """Kill job `job_id`'s processes on this host (among `pids`, when given) and wait until
    they have exited; returns their pids. Raises LeftoverError when some still run after
    `timeout`."""
    fds: dict[int, int] = {}
    try:
        for pid in leftovers(job_id, workdir, pids):
            with contextlib.suppress(OSError):  # exited meanwhile
                fds[os.pidfd_open(pid)] = pid
        for fd in fds:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        _wait_exited(set(fds), time.monotonic() + timeout)
        left = [fds[fd] for fd in fds if not _exited(fd)]
        if left:
            raise LeftoverError(f"processes {left} of job {job_id} still run after SIGKILL")
        return sorted(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


def _listed() -> list[int]:
    me = os.getpid()
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and int(e.name) != me]


def _read_int(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return int(os.read(fd, 64))
    finally:
        os.close(fd)


def forks() -> int:
    """Processes and threads created on this host since boot (each took a pid): read before
    a job's first process starts, for its `Since`."""
    fd = os.open("/proc/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = b""
        while chunk := os.read(fd, 256 * 1024):
            data += chunk
    finally:
        os.close(fd)
    start = data.index(b"\nprocesses ") + len(b"\nprocesses ")
    return int(data[start : data.index(b"\n", start)])


def _wait_exited(pending: set[int], deadline: float) -> None:
    """poll(), not select(): a busy executor's descriptors may be numbered past 1024."""
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    while pending and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(left * 1000):
            poller.unregister(fd)
            pending.discard(fd)


def _exited(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
