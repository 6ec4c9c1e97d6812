"""Fencing on this host: a retry never starts while processes of the attempt it replaces run.

Every job process carries MULTIFLEXI_JOB_ID and its work directory (MULTIFLEXI_TMP) in its
environment (children inherit them, a setsid that escaped the job's process group too). Before a
retry starts, the processes whose /proc/<pid>/environ names the previous attempt by both are
killed (both: another installation on the same host, or another test database, has a job of the
same id, in its own work area), and the retry waits until each has
exited (a pidfd per process: no pid reuse, no polling). Other hosts are out of reach: there the
previous attempt's own executor ends it (its guard, or its lease; docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path

MARKER, WORKDIR = "MULTIFLEXI_JOB_ID", "MULTIFLEXI_TMP"
EXIT_WAIT = 10.0  # SIGKILL is not refused; only a process stuck in the kernel (D) outlasts this


class LeftoverError(RuntimeError):
    """Processes of the previous attempt are still running after SIGKILL."""


def leftovers(job_id: int, workdir: Path) -> list[int]:
    """Pids on this host whose environment says they belong to job `job_id`, run in `workdir`.

    Unreadable environments (another user's, when this process cannot read them) are skipped.
    """
    needles = (f"\0{MARKER}={job_id}\0".encode(), f"\0{WORKDIR}={workdir}\0".encode())
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            env = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        env = b"\0" + env
        if all(needle in env for needle in needles):
            found.append(int(entry.name))
    return found


def clear(job_id: int, workdir: Path, timeout: float = EXIT_WAIT) -> list[int]:
    """Kill job `job_id`'s processes on this host and wait until they have exited; returns
    their pids. Raises LeftoverError when some still run after `timeout`."""
    fds: dict[int, int] = {}
    try:
        for pid in leftovers(job_id, workdir):
            with contextlib.suppress(OSError):  # exited meanwhile
                fds[os.pidfd_open(pid)] = pid
        for fd in fds:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        _wait_exited(set(fds), time.monotonic() + timeout)
        left = [fds[fd] for fd in fds if not _exited(fd)]
        if left:
            raise LeftoverError(
                f"processes {left} of job {job_id} (the previous attempt) still run after SIGKILL"
            )
        return sorted(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


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
