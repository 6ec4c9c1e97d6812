"""Directory source: a new complete file (size stable or closed) becomes one event with its path."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiflexi_web.services.events.store import Incoming
from multiflexi_web.sources.base import KindInfo, Sink, SourceSpec, keep_running, taken

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler

TICK = 0.1
DEFAULT_IGNORE = [".*", "*.part", "*.tmp", "*.swp", "*.crdownload"]


@dataclass
class _Pending:
    signature: tuple[int, int] | None
    due: float


class _Tracker:
    """Files seen changing, each with the time it is due to be checked for completeness."""

    def __init__(self, spec: SourceSpec) -> None:
        self.pattern = str(spec.config.get("pattern") or "*")
        self.ignore = list(spec.config.get("ignore") or DEFAULT_IGNORE)
        self.settle = float(spec.config.get("settle_seconds", 2.0))
        self.closed_settle = min(self.settle, float(spec.config.get("closed_settle_seconds", 0.3)))
        self.pending: dict[str, _Pending] = {}
        self.lock = threading.Lock()

    def wanted(self, path: str) -> bool:
        name = os.path.basename(path)
        return fnmatch.fnmatch(name, self.pattern) and not any(
            fnmatch.fnmatch(name, pat) for pat in self.ignore
        )

    def touch(self, path: str, closed: bool = False) -> None:
        if not self.wanted(path):
            return
        wait = self.closed_settle if closed else self.settle
        with self.lock:
            self.pending[path] = _Pending(_signature(path), time.monotonic() + wait)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if event.event_type == "moved":
            self.touch(os.fsdecode(event.dest_path), closed=True)
        elif event.event_type in ("created", "modified", "closed"):
            self.touch(os.fsdecode(event.src_path), closed=event.event_type == "closed")

    def due(self) -> list[str]:
        """Paths unchanged since they were last seen, once their settle time has passed."""
        now, ready = time.monotonic(), []
        with self.lock:
            for path, entry in list(self.pending.items()):
                if entry.due > now:
                    continue
                current = _signature(path)
                if current is None:
                    del self.pending[path]  # gone before it was complete
                elif current != entry.signature:
                    self.pending[path] = _Pending(current, now + self.settle)
                else:
                    del self.pending[path]
                    ready.append(path)
        return ready


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if os.path.isfile(path) else None


def file_event(path: str) -> Incoming:
    """The event of a complete file; its delivery id makes a restart's rescan a no-op."""
    st = os.stat(path)
    # Not the inode nor the ctime: processed files stay in the folder, and a chmod -R, a move
    # of the folder or a restore from a backup would change them and start every file's job
    # again. A new file under an old name with the very same size and kept mtime (cp -p,
    # rsync -t) is therefore taken for the old one: docs/architecture.md says so.
    identity = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    payload: dict[str, Any] = {
        "path": os.path.abspath(path),
        "name": os.path.basename(path),
        "size": st.st_size,
        "mtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
    }
    return Incoming(payload=payload, delivery_id=hashlib.sha256(identity.encode()).hexdigest())


def consume(spec: SourceSpec, sink: Sink) -> None:
    folder = str(spec.config["path"])
    keep_running(sink, lambda: _session(spec, sink), (OSError,), f"directory {folder}")


def _handler(tracker: _Tracker) -> FileSystemEventHandler:
    """watchdog's side of the tracker."""
    # Here, not at import: an eventor without a directory source never loads watchdog.
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            tracker.on_any_event(event)

    return Handler()


def _session(spec: SourceSpec, sink: Sink) -> None:
    from watchdog.observers import Observer

    folder = Path(str(spec.config["path"]))
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    tracker = _Tracker(spec)
    recursive = bool(spec.config.get("recursive", False))
    observer = Observer()
    observer.schedule(_handler(tracker), str(folder), recursive=recursive)
    observer.start()
    try:
        # Files that arrived while no eventor ran; already-stored ones are no-ops by delivery id.
        for path in folder.rglob("*") if recursive else folder.iterdir():
            tracker.touch(str(path))
        sink.healthy()
        _watch(tracker, observer, sink)
    finally:
        observer.stop()
        observer.join(timeout=5)


def _watch(tracker: _Tracker, observer: Any, sink: Sink) -> None:
    while not sink.stop.wait(TICK):
        if not observer.is_alive():
            raise OSError("the directory watch stopped (folder removed?)")
        for path in tracker.due():
            try:
                item = file_event(path)
            except OSError:
                continue  # removed between the check and now
            # Declined (source disabled): the file stays; the next session's rescan finds it.
            taken(sink.store(item))


KIND = KindInfo(
    "Directory watch (new complete files)",
    required=("path",),
    defaults={"pattern": "*", "settle_seconds": 2.0, "recursive": False},
    consumer=consume,
    admin_only="the eventor lists the platform host's folders with the platform's own rights",
)
