"""Post-job action configuration per RunTemplate, global defaults, and recorded runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, JSONType, utcnow
from multiflexi_web.models.job import BigId

# When a configured action fires (ActionConfig.trigger): on every matching finish, on the first
# success after failures, or when the failures in a row reach `after_failures`.
TRIGGERS = ("always", "recovery", "failures")
# ActionRun.status values; pending and retrying runs wait for next_attempt_at.
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "retrying")


class ActionConfig(Base):
    __tablename__ = "action_config"
    __table_args__ = (UniqueConstraint("runtemplate_id", "mode", "action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    runtemplate_id: Mapped[int] = mapped_column(
        ForeignKey("runtemplate.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(8))  # "success" | "failure"
    action: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Plain values; keys the action declares secret are stored encrypted.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Which non-zero outcomes a failure action fires on, besides plain failed.
    on_timed_out: Mapped[bool] = mapped_column(default=True, server_default=true())
    on_lost: Mapped[bool] = mapped_column(default=True, server_default=true())
    on_cancelled: Mapped[bool] = mapped_column(default=False, server_default=false())
    trigger: Mapped[str] = mapped_column(String(16), default="always", server_default="always")
    after_failures: Mapped[int] = mapped_column(default=1, server_default="1")


class ActionDefault(Base):
    __tablename__ = "action_default"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ActionRun(Base):
    """One delivery of one action for one finished job: the outbox row and its record."""

    __tablename__ = "action_run"
    __table_args__ = (Index("ix_action_run_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigId, ForeignKey("job.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    config_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_config.id", ondelete="SET NULL")
    )
    # Stable for the run (all its attempts): peers deduplicate deliveries with it.
    idempotency_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    next_attempt_at: Mapped[datetime | None]
    # The lease: who delivers it now, since when (reclaimed once it is older than the lease).
    claimed_at: Mapped[datetime | None]
    owner_id: Mapped[int | None]
