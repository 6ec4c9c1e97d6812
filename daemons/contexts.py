"""The executor's cache of RunTemplate contexts (app, company, config, credentials as plain data).

Loading a RunTemplate with everything it carries costs a dozen queries; jobs of one template
arriving close together share one load. A change reaches new jobs within TTL seconds.
"""

from __future__ import annotations

import threading
import time

from multiflexi_web.config import system_env_values
from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate
from multiflexi_web.services.environment import TemplateContext, context_for
from multiflexi_web.services.secrets import SecretError

TTL = 1.0


class ContextCache:
    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[int, tuple[float, TemplateContext]] = {}
        self._system: tuple[float, dict[str, str]] = (0.0, {})

    def get(self, rt_id: int) -> tuple[TemplateContext | None, str | None]:
        """The context, or None and the reason the job cannot run."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(rt_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], None
        rt = db.session.get(RunTemplate, rt_id)
        if rt is None:
            return None, f"RunTemplate {rt_id} no longer exists"
        try:
            ctx = context_for(rt, self._system_values(now))
        except (SecretError, ValueError) as exc:
            return None, f"RunTemplate {rt_id}: {exc}"
        with self._lock:
            self._items[rt_id] = (now, ctx)
        return ctx, None

    def _system_values(self, now: float) -> dict[str, str]:
        stamp, values = self._system
        if now - stamp >= self.ttl:
            values = system_env_values()
            self._system = (now, values)
        return values
