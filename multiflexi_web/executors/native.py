"""Native executor module: a subprocess in its own process group, output streamed as it comes."""
# Every kill reaches the group, its leader wherever it went, and (runner/fence.py) the job's
# processes that left the group (setsid): by the job's marker in their environment.

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import shutil
import signal
import subprocess
import time

from multiflexi_web.executors.base import AppInfo, JobIO, JobSpec, RunResult
from multiflexi_web.runner import fence, guard
from multiflexi_web.security.process import start_job_process

READ_SIZE = 64 * 1024
TICK = 0.2  # how often a quiet job checks its timeout and stop requests
LINGER = 1.0  # after the main process exits, how long leftovers may keep its pipes open
EXITED = "exited"  # the selector key of the process's pidfd
log = logging.getLogger("multiflexi.executor")


_DEVNULL: int | None = None


def _devnull() -> int:
    """One read-only /dev/null for every job's stdin (DEVNULL opens and closes it per job)."""
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _DEVNULL


class NativeExecutor:
    name = "native"
    description = "Runs the application as a local subprocess in its own process group"

    def unusable_reason(self, app: AppInfo) -> str | None:
        if not app.executable:
            return "the application has no executable"
        return None

    def run(self, spec: JobSpec, io: JobIO) -> RunResult:
        try:
            executable = resolve_executable(spec.argv[0], spec.env.get("PATH", ""))
            if not os.path.exists(executable):  # say so here, not in the job's own stderr
                raise FileNotFoundError(2, "No such file or directory")
            forks = fence.forks()  # before its first process: where its pids begin
            proc = start_job_process(
                [executable, *spec.argv[1:]],
                spec.run_as,
                cwd=spec.workdir,
                env={**spec.env, **fence.marks(spec.job_id, spec.workdir)},
                stdin=_devnull(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            return RunResult(code, error=f"cannot start {spec.argv[0]!r}: {exc.strerror or exc}")
        # Its group dies with the executor, and its exit is witnessed (runner/guard.py).
        guard.watch(proc.pid, spec.job_id, str(spec.workdir))
        io.started(pid=proc.pid)
        return _Supervisor(proc, spec, io, fence.Since(proc.pid, forks)).run()


def resolve_executable(name: str, path: str) -> str:
    """An absolute path, or a bare name looked up in PATH's absolute entries: never the job's
    work directory (an uploaded file called like the command must not replace it)."""
    if name.startswith("/"):
        return name
    if "/" in name:
        raise FileNotFoundError(
            2,
            f"{name!r} is relative; an application's executable must be "
            "an absolute path or a command name found on PATH",
        )
    dirs = os.pathsep.join(d for d in path.split(os.pathsep) if d.startswith("/"))
    found = shutil.which(name, path=dirs) if dirs else None
    if found is None:
        raise FileNotFoundError(2, f"{name!r} not found on PATH")
    return found


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class _Supervisor:
    """Pumps a process's pipes into the job's IO and enforces timeout and stop requests.

    The process's exit is watched in the same select() as its pipes (a pidfd): its pipes close
    a moment before it can be reaped, and waiting for that with Popen.wait(timeout) sleeps a
    millisecond or more per job, longer than a short job runs. With a pidfd the process is not
    reaped before io.ended() has journaled its exit: until then its exit status stays readable
    by the guard, which outlives a killed executor (runner/guard.py).
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], spec: JobSpec, io: JobIO, since: fence.Since
    ) -> None:
        self.proc, self.spec, self.io, self.since = proc, spec, io, since
        self.pgid = proc.pid
        self.sel = selectors.DefaultSelector()
        for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self.sel.register(pipe, selectors.EVENT_READ, stream)
        self.pidfd = _pidfd(proc.pid)
        if self.pidfd is not None:
            self.sel.register(self.pidfd, selectors.EVENT_READ, EXITED)
        now = time.monotonic()
        self.deadline = now + spec.timeout if spec.timeout else None
        self.reason: str | None = None
        self.kill_at: float | None = None
        self.exited_at: float | None = None
        self.lingered = False  # leftovers holding its pipes were killed
        self.status: int | None = None  # its exit code (negative: the signal), once it ended

    def run(self) -> RunResult:
        try:
            while self.sel.get_map() or self._running():
                self._pump()
                self._police(time.monotonic())
            if self.status is None:  # no pidfd: reaped by Popen as before
                self.status = self.proc.wait()
            code = self.status
            result = RunResult(
                128 - code if code < 0 else code,
                timed_out=self.reason == "timeout",
                cancelled=self.reason == "stop",
            )
            self.io.ended(result)  # journaled first: reaped only after it
            self.proc.wait()
            self._kill()  # the job is over: nothing of it outlives it
        finally:
            self._close()
            guard.forget(self.pgid)
        return result

    def _running(self) -> bool:
        """The process has not ended. With a pidfd it is not reaped here (see the class)."""
        if self.status is not None:
            return False
        if self.pidfd is None:
            return self.proc.poll() is None
        found = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if found is None:
            return True
        self.status = found.si_status if found.si_code == os.CLD_EXITED else -found.si_status
        return False

    def _pump(self) -> None:
        if not self.sel.get_map():  # pipes closed, process still running: wait for it
            if self.pidfd is not None:
                select.select([self.pidfd], [], [], TICK)  # its end, not reaped
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(TICK)
            return
        for key, _ in self.sel.select(TICK):
            if key.data == EXITED:
                self.sel.unregister(key.fileobj)
                self._running()  # its status: the loop ends once the pipes are drained too
                continue
            try:
                data = os.read(key.fd, READ_SIZE)
            except BlockingIOError:
                continue
            if data:
                self.io.output(key.data, data)
            else:
                self.sel.unregister(key.fileobj)

    def _police(self, now: float) -> None:
        if self.reason is None:
            if self.deadline is not None and now >= self.deadline:
                self.reason = "timeout"
            elif self.io.should_stop():
                self.reason = "stop"
            if self.reason is not None:
                self._signal(signal.SIGTERM)
                self.kill_at = now + self.spec.kill_grace
        if self.kill_at is not None and now >= self.kill_at:
            self._kill()
            self.kill_at = float("inf")
        self._after_exit(now)

    def _after_exit(self, now: float) -> None:
        """The main process is gone but something keeps its pipes open: end the leftovers."""
        if self.exited_at is None:
            if not self._running():
                self.exited_at = now
            return
        if now - self.exited_at >= LINGER and not self.lingered:
            self._kill()  # once: then nothing of the job keeps them open, or nothing will
            self.lingered = True
        if now - self.exited_at >= 2 * LINGER:  # unmarked (env -i): stop reading
            for key in list(self.sel.get_map().values()):
                self.sel.unregister(key.fileobj)

    def _signal(self, sig: signal.Signals) -> None:
        """The group, and its leader by its pidfd: it may have moved to another group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, sig)
            elif self.proc.returncode is None:  # not reaped: its pid is still its own
                os.kill(self.proc.pid, sig)

    def _kill(self) -> None:
        """SIGKILL to the group and its leader, then to the job's processes that left it."""
        self._signal(signal.SIGKILL)
        try:
            killed = fence.clear(self.spec.job_id, self.spec.workdir, pids=self.since.pids())
        except (fence.LeftoverError, OSError) as exc:
            log.error("action=escaped_kill_failed job=%s error=%s", self.spec.job_id, exc)
            return
        if killed:
            log.warning("action=escaped_killed job=%s pids=%s", self.spec.job_id, killed)

    def _close(self) -> None:
        if self.proc.returncode is None:  # an exception on the way: never leave it running
            self._kill()  # before its pidfd is closed: a closed descriptor's number is reused
        self.sel.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        if self.proc.returncode is None:
            self.proc.wait()
