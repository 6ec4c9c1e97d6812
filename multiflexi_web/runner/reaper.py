"""The executor's housekeeping between claims: its heartbeat first, then the reaping.

Reaping rules (docs/architecture.md, "Reliability"):
- the journals of this host's dead executors are recorded before anything is judged;
- jobs of other workers are reaped, and workers marked dead, only by an executor that has been
  connected without a single failed unit of work for LOST_AFTER: after an outage every live
  executor gets LOST_AFTER to write its heartbeat before anybody judges it by heartbeats that
  nobody could write;
- a worker is dead when its heartbeat is older than LOST_AFTER by the database's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from multiflexi_web.db.retry import LINK
from multiflexi_web.extensions import db
from multiflexi_web.metrics import instruments as metrics
from multiflexi_web.runner.host import Host
from multiflexi_web.runner.journal import Journal
from multiflexi_web.runner.replay import replay_orphans
from multiflexi_web.runner.unit import writing
from multiflexi_web.services.jobs import transitions as jobs


class Reaper:
    def __init__(self, rt: Host, journal: Journal, mine: Callable[[], set[int]]) -> None:
        self.rt, self.s, self.journal, self.mine = rt, rt.settings, journal, mine
        self.beat_every = rt.heartbeat_every
        self.reap_every = max(0.5, min(self.s.lost_after / 4, 15.0))
        self._next_reap = 0.0

    def replay_journals(self) -> int:
        """Record what this host's dead executors journaled (each entry through the retry)."""

        def in_app(unit: Callable[[], None]) -> None:
            with self.rt.app.app_context():
                unit()

        return replay_orphans(
            Path(self.s.state_path),
            self.journal.path,
            lambda unit: self.rt.retry_db(lambda: in_app(unit)),
        )

    def maintain(self) -> None:
        """Inside a unit of work of the main loop (its retry resets LINK on any failure)."""
        lease = self.rt.lease
        # After a reconnect (or with no heartbeat thread, in-process) the heartbeat goes first.
        if lease.age() >= self.beat_every or LINK.last_error >= lease.renewed_at:
            self.rt.beat()
        now = time.monotonic()
        if now < self._next_reap:
            return
        self._next_reap = now + self.reap_every
        replayed = self.replay_journals()
        if replayed:
            self.rt.log("journal_replayed", entries=replayed)
        self._reap(LINK.connected_for() >= self.s.lost_after)

    def _reap(self, judge_others: bool) -> None:
        mine = self.mine()
        dead: list[int] = []
        lost: list[int] = []
        with writing():
            if judge_others:
                lost = jobs.reap_lost(self.s.lost_after)
                dead = jobs.mark_dead_workers(self.s.lost_after)
            lost += jobs.reap_orphans(self.rt.worker_id or 0, mine)
            db.session.commit()
        metrics.LOST.inc(len(lost))
        metrics.DEAD_WORKERS.inc(len(dead))
        for worker_id in dead:
            self.rt.log("worker_dead", dead_worker=worker_id)
        for job_id in lost:
            self.rt.log("job_lost", job=job_id)
