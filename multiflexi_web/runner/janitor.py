"""Removing finished jobs' work directories off the job threads."""

from __future__ import annotations

import os
import queue
import shutil
import threading
from pathlib import Path


class Janitor:
    """Removes finished jobs' work directories off the job threads (rmdir can take ms)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="janitor", daemon=True)
        self.thread.start()

    def put(self, path: Path) -> None:
        self.queue.put(path)

    def close(self, timeout: float = 30) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while (path := self.queue.get()) is not None:
            try:
                os.rmdir(path)  # most jobs leave their directory empty: one system call
            except OSError:
                shutil.rmtree(path, ignore_errors=True)
