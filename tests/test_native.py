"""The native module on its own: real subprocesses, a recording JobIO, no database."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from multiflexi_web.config import ConfigError
from multiflexi_web.executors.base import AppInfo, JobSpec, RunAs, RunResult
from multiflexi_web.executors.native import NativeExecutor
from multiflexi_web.security import process
from multiflexi_web.security.process import SETPRIV, job_command


class RecordingIO:
    def __init__(self, stop_after: float | None = None) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.pid: int | None = None
        self.stop_at = None if stop_after is None else time.monotonic() + stop_after

    def started(self, pid: int | None = None, container_id: str | None = None) -> None:
        self.pid = pid

    def output(self, stream: str, data: bytes) -> None:
        self.chunks.append((stream, data))

    def should_stop(self) -> bool:
        return self.stop_at is not None and time.monotonic() >= self.stop_at

    def ended(self, result: RunResult) -> None:
        self.ended_with = result

    def text(self, stream: str = "stdout") -> bytes:
        return b"".join(d for s, d in self.chunks if s == stream)


def run(
    script: str, tmp_path: Path, io: RecordingIO | None = None, **kw: float
) -> tuple[RunResult, RecordingIO]:
    io = io or RecordingIO()
    spec = JobSpec(
        job_id=1,
        argv=("/bin/sh", "-c", script),
        env={"PATH": os.environ["PATH"], "X": "1"},
        workdir=tmp_path,
        app=AppInfo("t", "/bin/sh", None),
        timeout=kw.get("timeout"),
        kill_grace=kw.get("kill_grace", 1.0),
    )
    return NativeExecutor().run(spec, io), io


def alive(pid: int, settle: float = 2.0) -> bool:
    """Still running after `settle` seconds (a zombie waiting for its reaper counts as dead)."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def test_exit_code_output_env_and_cwd(tmp_path: Path) -> None:
    result, io = run('echo "$X $PWD"; echo oops >&2; exit 3', tmp_path)
    assert result == RunResult(3)
    assert io.text() == f"1 {tmp_path}\n".encode()
    assert io.text("stderr") == b"oops\n"
    assert io.pid is not None


def test_binary_and_invalid_utf8_output_is_kept_byte_for_byte(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 40
    (tmp_path / "blob").write_bytes(blob)
    result, io = run("cat blob; printf '\\377\\376\\000x' >&2", tmp_path)
    assert result.exit_code == 0
    assert io.text() == blob
    assert io.text("stderr") == b"\xff\xfe\x00x"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result, io = run("sleep 60 & echo $!; sleep 60", tmp_path, timeout=0.5, kill_grace=1.0)
    assert result.timed_out and result.exit_code == 128 + 15
    assert time.monotonic() - t0 < 5
    grandchild = int(io.text().split()[0])
    assert not alive(grandchild)


def test_a_process_ignoring_term_is_killed_after_the_grace(tmp_path: Path) -> None:
    t0 = time.monotonic()
    script = "trap '' TERM; sh -c \"trap '' TERM; sleep 60\" & echo $!; sleep 60"
    result, io = run(script, tmp_path, timeout=0.3, kill_grace=0.5)
    took = time.monotonic() - t0
    assert result.timed_out and result.exit_code == 128 + 9
    assert 0.7 <= took < 5
    assert not alive(int(io.text().split()[0]))


def test_stop_request_terminates_the_job(tmp_path: Path) -> None:
    result, io = run("echo started; sleep 60", tmp_path, RecordingIO(stop_after=0.3))
    assert result.cancelled and not result.timed_out
    assert io.text() == b"started\n"


def test_leftover_background_processes_do_not_hold_the_job(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result, io = run("sleep 60 & echo $!; echo done", tmp_path)
    assert result.exit_code == 0 and time.monotonic() - t0 < 4
    assert not alive(int(io.text().split()[0]))


def test_a_process_that_closes_its_pipes_is_still_waited_for(tmp_path: Path) -> None:
    result, _ = run("exec >&- 2>&-; sleep 0.5; exit 4", tmp_path)
    assert result.exit_code == 4


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    spec = JobSpec(
        job_id=1,
        argv=("/nonexistent/prog",),
        env={},
        workdir=tmp_path,
        app=AppInfo("t", "/nonexistent/prog", None),
    )
    result = NativeExecutor().run(spec, RecordingIO())
    assert result.exit_code == 127
    assert result.error is not None and "/nonexistent/prog" in result.error


def test_output_arrives_while_the_job_runs(tmp_path: Path) -> None:
    io = RecordingIO()
    seen_early = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if io.text() == b"first\n":
                seen_early.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    result, _ = run("echo first; sleep 1; echo second", tmp_path, io)
    watcher.join()
    assert seen_early.is_set() and result.exit_code == 0
    assert io.text() == b"first\nsecond\n"


@pytest.mark.parametrize("app", [AppInfo("a", "", None), AppInfo("a", "/bin/true", None)])
def test_unusable_reason(app: AppInfo) -> None:
    reason = NativeExecutor().unusable_reason(app)
    assert (reason is None) == bool(app.executable)


def _as_user(argv: tuple[str, ...], tmp_path: Path) -> tuple[RunResult, RecordingIO]:
    nobody = pwd.getpwnam("nobody")
    tmp_path.chmod(0o777)  # the job user's work directory
    spec = JobSpec(
        job_id=1,
        argv=argv,
        env={"PATH": "/usr/bin:/bin"},
        workdir=tmp_path,
        app=AppInfo("t", argv[0], None),
        run_as=RunAs("nobody", nobody.pw_uid, nobody.pw_gid),
    )
    io = RecordingIO()
    return NativeExecutor().run(spec, io), io


SWITCHES = ("chroot", "setpriv")  # as root: chroot where its probe passed, else setpriv


@pytest.fixture
def switch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which program switches to the job user (security/process.py job_command)."""
    if request.param == "setpriv":
        monkeypatch.setattr(process, "_chroot_switch", lambda uid, gid: None)
    tool = job_command(["/bin/true"], RunAs("x", 1, 1))[0][0]
    assert Path(tool).name == request.param
    return str(request.param)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the job user needs root")
@pytest.mark.parametrize("switch", SWITCHES, indirect=True)
def test_as_root_the_job_user_has_no_groups_and_no_capabilities(
    tmp_path: Path, switch: str
) -> None:
    # As root the switch is a small program's, started with vfork (security/process.py
    # job_command): the job must end exactly as Popen's own switch left it.
    nobody = pwd.getpwnam("nobody")
    probe = "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapAmb):' /proc/self/status; pwd"
    result, io = _as_user(("/bin/sh", "-c", probe), tmp_path)
    assert result.exit_code == 0, io.text("stderr")
    *lines, cwd = io.text().decode().splitlines()
    status = dict(line.split(":", 1) for line in lines)
    assert status["Uid"].split() == [str(nobody.pw_uid)] * 4
    assert status["Gid"].split() == [str(nobody.pw_gid)] * 4
    assert status["Groups"].split() == []
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[caps], 16) == 0, caps
    assert cwd == str(tmp_path)  # chroot's --skip-chdir: the work directory stays


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the job user needs root")
@pytest.mark.parametrize("switch", SWITCHES, indirect=True)
def test_as_root_the_job_user_cannot_run_what_only_root_may(tmp_path: Path, switch: str) -> None:
    # Root's capabilities must be gone before the command's exec: its execute permission is
    # checked against the job user (setpriv keeps them up to its own exec, hence its second).
    private = tmp_path / "private"
    private.mkdir()
    secret_tool = private / "id"
    shutil.copy("/usr/bin/id", secret_tool)
    secret_tool.chmod(0o700)  # root's alone
    result, io = _as_user((str(secret_tool),), tmp_path)
    assert result.exit_code == 126
    assert io.text() == b"" and b"Permission denied" in io.text("stderr")
    result, _ = _as_user(("/nonexistent/prog",), tmp_path)
    assert result.exit_code == 127 and "/nonexistent/prog" in (result.error or "")


@pytest.mark.skipif(os.geteuid() != 0, reason="the probe runs as root")
def test_a_chroot_that_would_leave_root_is_refused_for_setpriv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `chroot` that only runs the command (as a wrapper or another coreutils might): the
    # probe sees root's uid and capabilities, so jobs keep setpriv.
    fake = tmp_path / "chroot"
    fake.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift 2\nexec "$@"\n')
    fake.chmod(0o755)
    real_which = shutil.which
    monkeypatch.setattr(
        process.shutil,
        "which",
        lambda name, path=None: str(fake) if name == "chroot" else real_which(name, path=path),
    )
    process._chroot_switch.cache_clear()
    try:
        assert process._chroot_switch(65534, 65534) is None
        assert job_command(["/bin/true"], RunAs("x", 65534, 65534))[0][0] == SETPRIV
    finally:
        process._chroot_switch.cache_clear()


def test_without_root_popen_switches_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_chroot_switch", lambda uid, gid: None)
    monkeypatch.setattr(process, "_setpriv_usable", lambda: False)
    command, args = job_command(["/bin/true"], RunAs("x", 7, 8))
    assert command == ["/bin/true"]
    assert (args["user"], args["group"], args["extra_groups"]) == (7, 8, [])
    assert job_command(["/bin/true"], None) == (["/bin/true"], {"process_group": 0, "umask": 0o77})


def _thread_caps() -> dict[str, int]:
    lines = Path("/proc/thread-self/status").read_text().splitlines()
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in lines if line[:3] == "Cap")}


@pytest.mark.skipif(os.geteuid() != 0, reason="lending capabilities needs them")
def test_switch_capabilities_are_lent_to_one_thread_for_one_spawn() -> None:
    # A non-root executor's setpriv gets CAP_SETUID/CAP_SETGID from the spawning thread's
    # ambient set (security/process.py start_job_process): never another thread's, never after.
    switch_caps = 1 << process.CAP_SETUID | 1 << process.CAP_SETGID
    before = _thread_caps()
    seen: dict[str, dict[str, int]] = {}
    lent, other_may_go = threading.Event(), threading.Event()

    def other() -> None:
        lent.wait(10)
        seen["other"] = _thread_caps()
        other_may_go.set()

    watcher = threading.Thread(target=other)
    watcher.start()
    with process._switch_caps_lent():
        seen["lending"] = _thread_caps()
        lent.set()
        other_may_go.wait(10)
    watcher.join()
    assert seen["lending"]["CapAmb"] == switch_caps
    assert seen["lending"]["CapInh"] & switch_caps == switch_caps
    assert seen["other"] == before
    assert _thread_caps() == before
    with pytest.raises(FileNotFoundError), process._switch_caps_lent():  # a spawn that failed
        subprocess.Popen(["/nonexistent/prog"])
    assert _thread_caps() == before


def test_the_ambient_switch_is_not_offered_as_root_or_without_capabilities() -> None:
    # As root chroot or setpriv twice switch; without CAP_SETUID nothing can.
    assert process._ambient_switch(1, 1) is None
    assert process.job_switch(None) == "none"


@pytest.mark.skipif(os.geteuid() != 0, reason="lending capabilities needs them")
def test_a_thread_that_cannot_take_the_capabilities_back_stops_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Going on would hand CAP_SETUID to the thread's next program, and raising would record a
    # started job as never started: the process stops as a kill would.
    class Stopped(Exception):
        pass

    def refuse(bits: int) -> int:
        if bits == 0:
            raise OSError(1, "capset")
        return real(bits)

    def stop(code: int) -> None:
        raise Stopped(code)

    real = process.set_inheritable
    monkeypatch.setattr(process, "set_inheritable", refuse)
    monkeypatch.setattr(process.os, "_exit", stop)
    with pytest.raises(Stopped, match="70"), process._switch_caps_lent():
        pass
    real(0)  # this test's thread, as it was


def test_a_non_root_executor_without_a_safe_switch_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setpriv missing or its check failed: Popen's switch would exec jobs with the daemon's
    # capabilities in effect, so the executor says why and does not start.
    monkeypatch.setattr(process, "_chroot_switch", lambda uid, gid: None)
    monkeypatch.setattr(process, "_ambient_switch", lambda uid, gid: None)
    monkeypatch.setattr(process, "_setpriv_usable", lambda: False)
    monkeypatch.setattr(process.os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="that check failed"):
        process.checked_switch(RunAs("x", 4242, 4242))
    assert process.checked_switch(None) == "none"
    monkeypatch.setattr(process.os, "geteuid", lambda: 0)  # root's Popen switch drops them all
    assert process.checked_switch(RunAs("x", 4242, 4242)) == "popen_fork"
