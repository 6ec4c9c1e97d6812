"""A job is started only while its claim holds (docs/architecture.md, "Reliability")."""

from __future__ import annotations

import threading

from multiflexi_web.extensions import db
from multiflexi_web.runner.host import Host
from multiflexi_web.services.jobs import transitions as jobs
from multiflexi_web.services.jobs.claim import ClaimedJob


class Claims:
    """When each of this executor's claims was sent, and whether one still holds."""

    def __init__(self, rt: Host) -> None:
        self.rt = rt
        self._sent: dict[int, float] = {}  # job id -> monotonic time its claim was sent
        self._lock = threading.Lock()

    def made(self, claimed: list[ClaimedJob], sent: float) -> None:
        with self._lock:
            for c in claimed:
                self._sent[c.id] = sent

    def holds(self, job_id: int) -> bool:
        """Known locally while the lease never lapsed since the claim was sent; otherwise
        asked of the database (a reaper may have taken the job meanwhile)."""
        with self._lock:
            sent = self._sent.pop(job_id, 0.0)
        if self.rt.lease.holds_claim(sent):
            return True
        if self.rt.retry_db(lambda: self._in_database(job_id)):
            return True
        self.rt.log("claim_lost", job=job_id)
        return False

    def _in_database(self, job_id: int) -> bool:
        with self.rt.app.app_context():
            held = jobs.still_claimed(job_id, self.rt.worker_id or 0)
            db.session.rollback()
            return held
