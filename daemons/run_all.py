"""`make run`: bootstrap, then the portal and every daemon in one foreground process group."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from multiflexi_web.config import PROJECT_ROOT
from multiflexi_web.security.process import term_with_parent

BIN = Path(sys.executable).parent
RESTART_AFTER = 3.0
STOP_GRACE = 15.0
# A child that dies this soon after its start, this many times in a row, will not start
# (a port taken, a database that refuses us, a job user that cannot be made): restarting it
# forever only buries the first error under the same one every few seconds.
STARTUP_WINDOW = 10.0
GIVE_UP_AFTER = 3


def port_problem(port: str) -> str | None:
    """Why the portal could not listen on 127.0.0.1:`port`, else None. Checked before anything
    starts: gunicorn alone retries a taken port, then exits, and its supervisor restarted it."""
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return f"PORT={port!r}: not a TCP port (1-65535)"
    with socket.socket() as probe:
        # As gunicorn binds: a port left in TIME_WAIT by a stopped portal is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on 127.0.0.1 is in use (another `make run`?); "
                    "choose another, e.g. PORT=8001 make run"
                )
            return f"port {port} on 127.0.0.1: {exc.strerror or exc}"
    return None


def commands(port: str) -> dict[str, list[str]]:
    return {
        "web": [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            os.environ.get("MULTIFLEXI_WEB_WORKERS", "2"),
            "--access-logfile",
            "-",
            "app:app",
        ],
        "scheduler": [str(BIN / "multiflexi-scheduler")],
        "executor": [str(BIN / "multiflexi-executor")],
        "eventor": [str(BIN / "multiflexi-eventor")],
    }


class Supervisor:
    """Starts each child, restarts one that dies, stops all on Ctrl-C or SIGTERM.

    Each child runs in its own process group: a Ctrl-C in the terminal signals the foreground
    group, so children sharing ours would get it from the terminal and again from us, and a
    daemon takes a second signal as "stop now". Here they get exactly one SIGTERM per signal we
    receive: the first a clean stop, a second Ctrl-C a hard one. If we die, they get SIGTERM.
    """

    def __init__(self, cmds: dict[str, list[str]], restart_after: float = RESTART_AFTER) -> None:
        self.cmds = {name: cmd for name, cmd in cmds.items() if Path(cmd[0]).exists()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.early_exits: dict[str, int] = {}  # deaths in a row soon after starting
        self.restart_after = restart_after
        self.stopping = False

    def start(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            self.cmds[name], cwd=PROJECT_ROOT, process_group=0, preexec_fn=term_with_parent
        )
        self.started[name] = time.monotonic()
        print(f"run: started {name} (pid {self.procs[name].pid})", file=sys.stderr)

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            self.forward()  # a second Ctrl-C: the daemons' own "stop now"
        self.stopping = True

    def forward(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def loop(self) -> int:
        for name in self.cmds:
            self.start(name)
        while not self.stopping:
            time.sleep(0.5)
            for name, proc in list(self.procs.items()):
                if proc.poll() is None or self.stopping:
                    continue
                if time.monotonic() - self.started[name] < STARTUP_WINDOW:
                    self.early_exits[name] = self.early_exits.get(name, 0) + 1
                else:
                    self.early_exits[name] = 0  # it had run: a new start, not a failing one
                if self.early_exits[name] >= GIVE_UP_AFTER:
                    print(
                        f"run: {name} exited with {proc.returncode}, {GIVE_UP_AFTER} times in a "
                        f"row within {STARTUP_WINDOW:.0f} s of starting; stopping everything "
                        "(its first error is above)",
                        file=sys.stderr,
                    )
                    self.stop_all()
                    return 1
                print(f"run: {name} exited with {proc.returncode}; restarting", file=sys.stderr)
                time.sleep(self.restart_after)
                self.start(name)
        return self.stop_all()

    def stop_all(self) -> int:
        self.forward()
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        print("run: stopped", file=sys.stderr)
        return 0


def main() -> None:
    port = os.environ.get("PORT", "8000")
    problem = port_problem(port)
    if problem:
        sys.exit(f"run: {problem}")
    os.chdir(PROJECT_ROOT)
    from multiflexi_web.bootstrap import bootstrap, ensure_local_keys
    from multiflexi_web.security.process import ensure_job_user, private_umask

    private_umask()  # the children inherit it: database, artifacts, work directories, .env
    local_env = Path(os.environ.get("MULTIFLEXI_LOCAL_ENV", str(PROJECT_ROOT / ".env")))
    written = ensure_local_keys(local_env)
    if written:
        print(f"run: generated {', '.join(written)} into {local_env}", file=sys.stderr)
    job_user = os.environ.get("MULTIFLEXI_JOB_USER", "multiflexi-job")
    if os.geteuid() == 0 and job_user != "daemon" and ensure_job_user(job_user) is None:
        print(f"run: cannot create the job user {job_user!r}; the executor will refuse to start")
    from multiflexi_web import create_app

    admin = bootstrap(create_app())
    print(f"\n  MultiFlexi portal: http://127.0.0.1:{port}/")
    if admin.password:
        print(f"  Log in as '{admin.login}' with password: {admin.password}")
        print("  (shown once; set MULTIFLEXI_ADMIN_PASSWORD before the first run to choose it)\n")
    else:
        print(f"  Log in as '{admin.login}' (password shown at the first run)\n")
    sys.stdout.flush()
    sup = Supervisor(commands(port))
    signal.signal(signal.SIGINT, sup.on_signal)
    signal.signal(signal.SIGTERM, sup.on_signal)
    sys.exit(sup.loop())


if __name__ == "__main__":
    main()
