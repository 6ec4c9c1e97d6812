"""`make run`'s program end to end: bootstrap, portal login, every daemon up, Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not printed; output was:\n{''.join(seen)}")


def wait_http(url: str, timeout: float) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=30)
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_logged(log: Path, pattern: str, timeout: float) -> None:
    """Until a line of the log matches (the log is the event; the deadline only ends a hang)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, log.read_text()):
        assert time.monotonic() < deadline, f"{pattern!r} not logged:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_run_all_bootstraps_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'multiflexi.db'}",
        "MULTIFLEXI_LOCAL_ENV": str(tmp_path / ".env"),
        "MULTIFLEXI_ENV_FILE": str(tmp_path / "none.env"),
        "MULTIFLEXI_TMP": str(tmp_path / "work"),
        "MULTIFLEXI_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "MULTIFLEXI_WEB_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("SECRET_KEY", "ENCRYPTION_MASTER_KEY", "MULTIFLEXI_ADMIN_PASSWORD"):
        env.pop(key, None)
    log = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemons.run_all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        password = read_until(proc, r"with password: (\S+)", 90).group(1)
        assert "ENCRYPTION_MASTER_KEY=" in (tmp_path / ".env").read_text()
        assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600  # the keys: ours only
        page = wait_http(f"http://127.0.0.1:{port}/login", 60)
        assert page.status_code == 200 and "Log in" in page.text
        session = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        session.cookies.update(page.cookies)
        resp = session.post(
            f"http://127.0.0.1:{port}/login",
            data={"login": "admin", "password": password, "csrf_token": token.group(1)},
            allow_redirects=False,
            timeout=5,
        )
        assert resp.status_code == 302, resp.text[:500]
        assert session.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        kids = children_of(proc.pid)
        assert len(kids) == 4, f"expected portal + 3 daemons, got {kids}"
        assert (tmp_path / "var" / "multiflexi.db").stat().st_mode & 0o777 == 0o600
        for daemon in ("scheduler", "executor", "eventor"):  # signal handlers installed
            wait_logged(tmp_path / "stderr.log", rf"daemon={daemon} .*action=started", 60)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=40) == 0
        # The first Ctrl-C is a clean stop for every daemon: one signal each, never hard_stop.
        logged = (tmp_path / "stderr.log").read_text()
        assert "action=hard_stop" not in logged, logged[-3000:]
        for daemon in ("scheduler", "executor", "eventor"):
            stops = re.findall(rf"daemon={daemon} .*action=stopping", logged)
            assert len(stops) == 1, f"{daemon}: {stops}\n{logged[-3000:]}"
        time.sleep(0.5)
        for kid in kids:
            assert (
                not Path(f"/proc/{kid}").exists()
                or "zombie" in Path(f"/proc/{kid}/status").read_text().lower()
            ), f"child {kid} still running"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its children get SIGTERM as it dies
            proc.wait()
        log.close()
