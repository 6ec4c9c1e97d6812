"""CustomCommand: run an argv (no shell) with the job's variables filled in, output recorded.

Running a command of one's choosing is a global administrator's power (SPEC §15): only they may
configure this action (services/actions/configure.py refuses others). The command runs as
the job user, exactly as jobs do (security/process.py start_job_process), never as the
executor's user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import bounded
from multiflexi_web.runner import fence, guard
from multiflexi_web.security.process import start_job_process
from multiflexi_web.services.jobs.command import CommandError, fill


def argv_of(raw: str) -> list[str]:
    """A JSON list of words, or upstream's shell line split into words (never run by a shell)."""
    text = raw.strip()
    if text.startswith("["):
        words = json.loads(text)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError("command: a JSON list of strings")
        return words
    return shlex.split(text)


class CustomCommand:
    name = "CustomCommand"
    description = "Run a command (argv, no shell) with the job's variables; admins only"
    fields: tuple[ConfigField, ...] = (
        ConfigField(
            "command", "text", 'JSON argv, e.g. ["/usr/bin/logger", "job {JOB_ID}"]', required=True
        ),
    )
    admin_only = True

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        env = {**ctx.env, "JOB_ID": str(ctx.job_id), "JOB_STATUS": ctx.status}
        env["JOB_EXIT_CODE"] = "" if ctx.exit_code is None else str(ctx.exit_code)
        try:
            argv = [fill(w, env) for w in argv_of(ctx.config.get("command", ""))]
        except (ValueError, CommandError) as exc:
            return Outcome(False, error=f"CustomCommand {exc}")
        if not argv:
            return Outcome(False, error="CustomCommand command: empty")
        return _run(argv, env, ctx)


def _run(argv: list[str], env: dict[str, str], ctx: ActionContext) -> Outcome:
    """As a job's own process: the job user, its own process group (guarded: it dies with the
    executor), a private umask, in a fresh directory the job user owns; marked as the job's and
    that directory's, so what leaves its group (a setsid) is found and killed with it, as a
    job's are (executors/native.py)."""
    with tempfile.TemporaryDirectory(prefix="mf-action-") as cwd:
        if ctx.run_as is not None:
            os.chown(cwd, ctx.run_as.uid, ctx.run_as.gid)
        marks = fence.marks(ctx.job_id, Path(cwd))
        forks = fence.forks()
        try:
            proc = start_job_process(
                argv,
                ctx.run_as,
                cwd=cwd,
                env={**env, "HOME": cwd, **marks},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            return Outcome(False, error=f"CustomCommand cannot start {argv[0]!r}: {exc.strerror}")
        guard.watch(proc.pid, ctx.job_id, cwd)
        since = fence.Since(proc.pid, forks)
        try:
            out, _ = proc.communicate(timeout=ctx.timeout)
        except subprocess.TimeoutExpired:
            _end(proc.pid, ctx.job_id, Path(cwd), since)  # also what holds its pipes
            proc.communicate()
            return Outcome(
                False, error=f"CustomCommand: still running after {ctx.timeout:g} s, killed"
            )
        finally:
            _end(proc.pid, ctx.job_id, Path(cwd), since)  # nothing of it outlives it
            guard.forget(proc.pid)
    text = bounded(out.decode("utf-8", "replace")[-8192:])
    if proc.returncode == 0:
        return Outcome(True, response=f"exit 0\n{text}")
    return Outcome(False, error=f"CustomCommand exit {proc.returncode}\n{text}")


def _end(pgid: int, job_id: int, cwd: Path, since: fence.Since) -> None:
    """SIGKILL to the command's group, then to its processes that left the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    # A process stuck in the kernel outlasts even SIGKILL: nothing more to do here.
    with contextlib.suppress(fence.LeftoverError, OSError):
        fence.clear(job_id, cwd, pids=since.pids())
