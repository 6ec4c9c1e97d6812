"""The runs a module has under way, so that the daemon's second SIGTERM can kill them all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar


class Killable(Protocol):
    def kill(self) -> None:
        """Stop the job at once, without grace."""
        ...


R = TypeVar("R", bound=Killable)


class ActiveRuns(Generic[R]):
    def __init__(self) -> None:
        self._runs: set[R] = set()
        self._lock = threading.Lock()

    @contextmanager
    def running(self, run: R) -> Iterator[R]:
        with self._lock:
            self._runs.add(run)
        try:
            yield run
        finally:
            with self._lock:
                self._runs.discard(run)

    def kill_all(self) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.kill()
