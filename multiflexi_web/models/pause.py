"""Paused scopes: a RunTemplate, an application, a company or the whole platform claims nothing."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, utcnow


class PauseScope(StrEnum):
    RUNTEMPLATE = "runtemplate"
    APPLICATION = "application"
    COMPANY = "company"
    PLATFORM = "platform"


# The platform-wide pause's target_id: one row, kept unique by the same constraint as the others.
PLATFORM_TARGET = 0


class Pause(Base):
    """One paused scope. Few rows (an operator's pauses), read by every claim: see claim.py."""

    __tablename__ = "pause"
    __table_args__ = (UniqueConstraint("scope", "target_id", name="uq_pause_scope_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(128), default="system")
    reason: Mapped[str | None] = mapped_column(Text)
