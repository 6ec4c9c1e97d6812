"""A native job's processes that leave its process group (setpgid elsewhere, setsid) are still
killed by its timeout, its end and its executor's guard: found by the job's marker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from multiflexi_web.executors.base import AppInfo, JobSpec, RunResult
from multiflexi_web.executors.native import NativeExecutor
from multiflexi_web.runner import fence
from multiflexi_web.runner.guard import Guard
from tests.test_native import RecordingIO, alive


def _spec(argv: tuple[str, ...], tmp_path: Path, timeout: float | None) -> JobSpec:
    return JobSpec(
        job_id=1,
        argv=argv,
        env={"PATH": os.environ["PATH"]},
        workdir=tmp_path,
        app=AppInfo("t", argv[0], None),
        timeout=timeout,
        kill_grace=0.5,
    )


def test_a_job_that_moves_itself_to_another_group_is_not_stopped_by_its_timeout(
    tmp_path: Path,
) -> None:
    # The job's main process joins the executor's own process group (same session: allowed
    # for any uid); the timeout's killpg(job pgid) then finds no process and the job runs on.
    code = (
        "import os, sys, time\n"
        "os.setpgid(0, os.getpgid(os.getppid()))\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(20)\n"
    )
    spec = _spec((sys.executable, "-c", code), tmp_path, timeout=0.5)
    io = RecordingIO()
    done: list[RunResult] = []
    t = threading.Thread(target=lambda: done.append(NativeExecutor().run(spec, io)), daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(6)
    try:
        assert done, (
            f"timeout 0.5 s (grace 0.5 s) not enforced: the job still runs after "
            f"{time.monotonic() - t0:.1f} s"
        )
    finally:
        if io.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(io.pid, signal.SIGKILL)
        t.join(5)


def test_a_setsid_grandchild_outlives_its_finished_job(tmp_path: Path) -> None:
    setsid = shutil.which("setsid")
    assert setsid
    spec = _spec(("/bin/sh", "-c", f"{setsid} sleep 30 & echo $!; exit 0"), tmp_path, None)
    io = RecordingIO()
    result = NativeExecutor().run(spec, io)
    assert result.exit_code == 0
    pid = int(io.text().split()[0])
    try:
        assert not alive(pid), f"process {pid} of the ended job still runs"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_setsid_grandchild_survives_the_timeout(tmp_path: Path) -> None:
    setsid = shutil.which("setsid")
    assert setsid
    spec = _spec(("/bin/sh", "-c", f"{setsid} sleep 30 & echo $!; sleep 30"), tmp_path, 0.5)
    io = RecordingIO()
    result = NativeExecutor().run(spec, io)
    assert result.timed_out
    pid = int(io.text().split()[0])
    try:
        assert not alive(pid), f"process {pid} of the timed-out job still runs"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_the_guard_kills_a_setsid_process_of_a_job_live_when_its_executor_died(
    tmp_path: Path,
) -> None:
    setsid = shutil.which("setsid")
    assert setsid
    env = {"PATH": os.environ["PATH"], **fence.marks(7, tmp_path)}
    script = f"{setsid} sleep 30 & echo $!; sleep 30"
    job = subprocess.Popen(
        ["/bin/sh", "-c", script], env=env, stdout=subprocess.PIPE, process_group=0
    )
    assert job.stdout is not None
    pid = int(job.stdout.readline())
    guard = Guard()
    try:
        guard.watch(job.pid, 7, str(tmp_path))
        guard.close()  # the executor's end of the pipe closes: its guard kills what is left
        assert job.wait(10) == -signal.SIGKILL
        assert not alive(pid), f"process {pid}, which left the job's group, still runs"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        job.stdout.close()
