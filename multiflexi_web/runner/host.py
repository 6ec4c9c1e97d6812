"""What the executor's job slots need of the daemon process that drives them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from flask import Flask

from multiflexi_web.config import Settings
from multiflexi_web.runner.lease import Lease

T = TypeVar("T")


class Host(Protocol):
    """What the pool needs of the daemon process driving it (daemons.runtime.Runtime)."""

    app: Flask
    settings: Settings
    stop: threading.Event  # first SIGTERM: claim nothing more, finish within the stop grace
    hard_stop: threading.Event  # second SIGTERM: kill the jobs
    drain_requested: threading.Event  # an operator's drain: claim nothing, finish, idle
    drained: threading.Event  # set by the pool once nothing runs any more
    worker_id: int | None
    heartbeat_every: float
    lease: Lease  # renewed by beat()

    def beat(self) -> None: ...

    def log(self, action: str, level: int = ..., **fields: object) -> None: ...

    def retry_db(
        self, fn: Callable[[], T], *, max_wait: float = ..., tries: int | None = ...
    ) -> T: ...

    def over_memory_limit(self) -> bool: ...
