"""The job guard: a tiny process that kills an executor's job process groups once it dies.

The executor starts one guard (`python -I .../guard.py`, its own session: a signal to the
executor's process group misses it) and keeps the write end of a pipe to it. For each job it
writes `+<pgid>` when the job's process group exists and `-<pgid>` once it is gone. The pipe
reaches end-of-file when the executor exits, however it exits (kill -9 included): the guard
then SIGKILLs every group still live and exits. A clean stop leaves no live group, so the guard
kills nothing then. Per job the executor pays two small pipe writes, nothing more.

This file is also the guard's program: only the standard library at module level.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter

log = logging.getLogger("multiflexi.executor")
READ_SIZE = 64 * 1024
STOP_WAIT = 10.0  # how long a stopping executor waits for its guard to exit
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL = 47, 2, 5


# -- the guard process ---------------------------------------------------------------------------
def apply(live: Counter[int], line: bytes) -> None:
    """One message: counted, since a pgid freed by one job may be reused by the next before
    the first job's `-` arrives (two threads write)."""
    if len(line) < 2 or not line[1:].isdigit():
        return
    count(live, line[:1], int(line[1:]))


def count(live: Counter[int], op: bytes, pgid: int) -> None:
    """`+` or `-` one group; a group down to zero is dropped (pids are reused: no growth)."""
    if op == b"+":
        live[pgid] += 1
    elif op == b"-" and live[pgid] > 1:
        live[pgid] -= 1
    elif op == b"-":
        live.pop(pgid, None)


def kill_live(live: Counter[int]) -> tuple[list[int], list[int]]:
    """SIGKILL every group still live: the groups killed, and those of them whose leader (the
    job's own process) was still running, as opposed to ended and not yet reaped by the dead
    executor. A job whose process still ran when its executor died had not finished: its work
    may have been done, but no supervisor can know that before the process exits."""
    killed, running = [], []
    for pgid, n in live.items():
        if n > 0 and pgid > 1:
            was_running = leader_running(pgid)  # before the kill: after it, it is a zombie
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                killed.append(pgid)
                if was_running:
                    running.append(pgid)
    return killed, running


def leader_running(pgid: int) -> bool:
    """The group's leader exists and is not a zombie (Linux /proc: the state after the name)."""
    try:
        with open(f"/proc/{pgid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def guard_main(fd: int = 0) -> int:
    # Only the end of the pipe ends the guard: a stray TERM/INT/HUP must not disarm it.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    live: Counter[int] = Counter()
    rest = b""
    while chunk := os.read(fd, READ_SIZE):
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            apply(live, line)
    killed, running = kill_live(live)
    pgids, alive = (",".join(map(str, groups)) or "-" for groups in (killed, running))
    print(
        f"daemon=guard action=guard_exit killed_groups={len(killed)} pgids={pgids} running={alive}",
        file=sys.stderr,
    )
    return 0


# -- the executor's side -------------------------------------------------------------------------
def _raise_kill_cap() -> None:
    """In the guard's child before exec: keep CAP_KILL (the executor runs jobs as another user
    with ambient capabilities, which it cleared at start; exec would drop CAP_KILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0)


def _needs_kill_cap() -> bool:
    from multiflexi_web.security.process import effective_caps

    return os.geteuid() != 0 and bool(effective_caps() >> CAP_KILL & 1)


class Guard:
    """The executor's handle on its guard process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: Counter[int] = Counter()  # resent to a new guard if this one died
        self.closed = False
        self.proc, self.fd = self._spawn()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        r, w = os.pipe()  # both ends close-on-exec: no job ever holds the write end
        try:
            keep_kill = _raise_kill_cap if _needs_kill_cap() else None  # one spawn: cost moot
            proc = subprocess.Popen(
                [sys.executable, "-I", os.path.abspath(__file__)],
                stdin=r,
                env={},
                cwd="/",
                start_new_session=True,
                preexec_fn=keep_kill,
            )
        finally:
            os.close(r)
        log.info("daemon=executor action=guard_started pid=%s", proc.pid)
        return proc, w

    def watch(self, pgid: int) -> None:
        self._send(b"+", pgid)

    def forget(self, pgid: int) -> None:
        self._send(b"-", pgid)

    def _send(self, op: bytes, pgid: int) -> None:
        with self.lock:
            if self.closed:
                return
            count(self.live, op, pgid)
            try:
                os.write(self.fd, b"%s%d\n" % (op, pgid))
            except OSError as exc:
                self._respawn(exc)

    def _respawn(self, exc: OSError) -> None:
        """The guard died (it never exits on its own): a new one learns every live group."""
        log.error("daemon=executor action=guard_lost error=%s", exc)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.proc.poll()
        self.proc, self.fd = self._spawn()
        lines = b"".join(b"+%d\n" % p for p, n in self.live.items() for _ in range(n))
        if lines:
            os.write(self.fd, lines)

    def close(self) -> int | None:
        """The executor stops: the guard kills what is left (nothing after a clean stop)."""
        with self.lock:
            self.closed = True
            os.close(self.fd)
        try:
            return self.proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            return None


_current: Guard | None = None
_on_first_use = False  # start() when the first group is watched
_starting = threading.Lock()


def start() -> Guard:
    global _current
    _current = Guard()
    return _current


def start_on_first_use() -> None:
    """A process that rarely starts one (the action delivery process: CustomCommand only)
    gets its guard with its first process group, not a 13 MiB process from the start."""
    global _on_first_use
    _on_first_use = True


def stop() -> None:
    global _current
    guard, _current = _current, None
    if guard is not None:
        guard.close()


def watch(pgid: int) -> None:
    """A job's process group now exists (no-op without a guard: in-process runs, tests)."""
    if _current is None and _on_first_use:
        with _starting:
            if _current is None:
                start()
    if _current is not None:
        _current.watch(pgid)


def forget(pgid: int) -> None:
    """The job's process group is gone."""
    if _current is not None:
        _current.forget(pgid)


if __name__ == "__main__":
    sys.exit(guard_main())
