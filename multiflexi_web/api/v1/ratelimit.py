"""Per-token request limits: an in-process fixed window (MULTIFLEXI_API_RATE).

In-process, not in the database: counting in a table would put a write on every API request,
the very thing last_used_at avoids (on SQLite it would queue every read behind the daemons'
writes). The price: each portal worker process counts alone, so with N gunicorn workers a
client can reach up to N times the limit. A limit is a brake on runaway scripts, not a quota.
"""

from __future__ import annotations

import math
import threading

# Beyond this many keys, windows that have ended are dropped (memory stays bounded).
PRUNE_AT = 10_000


class FixedWindow:
    """`limit` requests per `period` seconds per key; thread-safe."""

    def __init__(self, limit: int, period: int) -> None:
        self.limit, self.period = limit, period
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, now: float) -> tuple[int, int]:
        """Count a request: (requests left in this window, seconds to wait; 0 when allowed)."""
        window = int(now // self.period)
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
            if seen_window != window:
                count = 0
            if count >= self.limit:
                return 0, max(1, math.ceil((window + 1) * self.period - now))
            self._counts[key] = (window, count + 1)
            if len(self._counts) > PRUNE_AT:
                self._prune(window)
            return self.limit - count - 1, 0

    def _prune(self, window: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
