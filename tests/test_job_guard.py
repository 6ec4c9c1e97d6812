"""Job processes never outlive their executor (the guard) nor overlap their retry (fencing)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from multiflexi_web.extensions import db
from multiflexi_web.models import Job
from multiflexi_web.runner import fence
from multiflexi_web.runner import guard as guard_module
from multiflexi_web.runner.guard import Guard
from multiflexi_web.services.jobs import transitions as jobs
from tests.executor_support import (
    ROOT,
    daemon_env,
    job,
    log_text,
    output_of,
    schedule,
    shell_rt,
    show_logs,
    start_daemon,
    stop,
    wait_for,
)
from tests.test_isolation import CAPS, JOB_USER, _as_nobody
from tests.test_isolation import outside as _outside_fixture

outside = _outside_fixture  # an app on a SQLite file that `nobody` can reach

pytestmark = pytest.mark.slow
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
DEADLINE = 60.0  # generous: the machine may be busy; nothing here waits unless it must


@pytest.fixture(autouse=True)
def _logs_on_failure(tmp_path: Path) -> Iterator[None]:
    yield
    show_logs(tmp_path)


def _state(pid: int) -> str | None:
    """The process's State letter; None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _gone(pid: int) -> bool:
    """Exited: no longer listed, or a zombie (PID 1 reaps orphans late here)."""
    return _state(pid) in {None, "Z", "X"}


def _group(pgid: int) -> list[int]:
    """The live members of a process group."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[2]) == pgid and stat[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def _sleeper(**env: str) -> subprocess.Popen[bytes]:
    """A process in a group of its own, like a job's."""
    return subprocess.Popen(["sleep", "600"], process_group=0, env={**os.environ, **env})


def test_the_guard_kills_the_live_groups_when_its_pipe_closes() -> None:
    live, ended = _sleeper(), _sleeper()
    guard = Guard()
    try:
        guard.watch(live.pid)
        guard.watch(ended.pid)
        guard.forget(ended.pid)  # that job ended: its pgid may belong to anybody from now on
        assert dict(guard.live) == {live.pid: 1}  # an ended group leaves nothing behind
    finally:
        assert guard.close() == 0
    try:
        assert live.wait(DEADLINE) == -signal.SIGKILL
        assert ended.poll() is None
    finally:
        ended.kill()
        ended.wait()
        live.kill()


def test_the_guard_tells_a_running_job_from_one_that_ended_unreaped() -> None:
    """A job whose process still ran when its executor died had not finished (its work may
    be done, nobody can know); one that had ended, not yet reaped, had: the log tells which."""
    running, ended = _sleeper(), subprocess.Popen(["true"], process_group=0)
    try:
        wait_for(lambda: _state(ended.pid) == "Z", DEADLINE, "the ended job a zombie")
        assert guard_module.leader_running(running.pid)
        assert not guard_module.leader_running(ended.pid)
        live = Counter({running.pid: 1, ended.pid: 1})
        assert guard_module.kill_live(live) == ([running.pid, ended.pid], [running.pid])
        assert running.wait(DEADLINE) == -signal.SIGKILL
    finally:
        running.kill()
        running.wait()
        ended.wait()
    assert not guard_module.leader_running(ended.pid)  # reaped: gone


def test_a_group_reused_before_its_end_arrives_stays_watched() -> None:
    """Two job threads write: `+P` of a new job may arrive before `-P` of the old one."""
    proc = _sleeper()
    guard = Guard()
    try:
        guard.watch(proc.pid)
        guard.watch(proc.pid)
        guard.forget(proc.pid)
    finally:
        guard.close()
    assert proc.wait(DEADLINE) == -signal.SIGKILL


def test_kill_9_of_the_executor_kills_its_jobs_processes(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    [job_id] = schedule(shell_rt("sleep 600 & echo $!; sleep 600"))
    proc = start_daemon(db_url, tmp_path)
    try:
        wait_for(lambda: job(job_id).pid is not None, DEADLINE, "the job's pid recorded")
        pgid = job(job_id).pid
        assert pgid is not None
        wait_for(lambda: len(_group(pgid)) == 3, DEADLINE, "shell, background and foreground sleep")
        members = _group(pgid)
        background = int(output_of(job_id).split()[0])
        assert background in members and pgid in members
        proc.kill()
        assert proc.wait(DEADLINE) == -signal.SIGKILL
        for pid in members:
            wait_for(lambda p=pid: _gone(p), DEADLINE, f"job process {pid} gone")
    finally:
        stop(proc)
    found = rf"action=guard_exit killed_groups=1 pgids={pgid} running={pgid}\b"
    wait_for(lambda: re.search(found, log_text(tmp_path)), DEADLINE, "the guard's exit line")


def _guard_pid(tmp_path: Path) -> int:
    found = re.search(r"action=guard_started pid=(\d+)", log_text(tmp_path))
    assert found, "the executor logs its guard's pid"
    return int(found.group(1))


@SQLITE_ONLY
def test_a_clean_stop_kills_nothing_and_ends_the_guard(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    ids = schedule(shell_rt("echo $MULTIFLEXI_JOB_ID", overlap_policy="allow"), 20)
    bystander = _sleeper()
    proc = start_daemon(db_url, tmp_path)
    try:
        wait_for(lambda: all(job(i).status == "succeeded" for i in ids), DEADLINE, "jobs done")
        guard_pid = _guard_pid(tmp_path)
        assert not _gone(guard_pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
        assert _gone(guard_pid)  # the executor waited for it
        assert "action=guard_exit killed_groups=0 pgids=- running=-" in log_text(tmp_path)
        assert bystander.poll() is None
    finally:
        stop(proc)
        bystander.kill()
        bystander.wait()


@SQLITE_ONLY
def test_a_retry_starts_only_after_its_previous_attempts_leftovers_are_killed(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    first_rt = shell_rt("true")
    [lost_id] = schedule(first_rt)
    for status in ("running", "lost"):  # as its dead executor's reaper left it
        db.session.execute(update(Job).where(Job.id == lost_id).values(status=status))
    db.session.commit()
    # What an executor killed without its guard (or a setsid that escaped the group) left.
    workdir = str(tmp_path / "work" / f"job-{lost_id}")  # daemon_env's MULTIFLEXI_TMP
    leftover = _sleeper(MULTIFLEXI_JOB_ID=str(lost_id), MULTIFLEXI_TMP=workdir)
    bystander = _sleeper(MULTIFLEXI_JOB_ID=f"{lost_id}0", MULTIFLEXI_TMP=workdir)  # another job
    # The same job id in another installation's (or test database's) work area: left alone.
    neighbour = _sleeper(MULTIFLEXI_JOB_ID=str(lost_id), MULTIFLEXI_TMP=f"/elsewhere/job-{lost_id}")
    retry_rt = shell_rt(f"echo state=$(cut -d' ' -f3 /proc/{leftover.pid}/stat)")
    retry = jobs.enqueue(retry_rt, schedule_type="retry", retry_of=job(lost_id))
    db.session.commit()
    try:
        assert fence.leftovers(lost_id, Path(workdir)) == [leftover.pid]
        proc = start_daemon(db_url, tmp_path, "--drain")
        assert proc.wait(DEADLINE) == 0
        assert job(retry.id).status == "succeeded"
        assert output_of(retry.id) == b"state=Z\n"  # killed before the retry ran (our zombie)
        assert (
            f"killed 1 leftover process(es) of job {lost_id}"
            in output_of(retry.id, "stderr").decode()
        )
        assert leftover.wait(DEADLINE) == -signal.SIGKILL
        assert bystander.poll() is None and neighbour.poll() is None
    finally:
        for p in (leftover, bystander, neighbour):
            p.kill()
            p.wait()


def test_a_dead_guard_is_replaced_and_told_every_live_group() -> None:
    proc = _sleeper()
    guard = Guard()
    try:
        guard.watch(proc.pid)
        first = guard.proc
        first.kill()
        first.wait(DEADLINE)
        assert proc.poll() is None  # the guard's death alone kills nothing
        guard.watch(os.getpid() + 10**6)  # the next write finds the pipe broken
        assert guard.proc is not first
    finally:
        guard.close()
    assert proc.wait(DEADLINE) == -signal.SIGKILL


def test_the_guard_of_a_capabilities_executor_kills_the_job_users_processes(
    outside: tuple[Flask, str, Path],
) -> None:
    """The systemd design (User=multiflexi, AmbientCapabilities=, jobs as multiflexi-job): the
    executor clears its ambient set at start, yet its guard keeps CAP_KILL for the job user."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("setpriv (util-linux) and root are needed to start a capabilities executor")
    _app, db_url, tmp_path = outside
    [job_id] = schedule(shell_rt("sleep 600 & echo $!; sleep 600"))
    python, ids, extra = _as_nobody(tmp_path)
    prefix = [setpriv, f"--reuid={ids['user']}", f"--regid={ids['group']}", "--clear-groups"]
    prefix += ["--no-new-privs"]  # as the unit: NoNewPrivileges=yes
    prefix += [f"--inh-caps=+{CAPS.replace(',', ',+')}"]
    prefix += [f"--ambient-caps=+{CAPS.replace(',', ',+')}", "--"]
    env = daemon_env(db_url, tmp_path, MULTIFLEXI_JOB_USER=JOB_USER, **extra)
    with (tmp_path / "executor.log").open("ab") as fh:
        proc = subprocess.Popen(
            [*prefix, *python, "-m", "daemons.executor"], cwd=ROOT, env=env, stdout=fh, stderr=fh
        )
    try:
        wait_for(lambda: len(output_of(job_id).split()) == 1, DEADLINE, "the job's output")
        pgid = job(job_id).pid
        assert pgid is not None
        members = _group(pgid)
        assert os.stat(f"/proc/{pgid}").st_uid == pwd.getpwnam(JOB_USER).pw_uid
        proc.kill()
        proc.wait(DEADLINE)
        for pid in members:
            wait_for(lambda p=pid: _gone(p), DEADLINE, f"job process {pid} gone")
        # The guard logs after its kills: the processes may be gone before the line is written.
        exit_line = "action=guard_exit killed_groups=1"
        wait_for(lambda: exit_line in log_text(tmp_path), DEADLINE, "the guard's exit line")
    finally:
        stop(proc)


def test_a_guard_started_on_first_use_exists_only_once_a_group_is_watched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(guard_module, "_current", None)
    monkeypatch.setattr(guard_module, "_on_first_use", False)
    guard_module.start_on_first_use()
    assert guard_module._current is None  # the delivery process pays for no guard up front
    proc = _sleeper()
    try:
        guard_module.watch(proc.pid)
        started = guard_module._current
        assert started is not None and started.live[proc.pid] == 1
        guard_module.watch(proc.pid)
        assert guard_module._current is started  # one guard, however many groups
    finally:
        guard_module.stop()
    assert proc.wait(DEADLINE) == -signal.SIGKILL  # its stop with a live group kills it


def test_the_guard_kills_running_containers_and_leaves_exited_ones_over_the_engine_api() -> None:
    """The exact requests the guard makes of a Docker-API engine when its executor died: a
    kill for each container; a remove only for those the kill found running (204), not for one
    that had exited (409: its exit code is the job's result). An engine that cannot be reached
    costs one attempt, not one per container."""
    calls: list[tuple[str, str]] = []

    class Engine(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, code: int) -> None:
            calls.append((self.command, self.path))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            self._answer(204 if "/running1/" in self.path else 409)

        def do_DELETE(self) -> None:
            self._answer(204)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as closed:  # a port nobody listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        unreachable = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    try:
        up = f"tcp://127.0.0.1:{server.server_address[1]}"
        stopped = guard_module.stop_containers(
            {"running1": up, "exited1": up, "gone1": unreachable, "gone2": unreachable}
        )
    finally:
        server.shutdown()
        server.server_close()
    assert stopped == ["running1"]
    assert calls == [
        ("POST", "/containers/running1/kill?signal=SIGKILL"),
        ("DELETE", "/containers/running1?force=1&v=1"),
        ("POST", "/containers/exited1/kill?signal=SIGKILL"),
    ]


def test_container_messages_are_tracked_and_bad_ones_ignored() -> None:
    containers: dict[str, str] = {}
    live: Counter[int] = Counter()
    for line in (b"c+abc123 unix:///run/docker.sock", b"c+bad/id unix:///x", b"c+nospace",
                 b"c+def456 tcp://127.0.0.1:2375", b"c-abc123"):  # fmt: skip
        guard_module.apply(live, line, None, containers)
    assert containers == {"def456": "tcp://127.0.0.1:2375"} and not live
