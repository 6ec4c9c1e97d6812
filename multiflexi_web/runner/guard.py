"""The job guard: a tiny process that kills an executor's job process groups once it dies.

The executor starts one guard (`python -I .../guard.py`, its own session: a signal to the
executor's process group misses it) and keeps the write end of a pipe to it. For each job it
writes `+<pgid>` when the job's process group exists and `-<pgid>` once it is gone. The pipe
reaches end-of-file when the executor exits, however it exits (kill -9 included): the guard
then SIGKILLs every group still live and exits. A clean stop leaves no live group, so the guard
kills nothing then. Per job the executor pays two small pipe writes, nothing more.

A process of a job that left its group (setsid, or setpgid into another group) is found by the
job's marker in its environment (`+<pgid>:<job id> <work directory>`, see runner/fence.py): when
the executor dies, the guard also kills every process that carries the marker of a job whose
group was live (`escaped=N` on its exit line).

It is also the witness of the jobs' exits (`+<pgid>:<job id>`, executor only). The executor reaps
a job's process only once its exit is journaled, so the guard, woken by the process's pidfd,
finds it a zombie and reads its exit status from /proc; `-<pgid>` (reaped, journaled) forgets
it. Each status is appended to the executor's `.exits` file beside its journal the moment it is
read (`+<job> <code>`, and `-<job>` once forgotten; emptied whenever nothing is pending), so
it is on record even if the guard is killed with its executor (systemd's KillMode=mixed, an
OOM kill of the group). The guard shares the journal's lock (an inherited descriptor) until it
exits: the replay then records those jobs from their status instead of reaping them and running
them again (docs/architecture.md, "Finishes are never dropped").

Containers (docker and podman jobs) are not in the executor's process tree: `c+<id> <engine>`
and `c-<id>` tell the guard which run. When the executor dies, the guard kills each one still
running and removes it, through the engine's API (a unix socket or plain tcp), so a container job
does not outlive its executor either. One that had exited is left: its exit code is the job's
result, recorded by the next executor (runner/engines.py).

This file is also the guard's program: only the standard library at module level.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("multiflexi.executor")
READ_SIZE = 64 * 1024
ENGINE_TIMEOUT = 10.0  # each request the guard makes to a container engine
STOP_WAIT = 10.0  # how long a stopping executor waits for its guard to exit
CAP_KILL = 5
MARKER, WORKDIR = "MULTIFLEXI_JOB_ID", "MULTIFLEXI_TMP"  # a job's marker (runner/fence.py)


# -- job markers (here: the guard's program imports nothing of the package) -------------------
def needles(job: int, workdir: str) -> tuple[bytes, ...]:
    """What a process's /proc/<pid>/environ, behind a leading NUL, holds when it is the job's."""
    return (
        b"\0%s=%d\0" % (MARKER.encode(), job),
        b"\0%s=%s\0" % (WORKDIR.encode(), os.fsencode(workdir)),
    )


def marked(wanted: dict[int, tuple[bytes, ...]], pids: Iterable[int]) -> dict[int, list[int]]:
    """Of `pids`, those whose environment holds all needles of a key of `wanted`, by key.
    Unreadable environments (another user's, to a reader without ptrace rights) are skipped."""
    found: dict[int, list[int]] = {}
    for pid in pids:
        try:
            fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            env = b"\0" + b"".join(iter(functools.partial(os.read, fd, READ_SIZE), b""))
        except OSError:
            continue
        finally:
            os.close(fd)
        for key, want in wanted.items():
            if all(needle in env for needle in want):
                found.setdefault(key, []).append(pid)
    return found


def kill_marked(marks: dict[int, tuple[int, str]], live: Counter[int]) -> int:
    """SIGKILL every process marked as the job of a live group: those that left the group."""
    wanted = {pgid: needles(*marks[pgid]) for pgid in live if pgid in marks}
    if not wanted:
        return 0
    me = os.getpid()
    pids = (int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and e.name != str(me))
    killed = 0
    for found in marked(wanted, pids).values():
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


# -- the guard process ---------------------------------------------------------------------------
def apply(
    live: Counter[int],
    line: bytes,
    witness: Witness | None = None,
    containers: dict[str, str] | None = None,
    marks: dict[int, tuple[int, str]] | None = None,
) -> None:
    """One message: counted, since a pgid freed by one job may be reused by the next before
    the first job's `-` arrives (two threads write)."""
    if line[:1] == b"c":
        if containers is not None:
            track_container(containers, line)
        return
    pgid, _, job = line[1:].partition(b":")
    job, _, workdir = job.partition(b" ")
    if not pgid.isdigit() or (job and not job.isdigit()):
        return
    op = line[:1]
    count(live, op, int(pgid))
    if marks is not None:
        mark = (int(job), os.fsdecode(workdir)) if job and workdir else None
        remember(marks, live, op, int(pgid), mark)
    if witness is None:
        return
    if op == b"+" and job:
        witness.watch(int(pgid), int(job))
    elif op == b"-" and not live[int(pgid)]:
        witness.forget(int(pgid))


def remember(
    marks: dict[int, tuple[int, str]],
    live: Counter[int],
    op: bytes,
    pgid: int,
    mark: tuple[int, str] | None,
) -> None:
    """The marker (job id, work directory) of a live group's job, dropped with the group."""
    if op == b"+" and mark is not None:
        marks[pgid] = mark
    elif op == b"-" and not live[pgid]:
        marks.pop(pgid, None)


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


def track_container(containers: dict[str, str], line: bytes) -> None:
    """`c+<id> <engine address>` or `c-<id>`."""
    op, rest = line[1:2], line[2:].decode(errors="replace")
    ct, _, address = rest.partition(" ")
    if not ct.isalnum():
        return
    if op == b"+" and address:
        containers[ct] = address
    elif op == b"-":
        containers.pop(ct, None)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=ENGINE_TIMEOUT)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(ENGINE_TIMEOUT)
        sock.connect(self.path)
        self.sock = sock


def engine_call(address: str, method: str, path: str) -> int:
    """One request to a Docker-API engine (docker, or podman's compatible socket); its status,
    or 0 when it could not be asked (another scheme, no answer)."""
    scheme, _, where = address.partition("://")
    conn: http.client.HTTPConnection
    if scheme == "unix":
        conn = _UnixHTTPConnection(where)
    elif scheme in ("tcp", "http"):
        conn = http.client.HTTPConnection(where, timeout=ENGINE_TIMEOUT)
    else:  # ssh://, or TLS with client certificates: left to the next executor's sweep
        return 0
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()
    return status


def stop_containers(containers: dict[str, str]) -> list[str]:
    """Kill and remove every container still running; those it stopped. An exited one answers
    the kill 409 and stays: its exit code is the job's result (runner/engines.py)."""
    stopped, down = [], set()
    for ct, address in containers.items():
        if address in down:
            continue  # one timeout per engine, not one per container: the guard holds the lock
        status = engine_call(address, "POST", f"/containers/{ct}/kill?signal=SIGKILL")
        if status == 0:
            down.add(address)
        elif status == 204:
            engine_call(address, "DELETE", f"/containers/{ct}?force=1&v=1")
            stopped.append(ct[:12])
    return stopped


def leader_running(pgid: int) -> bool:
    """The group's leader exists and is not a zombie (Linux /proc: the state after the name)."""
    try:
        with open(f"/proc/{pgid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def exit_status(pid: int) -> int | None:
    """The exit code (negative: the signal) of an ended, not yet reaped process, or None.
    /proc shows another user's exit code as 0 to a reader without ptrace rights: only root,
    or the process's own user, reads it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 50 or fields[0] != b"Z" or os.geteuid() not in (0, owner):
        return None
    return os.waitstatus_to_exitcode(int(fields[49]))  # field 52: the wait status


class Witness:
    """The exit statuses of the watched jobs that ended and are not yet reaped."""

    def __init__(self, path: str, sel: selectors.BaseSelector) -> None:
        self.path, self.sel = path, sel
        self.watched: dict[int, tuple[int, int]] = {}  # pgid -> (job id, pidfd)
        self.ended: dict[int, tuple[int, int]] = {}  # pgid -> (job id, exit code)
        self.fd: int | None = None  # the .exits log, open once something was written

    def watch(self, pgid: int, job: int) -> None:
        self._drop(pgid)  # a pgid reused before the `-` of its last job: that one is reaped
        try:
            pidfd = os.pidfd_open(pgid)
        except OSError:  # already gone, or no pidfds here: nothing to witness
            return
        self.watched[pgid] = (job, pidfd)
        self.sel.register(pidfd, selectors.EVENT_READ, pgid)

    def forget(self, pgid: int) -> None:
        gone = self.ended.pop(pgid, None)
        self._drop(pgid)
        if gone is not None:
            self._log(f"-{gone[0]}\n")

    def _log(self, line: str) -> None:
        """One line appended by one write (a kill cannot leave half of it), or the log emptied
        when nothing is pending; not fsync'd (the page cache outlives a killed process, as for
        the journal), except at the guard's exit."""
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.ended:
            os.write(self.fd, line.encode())
        else:
            os.ftruncate(self.fd, 0)

    def seen_exit(self, pgid: int) -> None:
        """Its pidfd is readable: the process ended (a zombie until the executor journals it)."""
        if pgid not in self.watched:  # forgotten, or replaced, earlier in the same pass
            return
        job, _ = self.watched[pgid]
        code = exit_status(pgid)
        if code is not None:
            self.ended[pgid] = (job, code)
            self._log(f"+{job} {code}\n")
        self._drop(pgid)

    def sweep(self) -> None:
        """The executor is gone: ended ones whose wake-up was not read yet."""
        for pgid in list(self.watched):
            if exit_status(pgid) is not None:
                self.seen_exit(pgid)

    def write(self) -> None:
        """The executor is gone: the log made durable, or removed if nothing is pending."""
        if self.fd is None:
            return
        if not self.ended:
            os.close(self.fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        os.fsync(self.fd)
        os.close(self.fd)
        print(f"daemon=guard action=exits_witnessed jobs={len(self.ended)}", file=sys.stderr)

    def _drop(self, pgid: int) -> None:
        found = self.watched.pop(pgid, None)
        if found is not None:
            self.sel.unregister(found[1])
            os.close(found[1])


def guard_main(fd: int = 0, witness_path: str | None = None) -> int:
    """`witness_path`: the executor's .exits file (its journal's lock is an inherited fd)."""
    # Only the end of the pipe ends the guard: a stray TERM/INT/HUP must not disarm it.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    live: Counter[int] = Counter()
    containers: dict[str, str] = {}  # container id -> engine address
    marks: dict[int, tuple[int, str]] = {}  # pgid -> its job's marker (job id, work directory)
    sel = selectors.DefaultSelector()
    witness = Witness(witness_path, sel) if witness_path else None
    sel.register(fd, selectors.EVENT_READ, None)
    rest = b""
    while True:
        events = sel.select()
        if witness is not None:  # exits first: a `-` read in the same pass forgets them
            for key, _ in events:
                if key.data is not None:
                    witness.seen_exit(key.data)
        if not any(key.data is None for key, _ in events):
            continue
        chunk = os.read(fd, READ_SIZE)
        if not chunk:
            break
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            apply(live, line, witness, containers, marks)
    if witness is not None:
        witness.sweep()  # before the kill: a killed job is a zombie too
    killed, running = kill_live(live)
    escaped = kill_marked(marks, live)
    stopped = stop_containers(containers)
    pgids, alive = (",".join(map(str, groups)) or "-" for groups in (killed, running))
    print(
        f"daemon=guard action=guard_exit killed_groups={len(killed)} pgids={pgids} running={alive}"
        f" containers={','.join(stopped) or '-'} escaped={escaped}",
        file=sys.stderr,
        flush=True,
    )
    if witness is not None:
        witness.write()  # before the exit, which lets go of the journal's lock
    return 0


# -- the executor's side -------------------------------------------------------------------------
def _needs_kill_cap() -> bool:
    from multiflexi_web.security.process import effective_caps

    return os.geteuid() != 0 and bool(effective_caps() >> CAP_KILL & 1)


def exits_path(journal: Path) -> Path:
    """Where a guard writes the exits it witnessed when its executor died."""
    return journal.with_suffix(".exits")


class Guard:
    """The executor's handle on its guard process. `journal_fd`: the executor's journal (its
    path and open, locked descriptor): the guard witnesses job exits and shares the lock."""

    def __init__(self, journal: Path | None = None, journal_fd: int | None = None) -> None:
        self.lock = threading.Lock()
        self.live: Counter[int] = Counter()  # resent to a new guard if this one died
        self.jobs: dict[int, tuple[int, str | None]] = {}  # pgid -> job id, work dir; likewise
        self.containers: dict[str, str] = {}  # container id -> engine address, likewise
        self.closed = False
        self.journal, self.journal_fd = journal, journal_fd
        self.proc, self.fd = self._spawn()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        r, w = os.pipe()  # both ends close-on-exec: no job ever holds the write end
        argv = [sys.executable, "-I", os.path.abspath(__file__)]
        shared: tuple[int, ...] = ()
        if self.journal is not None and self.journal_fd is not None:
            argv.append(str(exits_path(self.journal)))
            shared = (self.journal_fd,)  # the lock stays held until the guard is done too
        try:
            keep_kill = None
            if _needs_kill_cap():  # one spawn: cost moot
                # In the guard's child before exec: keep CAP_KILL, which the executor holds in
                # no ambient or inheritable set (cleared at start), so exec would drop it.
                from multiflexi_web.security.process import keep_across_exec

                keep_kill = functools.partial(keep_across_exec, CAP_KILL)
            proc = subprocess.Popen(
                argv,
                stdin=r,
                env={},
                cwd="/",
                start_new_session=True,
                preexec_fn=keep_kill,
                pass_fds=shared,
            )
        finally:
            os.close(r)
        log.info("daemon=executor action=guard_started pid=%s", proc.pid)
        return proc, w

    def watch(self, pgid: int, job: int | None = None, workdir: str | None = None) -> None:
        self._send(b"+", pgid, job, workdir)

    def forget(self, pgid: int) -> None:
        self._send(b"-", pgid)

    def watch_container(self, ct: str, address: str) -> None:
        with self.lock:
            self.containers[ct] = address
            self._write(_container_message(ct, address))

    def forget_container(self, ct: str) -> None:
        with self.lock:
            if self.containers.pop(ct, None) is not None:
                self._write(b"c-%s\n" % ct.encode())

    def _write(self, message: bytes) -> None:
        """Under self.lock."""
        if self.closed:
            return
        try:
            os.write(self.fd, message)
        except OSError as exc:
            self._respawn(exc)

    def _send(
        self, op: bytes, pgid: int, job: int | None = None, workdir: str | None = None
    ) -> None:
        with self.lock:
            if self.closed:
                return
            count(self.live, op, pgid)
            if job is not None:
                self.jobs[pgid] = (job, workdir)
            elif not self.live[pgid]:
                self.jobs.pop(pgid, None)
            self._write(_message(op, pgid, job, workdir))

    def _respawn(self, exc: OSError) -> None:
        """The guard died (it never exits on its own): a new one learns every live group."""
        log.error("daemon=executor action=guard_lost error=%s", exc)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.proc.poll()
        self.proc, self.fd = self._spawn()
        lines = b"".join(
            _message(b"+", p, *self.jobs.get(p, (None, None)))
            for p, n in self.live.items()
            for _ in range(n)
        ) + b"".join(_container_message(c, a) for c, a in self.containers.items())
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


def _container_message(ct: str, address: str) -> bytes:
    return b"c+%s %s\n" % (ct.encode(), address.encode())


def _message(op: bytes, pgid: int, job: int | None, workdir: str | None = None) -> bytes:
    if job is None:
        return b"%s%d\n" % (op, pgid)
    if workdir is None or "\n" in workdir:  # one message, one line: no marker then
        return b"%s%d:%d\n" % (op, pgid, job)
    return b"%s%d:%d %s\n" % (op, pgid, job, os.fsencode(workdir))


_current: Guard | None = None
_on_first_use = False  # start() when the first group is watched
_starting = threading.Lock()


def start(journal: Path | None = None, journal_fd: int | None = None) -> Guard:
    global _current
    _current = Guard(journal, journal_fd)
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


def watch(pgid: int, job: int | None = None, workdir: str | None = None) -> None:
    """A job's process group now exists (no-op without a guard: in-process runs, tests);
    `job`: its exit is witnessed (the caller reaps it only once its exit is journaled);
    `workdir` too: its processes that left the group die with the executor as well."""
    if _current is None and _on_first_use:
        with _starting:
            if _current is None:
                start()
    if _current is not None:
        _current.watch(pgid, job, workdir)


def forget(pgid: int) -> None:
    """The job's process group is gone."""
    if _current is not None:
        _current.forget(pgid)


def watch_container(ct: str, address: str) -> None:
    """A job's container runs on the engine at `address` (no-op without a guard)."""
    if _current is not None and address.split() == [address]:  # one word: one message line
        _current.watch_container(ct, address)


def forget_container(ct: str) -> None:
    """The job's container is removed."""
    if _current is not None:
        _current.forget_container(ct)


if __name__ == "__main__":
    sys.exit(guard_main(0, sys.argv[1] if len(sys.argv) > 1 else None))
