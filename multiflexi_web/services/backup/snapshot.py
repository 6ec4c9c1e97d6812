"""The database part of a backup: one consistent snapshot, and putting it back.

SQLite: the online backup API copies the whole database in one step, inside one read
transaction, so the copy is the database as of one moment while the daemons go on writing.
PostgreSQL: a REPEATABLE READ transaction exports its snapshot, pg_dump dumps exactly that
snapshot, and the same transaction lists what the backup must hold besides (the artifact files
the snapshot names): the files and the rows agree. The password goes to pg_dump and pg_restore
in their environment, never on their command line, where every user of the host could read it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess  # nosec B404 - pg_dump / pg_restore with an argument list, no shell
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo
from sqlalchemy import URL, Connection, create_engine, text

from multiflexi_web.services.backup.manifest import BackupError

ARTIFACT_ROWS = (
    "SELECT job_id, storage_path, sha256, size FROM artifact "
    "WHERE storage_path IS NOT NULL ORDER BY id"
)


@dataclass(frozen=True)
class FileRef:
    """An artifact kept on disk, as the snapshot names it."""

    job_id: int
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Snapshot:
    revision: str | None
    jobs: int
    files: list[FileRef]


def kind(url: URL) -> str:
    name = url.get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"DATABASE_URL: backups are made of SQLite and PostgreSQL, not {name}")
    return name


def take(url: URL, dest: Path) -> Snapshot:
    """Write the database's snapshot to `dest`; what it holds besides."""
    if kind(url) == "sqlite":
        return _take_sqlite(_sqlite_path(url), dest)
    return _take_postgres(url, dest)


def check_target(url: URL) -> None:
    """BackupError when a snapshot cannot be put into the database `url`: a PostgreSQL one
    goes into an empty database only (pg_restore's --clean would drop only what the dump
    holds: tables a later schema added would keep their rows beside the restored ones)."""
    if kind(url) == "sqlite":
        _sqlite_path(url)
        return
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            tables = conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).all()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"database {url.database!r} holds {len(tables)} tables: restore a PostgreSQL backup "
            "into an empty database (createdb a new one and point DATABASE_URL at it)"
        )


def put_back(url: URL, src: Path) -> None:
    """Make the database `url` the snapshot `src` (check_target has passed)."""
    if kind(url) == "sqlite":
        _put_back_sqlite(src, _sqlite_path(url))
    else:
        _tool("pg_restore", url, "--no-owner", "--single-transaction", "--exit-on-error", str(src))


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("DATABASE_URL: an in-memory SQLite database has nothing to back up")
    return Path(url.database)


def _take_sqlite(path: Path, dest: Path) -> Snapshot:
    if not path.is_file():
        raise BackupError(f"{path}: no such database file")
    with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(dest)) as out:
        src.backup(out)  # all pages in one step: one read transaction, one moment
        # One self-contained file: the copy took the source's WAL mode with its pages.
        out.execute("PRAGMA journal_mode=DELETE")
        return Snapshot(_revision(out), _count_jobs(out), _refs(out.execute(ARTIFACT_ROWS)))


def _put_back_sqlite(src: Path, path: Path) -> None:
    # The backup API into the live file: it takes the file's write lock and replaces every
    # page, so the result is the snapshot exactly (no table of the current one left over).
    with closing(sqlite3.connect(src)) as snap, closing(sqlite3.connect(path)) as live:
        snap.backup(live)


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


def _count_jobs(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM job").fetchone()[0])


def _refs(rows: Iterable[Any]) -> list[FileRef]:
    return [FileRef(int(j), str(p), str(h), int(s or 0)) for j, p, h, s in rows]


def _take_postgres(url: URL, dest: Path) -> Snapshot:
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        reader = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with reader as conn, conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            exported = conn.scalar(text("SELECT pg_export_snapshot()"))
            # pg_dump reads the snapshot this transaction holds open meanwhile.
            _tool("pg_dump", url, "--format=custom", "--no-owner", f"--snapshot={exported}",
                  f"--file={dest}")  # fmt: skip
            return _pg_snapshot(conn)
    finally:
        engine.dispose()


def _pg_snapshot(conn: Connection) -> Snapshot:
    found = conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    revision = conn.scalar(text("SELECT version_num FROM alembic_version")) if found else None
    jobs = int(conn.scalar(text("SELECT count(*) FROM job")) or 0)
    return Snapshot(revision, jobs, _refs(conn.execute(text(ARTIFACT_ROWS))))


def _tool(name: str, url: URL, *args: str) -> None:
    program = shutil.which(name)
    if program is None:
        raise BackupError(f"{name}: not installed (Debian: apt-get install postgresql-client)")
    with _libpq_env(url) as (conninfo, env):
        done = subprocess.run(  # nosec B603 - fixed program, argument list
            [program, *args, f"--dbname={conninfo}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise BackupError(f"{name} exited with {done.returncode}: {tail}")


@contextmanager
def _libpq_env(url: URL) -> Iterator[tuple[str, dict[str, str]]]:
    """A connection string without the password, and the environment that carries it."""
    params: dict[str, Any] = {k: v for k, v in url.query.items() if isinstance(v, str)}
    for key, value in (
        ("host", url.host),
        ("port", url.port),
        ("user", url.username),
        ("dbname", url.database),
    ):
        if value is not None:
            params[key] = str(value)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    yield make_conninfo(**params), env
