"""The finish journal: finishes the database could not take yet, kept on local disk.

One file per executor process (`journal-<host>-<pid>-<random>.jsonl` in the state folder, 0600,
JSON lines, fsync'd), locked with flock for the process's life: a file nobody holds belongs to a
dead executor and any executor of the same host replays it before it claims or reaps. Replay
is idempotent: a finish is a conditional UPDATE of a job that is still running, and the rows
are stored only when it matched.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("multiflexi.executor")
INLINE_MAX = 64 * 1024  # bytes kept inside the JSON line; larger values go to a side file


class Journal:
    """This process's journal file: append entries, count its size, clear it."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        make_private(folder)
        # A name of this process's own: a restarted executor often gets its dead predecessor's
        # pid (PID 1 in a container restarted in place, the same pid after a reboot), and
        # taking that file for its own it never replayed the finishes it held.
        tag = f"{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = folder / f"journal-{tag}.jsonl"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours alone while we live
        self.size = 0
        self._side = 0
        self._sides: list[Path] = []  # side files written since the last clear

    def append(self, entries: list[dict[str, Any]], *, sync: bool = True) -> None:
        """Write the entries, and fsync them unless `sync` is false (a side file per large value
        is always fsync'd first). Unsynced entries survive this process being killed (they are
        in the kernel's page cache), not the machine losing power."""
        # The C encoder walks the entry; only bytes come back to Python (`default`), where a
        # walk of every value in Python was 4% of a busy executor's interpreter.
        encode = json.JSONEncoder(separators=(",", ":"), default=self._bytes).encode
        lines = [encode(e) + "\n" for e in entries]
        data = "".join(lines).encode()
        os.write(self.fd, data)
        if sync:
            os.fsync(self.fd)
        self.size += len(data)

    def sync(self) -> None:
        os.fsync(self.fd)

    def full(self) -> bool:
        return self.size >= self.max_bytes

    def clear(self) -> None:
        """Every entry is recorded in the database: start the file afresh."""
        if not self.size:
            return
        os.ftruncate(self.fd, 0)
        os.fsync(self.fd)
        self.size = 0
        for side in self._sides:
            side.unlink(missing_ok=True)
        self._sides = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if not self.size:
                self.path.unlink()
            os.close(self.fd)

    def _bytes(self, value: Any) -> Any:
        """JSON for what the encoder cannot write itself: bytes, inline or in a side file."""
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"journal: cannot write a {type(value).__name__}")
        raw = bytes(value)
        if len(raw) <= INLINE_MAX:
            return {"$b64": base64.b64encode(raw).decode()}
        self._side += 1
        side = self.path.with_name(f"{self.path.stem}.{self._side}.bin")
        _write_synced(side, raw)
        self._sides.append(side)
        self.size += len(raw)
        return {"$file": side.name}


def host_tag() -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())


def make_private(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_sides(path: Path) -> None:
    for side in path.parent.glob(f"{path.stem}.*.bin"):
        side.unlink(missing_ok=True)


class Orphan:
    """The journal of a dead executor of this host, locked while it is replayed."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                out.append(_decode(json.loads(line), self.path.parent))
            except (ValueError, OSError) as exc:  # a line cut short by a crash mid-write
                log.warning("action=journal_bad_line file=%s line=%d error=%s", self.path, n, exc)
        return out

    def exits(self) -> dict[int, int]:
        """Job id -> exit code of the jobs its guard saw end and its executor had not yet
        journaled (runner/guard.py); empty when the executor died with none such. The file is
        a log: `+<job> <code>` when the guard saw an exit, `-<job>` when the executor reaped it
        (a line without a sign is a `+`)."""
        found: dict[int, int] = {}
        try:
            text = self.path.with_suffix(".exits").read_text()
        except FileNotFoundError:
            return found
        for line in text.splitlines():
            sign, rest = (line[:1], line[1:]) if line[:1] in ("+", "-") else ("+", line)
            job, _, code = rest.partition(" ")
            if not job.isdigit():
                continue
            if sign == "-":
                found.pop(int(job), None)
            elif code.lstrip("-").isdigit():
                found[int(job)] = int(code)
        return found

    def done(self) -> None:
        """Everything in it is recorded: remove it (while still holding its lock)."""
        _remove_sides(self.path)
        self.path.with_suffix(".exits").unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def release(self) -> None:
        os.close(self.fd)


def orphans(folder: Path, mine: Path | None) -> list[Orphan]:
    """Journals of this host that no live process holds (their executor died)."""
    found = []
    for path in sorted(folder.glob(f"journal-{host_tag()}-*.jsonl")):
        if path == mine:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # replayed and removed by another executor meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its executor lives: it records its own finishes
            continue
        if not path.exists():  # removed between our open and our lock
            os.close(fd)
            continue
        found.append(Orphan(path, fd))
    return found


def _decode(value: Any, folder: Path) -> Any:
    if isinstance(value, dict):
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$file" in value:
            return (folder / Path(value["$file"]).name).read_bytes()
        return {k: _decode(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, folder) for v in value]
    return value
