"""A PostgreSQL of the test's own (initdb'd in tmp_path), for outages: stop it, start it again.

Never the shared server on 5432. Mirrors bench/chaos/infra.PrivatePostgres (kept separate so
the tests need nothing of the bench).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.services import need


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.data = folder / "data"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        if self.as_postgres:  # initdb refuses root
            argv = ("su", "postgres", "-c", " ".join(f"'{a}'" for a in argv))
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        self._run(_bin("initdb"), "-A", "trust", "-U", "postgres", "-D", str(self.data))
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "mf"')

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "postgres.log")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", opts, "-w", "start")

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/mf"

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    need(Path(_bin("initdb")).exists(), "PostgreSQL server binaries (initdb)")
    # Its own folder under /tmp: the postgres user cannot enter pytest's (root's, 0700).
    pg = PrivatePostgres(Path(tempfile.mkdtemp(prefix="mf-pg-", dir="/tmp")))
    pg.init()
    try:
        yield pg
    finally:
        pg.destroy()
