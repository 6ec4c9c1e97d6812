"""Post-job action configuration per RunTemplate, global defaults, and recorded runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, JSONType, utcnow
from multiflexi_web.models.job import BigId


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


class ActionDefault(Base):
    __tablename__ = "action_default"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ActionRun(Base):
    __tablename__ = "action_run"

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
