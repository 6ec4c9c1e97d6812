"""SQLite's WAL file is cut back after a burst that a long read made it grow (db/engine.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from multiflexi_web.db import engine as engines


def test_the_wal_file_shrinks_back_once_the_long_read_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "WAL_SIZE_LIMIT", 64 * 1024)
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite:///{path}")
    engines.install_sqlite_hooks(engine)
    wal = Path(f"{path}-wal")
    try:
        with engine.connect() as writer:
            writer.execute(text("CREATE TABLE t (x BLOB)"))
            writer.commit()
            with engine.connect() as reader:  # a long read: its snapshot keeps the WAL
                reader.execute(text("SELECT count(*) FROM t")).scalar()
                for _ in range(1500):  # ~6 MB: past the 1,000-page automatic checkpoint
                    writer.execute(text("INSERT INTO t VALUES (randomblob(4000))"))
                    writer.commit()
                grown = wal.stat().st_size
                reader.rollback()
            for _ in range(3):  # a checkpoint now completes; the next write starts over
                writer.execute(text("INSERT INTO t VALUES (1)"))
                writer.commit()
        assert grown > 4 * 1024 * 1024
        assert wal.stat().st_size <= 64 * 1024
    finally:
        engine.dispose()
