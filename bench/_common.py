"""Shared by the benchmarks: a scratch database on either backend."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN = os.environ.get("MULTIFLEXI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(kind: str, prefix: str = "mf_bench") -> Iterator[str]:
    """A SQLAlchemy URL of an empty SQLite file or PostgreSQL database, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
