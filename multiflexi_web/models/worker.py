"""Daemon registry: every running scheduler, executor and eventor with its heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, JSONType, utcnow

# info[MODULES_KEY] of an executor: executor module name -> None (it can run it) or the reason.
MODULES_KEY = "modules"
# info[MISSING_KEY] of an executor: application executables its host cannot start natively.
MISSING_KEY = "missing_executables"


class Worker(Base):
    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]
    # Set by an operator (multiflexi drain, the portal, the API); the executor reads it with its
    # heartbeat, stops claiming, finishes its running jobs, then idles until it is stopped
    # (docs/architecture.md, "Pause and drain").
    drain_requested_at: Mapped[datetime | None]
    info: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.hostname}:{self.pid}"
