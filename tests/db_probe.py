"""A one-row table of its own for tests that lock, update or lose a row on a bare engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine


@contextmanager
def probe_table(engine: Engine, name: str) -> Iterator[None]:
    """`name` (id INTEGER PRIMARY KEY, v INTEGER) holding the row (1, 0) while the block runs."""
    assert name.isidentifier(), name  # a test's own constant, written into the statements
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v INTEGER)")
        conn.exec_driver_sql(f"INSERT INTO {name} VALUES (1, 0)")  # noqa: S608
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {name}")
