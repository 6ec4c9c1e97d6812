"""Private servers and process bookkeeping: a PostgreSQL and a Redis of our own, daemons in
their own process groups, and a sweep that kills whatever the run left behind."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


class PrivatePostgres:
    """An initdb'd cluster in `folder` on a free port; as root it runs as the postgres user."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.data, self.log = folder / "data", folder / "postgres.log"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        if self.as_postgres:
            argv = ("su", "postgres", "-c", " ".join(_quote(a) for a in argv))
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        self._run(pg_bin("initdb"), "-A", "trust", "-U", "postgres", "-D", str(self.data))
        self.start()

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        opts += " -c max_connections=200 -c fsync=off"
        ctl = pg_bin("pg_ctl")
        self._run(ctl, "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def admin_url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """An empty database, or a copy of `template` (a migrated one: saves a migration)."""
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(sql)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def terminate_backends(self, database: str) -> int:
        """pg_terminate_backend of every client connection to `database`; how many."""
        sql = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=3) as conn:
            row = conn.execute(sql, (database,)).fetchone()
        return int(row[0]) if row else 0

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


class PrivateRedis:
    """redis-server on a free port, appending every write to its AOF so a restart keeps lists."""

    def __init__(self, folder: Path, procs: Procs) -> None:
        self.folder, self.procs, self.port = folder, procs, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.folder), "--save", "", "--appendonly", "yes"]
        argv += ["--appendfsync", "always", "--protected-mode", "no"]
        self.proc = self.procs.start("redis", argv)
        _wait_port(self.port, 10)

    def kill(self) -> None:
        if self.proc is not None:
            self.procs.kill(self.proc, signal.SIGKILL)
            self.proc = None


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Procs:
    """Every process the harness starts, each in its own session (process group), logged."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.live: list[subprocess.Popen[bytes]] = []
        self.count: dict[str, int] = {}
        self.written: dict[Path, None] = {}  # the logs, in order

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        n = self.count[name] = self.count.get(name, 0) + 1
        with open(self.logs / f"{name}-{n}.log", "ab") as log:
            self.written[Path(log.name)] = None
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.live.append(proc)
        return proc

    def log_text(self) -> str:
        """Everything the processes started here logged."""
        return "".join(p.read_text("utf-8", "replace") for p in self.written)

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """`sig` to the process alone (what a crash or systemd does); reaped when it is KILL."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait()

    def stop_all(self) -> None:
        """KILL every process group the harness started (their children too)."""
        for proc in self.live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.live.clear()


def pids_mentioning(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (the run's folder): jobs left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def kill_strays(marker: str) -> int:
    pids = pids_mentioning(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def mount_tmpfs(path: Path, size_kb: int) -> str | None:
    """A tiny tmpfs at `path`; None when mounted, else why not (not root, mount failed)."""
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs"
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else f"mount failed: {done.stderr.strip()}"


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
