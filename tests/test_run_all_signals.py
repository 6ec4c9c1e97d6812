"""`make run`'s supervisor under a terminal's Ctrl-C: one SIGTERM per child per Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A daemon stand-in: records every SIGINT/SIGTERM it gets; stops at the `stop_after`-th one.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    out, stop_after = sys.argv[1], int(sys.argv[2])
    got = []
    def on(signum, _frame):
        got.append(signal.Signals(signum).name)
        with open(out, "a") as f:
            f.write(got[-1] + "\\n")
        if len(got) >= stop_after:
            sys.exit(0)
    signal.signal(signal.SIGINT, on)
    signal.signal(signal.SIGTERM, on)
    open(out + ".ready", "w").close()
    while True:
        time.sleep(3600)
    """
)

DRIVER = textwrap.dedent(
    """
    import signal, sys
    from daemons.run_all import Supervisor
    child, *specs = sys.argv[1:]
    cmds = {f"c{i}": [sys.executable, child, *spec.split(":")] for i, spec in enumerate(specs)}
    sup = Supervisor(cmds)
    signal.signal(signal.SIGINT, sup.on_signal)
    signal.signal(signal.SIGTERM, sup.on_signal)
    sys.exit(sup.loop())
    """
)


def _wait_for(path: Path, lines: int) -> list[str]:
    """The file's lines once it has `lines` of them (an event to wait on, not a time)."""
    deadline = time.monotonic() + 120  # only a guard against hanging forever
    while time.monotonic() < deadline:
        if path.exists() and len(got := path.read_text().split()) >= lines:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {lines} line(s)")


def _supervise(tmp_path: Path, *specs: tuple[str, int]) -> subprocess.Popen[bytes]:
    child, driver = tmp_path / "child.py", tmp_path / "driver.py"
    child.write_text(CHILD)
    driver.write_text(DRIVER)
    args = [f"{tmp_path / name}:{stop_after}" for name, stop_after in specs]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its own session and group: like `make run` in a terminal, the group a Ctrl-C signals.
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(child), *args],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for name, _ in specs:
        _wait_for(tmp_path / f"{name}.ready", 0)  # handlers installed
    return proc


@pytest.fixture
def cleanup() -> list[subprocess.Popen[bytes]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs  # type: ignore[misc]
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_first_ctrl_c_gives_each_child_one_clean_stop(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = _supervise(tmp_path, ("a", 1), ("b", 1))
    cleanup.append(proc)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert proc.wait(timeout=60) == 0
    assert (tmp_path / "a").read_text().split() == ["SIGTERM"]
    assert (tmp_path / "b").read_text().split() == ["SIGTERM"]


def test_second_ctrl_c_is_passed_on_once_as_the_hard_stop(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = _supervise(tmp_path, ("slow", 2))
    cleanup.append(proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert _wait_for(tmp_path / "slow", 1) == ["SIGTERM"]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert (tmp_path / "slow").read_text().split() == ["SIGTERM", "SIGTERM"]


def test_children_stop_cleanly_when_the_supervisor_is_killed(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    proc = _supervise(tmp_path, ("orphan", 1))
    cleanup.append(proc)
    proc.kill()
    proc.wait()
    assert _wait_for(tmp_path / "orphan", 1) == ["SIGTERM"]


GIVING_UP = textwrap.dedent(
    """
    import sys
    from daemons.run_all import Supervisor
    child, healthy = sys.argv[1:]
    # It fails once the healthy child's handlers are in (so its stop is seen, however slow).
    fails = (
        "import os, sys, time\\n"
        f"while not os.path.exists({healthy + '.ready'!r}): time.sleep(0.02)\\n"
        "print('boom', file=sys.stderr); sys.exit(3)"
    )
    broken = [sys.executable, "-c", fails]
    sup = Supervisor({"ok": [sys.executable, child, healthy, "1"], "broken": broken}, 0.05)
    sys.exit(sup.loop())
    """
)


def test_a_child_that_keeps_dying_at_start_stops_everything(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    child, driver = tmp_path / "child.py", tmp_path / "driver.py"
    child.write_text(CHILD)
    driver.write_text(GIVING_UP)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(child), str(tmp_path / "ok")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    cleanup.append(proc)  # type: ignore[arg-type]
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.count("boom") == 3 and err.count("run: broken exited with 3; restarting") == 2
    assert "broken exited with 3, 3 times in a row within 10 s of starting" in err
    assert (tmp_path / "ok").read_text().split() == ["SIGTERM"]  # the others stopped cleanly


@pytest.mark.parametrize(
    ("port", "said"),
    [("taken", "is in use (another `make run`?)"), ("80x", "PORT='80x': not a TCP port")],
)
def test_make_run_refuses_a_port_it_cannot_listen_on_before_starting_anything(
    port: str, said: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        if port == "taken":
            port = str(holder.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-c", "from daemons.run_all import main; main()"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PORT": port},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1 and said in done.stderr, done.stderr
    assert "started" not in done.stderr and "MultiFlexi portal" not in done.stdout
