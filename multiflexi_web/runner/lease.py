"""The executor's lease: its worker heartbeat as seen from inside, on the local monotonic clock.

A reaper (on any host) marks this worker's jobs lost once the worker row's heartbeat is older
than LOST_AFTER by the database's clock. A beat is stamped by the database when the statement
runs, which is after this process sent it; so timing the lease from the moment the beat was
sent never overestimates it. Past `fence_after` without a renewal the executor stops its jobs
itself, before anybody may rescue (re-run) them elsewhere.
"""

from __future__ import annotations

import threading
import time


class Lease:
    def __init__(self, lost_after: float, fence_fraction: float = 0.75) -> None:
        self.lost_after = lost_after
        self.fence_after = lost_after * fence_fraction
        self._lock = threading.Lock()
        now = time.monotonic()
        self.renewed_at = now  # when the last beat that committed was sent
        self.lapsed_at = now  # last renewal after a gap long enough for a reaper to act

    def renewed(self, sent_at: float) -> None:
        """A beat sent at `sent_at` (monotonic) committed."""
        with self._lock:
            if sent_at <= self.renewed_at:
                return
            if sent_at - self.renewed_at >= self.lost_after / 2:
                # A gap this long may have let a reaper judge us: claims made before it are
                # checked in the database before they start.
                self.lapsed_at = sent_at
            self.renewed_at = sent_at

    def age(self) -> float:
        return time.monotonic() - self.renewed_at

    def lost(self) -> bool:
        """Not renewed for fence_after: another host may soon take our jobs over."""
        return self.lost_after > 0 and self.age() >= self.fence_after

    def holds_claim(self, claimed_at: float) -> bool:
        """A job claimed at `claimed_at` (monotonic) can start without asking the database: the
        lease never lapsed since the claim and was renewed recently."""
        with self._lock:
            return claimed_at >= self.lapsed_at and self.age() < self.lost_after / 2
