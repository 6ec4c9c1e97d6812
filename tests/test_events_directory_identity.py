"""A directory event's identity stays the same for a file left alone, also through a chmod
or chown: processed files stay in the folder, and a rescan must start no job of them again."""

from __future__ import annotations

import os
from pathlib import Path

from multiflexi_web.sources import directory


def _deliver(path: Path, body: bytes, mtime: int) -> None:
    """What rsync -t does: write under a temporary name, set the sender's mtime, rename."""
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(body)
    os.utime(part, (mtime, mtime))
    part.rename(path)


def test_an_unchanged_file_keeps_its_identity(tmp_path: Path) -> None:
    """A restart's rescan finds the stored event again: nothing new for a file left alone,
    nor for one whose owner or mode changed (a chown -R of the folder)."""
    path = tmp_path / "orders.csv"
    _deliver(path, b"id\n1001\n", 1_700_000_000)
    first = directory.file_event(str(path))
    assert directory.file_event(str(path)).delivery_id == first.delivery_id
    path.chmod(0o600)
    assert directory.file_event(str(path)).delivery_id == first.delivery_id
    _deliver(path, b"id\n2002\n\n", 1_700_000_000)  # another size: another file
    assert directory.file_event(str(path)).delivery_id != first.delivery_id
