"""The executor's cache of RunTemplate contexts (app, company, config, credentials as plain data).

Loading a RunTemplate with everything it carries costs eight queries or more (~2.5 ms on
PostgreSQL): more than a short job runs. A cached context stays valid while the configuration
epoch stays put (models/config_epoch.py: database triggers bump it on any change to what a
context is read from), so jobs of many templates keep hitting the cache, and a change reaches
new jobs within CHECK_EVERY seconds. The system env file is re-read every SYSTEM_TTL seconds.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from multiflexi_web.config import system_env_values
from multiflexi_web.db.engine import end_read
from multiflexi_web.extensions import db
from multiflexi_web.models import ConfigEpoch, RunTemplate
from multiflexi_web.models.config_epoch import EPOCH_ID
from multiflexi_web.security.secrets import SecretError
from multiflexi_web.services.jobs.environment import TemplateContext, context_for

CHECK_EVERY = 0.1  # seconds between two reads of the epoch (shared by all job threads)
SYSTEM_TTL = 1.0
MAX_ENTRIES = 10_000  # beyond this many templates the cache starts over


class ContextCache:
    def __init__(self, check_every: float = CHECK_EVERY) -> None:
        self.check_every = check_every
        self._lock = threading.Lock()
        # rt id -> (the epoch seen before it was read, the context)
        self._items: dict[int, tuple[int | None, TemplateContext]] = {}
        self._epoch: int | None = None
        self._epoch_read = float("-inf")
        self._system: tuple[float, dict[str, str]] = (float("-inf"), {})

    def get(self, rt_id: int) -> tuple[TemplateContext | None, str | None]:
        """The context, or None and the reason the job cannot run; what it read is ended
        (db/engine.py end_read) rather than left open while the job runs."""
        found = self._get(rt_id)
        end_read()  # a failed read is rolled back by the caller's retry
        return found

    def _get(self, rt_id: int) -> tuple[TemplateContext | None, str | None]:
        epoch = self._follow_changes(time.monotonic())
        with self._lock:
            hit = self._items.get(rt_id)
        # An entry read before the last change was noticed is stale even if stored after it.
        if hit is not None and hit[0] == epoch:
            return hit[1], None
        rt = db.session.get(RunTemplate, rt_id)
        if rt is None:
            return None, f"RunTemplate {rt_id} no longer exists"
        try:
            ctx = context_for(rt, self._system[1])
        except (SecretError, ValueError) as exc:
            return None, f"RunTemplate {rt_id}: {exc}"
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[rt_id] = (epoch, ctx)
        return ctx, None

    def _follow_changes(self, now: float) -> int | None:
        """The current epoch (read at most every check_every seconds); the system env file
        re-read when due, every context dropped when it changed."""
        with self._lock:
            read_epoch = now - self._epoch_read >= self.check_every
            read_system = now - self._system[0] >= SYSTEM_TTL
            if read_epoch:
                self._epoch_read = now
            if read_system:
                self._system = (now, self._system[1])
        if read_system:
            values = system_env_values()
            with self._lock:
                if values != self._system[1]:
                    self._items.clear()
                self._system = (now, values)
        if read_epoch:
            found = db.session.scalar(select(ConfigEpoch.n).where(ConfigEpoch.id == EPOCH_ID))
            with self._lock:
                self._epoch = found or 0
        return self._epoch
