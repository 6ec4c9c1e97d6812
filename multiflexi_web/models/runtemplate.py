"""RunTemplates: an application configured and scheduled for one company."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from multiflexi_web.models.base import Base, JSONType, utcnow

if TYPE_CHECKING:
    from multiflexi_web.models.application import Application
    from multiflexi_web.models.company import Company
    from multiflexi_web.models.credential import Credential


class Interval(StrEnum):
    MANUAL = "n"
    MINUTELY = "i"
    HOURLY = "h"
    DAILY = "d"
    WEEKLY = "w"
    MONTHLY = "m"
    YEARLY = "y"
    CUSTOM = "c"


class MisfirePolicy(StrEnum):
    LATEST = "latest"
    SKIP = "skip"
    ALL = "all"


class OverlapPolicy(StrEnum):
    WAIT = "wait"
    ALLOW = "allow"
    SKIP = "skip"


class RetryBackoff(StrEnum):
    NONE = "none"
    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class RunTemplate(Base):
    __tablename__ = "runtemplate"
    __table_args__ = (
        # The scheduler's hot path: due active templates ordered by next run.
        Index("ix_runtemplate_due", "active", "next_run_at"),
        # The portal's list pages through RunTemplates by name.
        Index("ix_runtemplate_name_id", "name", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), index=True
    )
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    interval: Mapped[str] = mapped_column(String(1), default=Interval.MANUAL.value)
    cron: Mapped[str | None] = mapped_column(String(128))
    delay: Mapped[int] = mapped_column(default=0)
    timezone: Mapped[str | None] = mapped_column(String(64))
    executor: Mapped[str] = mapped_column(String(32), default="native")
    active: Mapped[bool] = mapped_column(default=True)
    misfire_policy: Mapped[str] = mapped_column(String(16), default=MisfirePolicy.LATEST.value)
    overlap_policy: Mapped[str] = mapped_column(String(16), default=OverlapPolicy.WAIT.value)
    max_attempts: Mapped[int] = mapped_column(default=1)
    retry_backoff: Mapped[str] = mapped_column(String(16), default=RetryBackoff.NONE.value)
    retry_min_gap: Mapped[int] = mapped_column(default=0)
    timeout: Mapped[int | None]
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_slot_at: Mapped[datetime | None]
    success_count: Mapped[int] = mapped_column(default=0)
    failure_count: Mapped[int] = mapped_column(default=0)
    note: Mapped[str | None] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Executor-module settings (e.g. docker memory limit); plain values only.
    executor_options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Known secret values of a job masked in its stored output (SPEC §15); off only on purpose.
    mask_output: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    company: Mapped[Company] = relationship()
    application: Mapped[Application] = relationship()
    config: Mapped[list[RunTemplateConfig]] = relationship(
        back_populates="runtemplate", cascade="all, delete-orphan", order_by="RunTemplateConfig.key"
    )
    credentials: Mapped[list[RunTemplateCredential]] = relationship(
        back_populates="runtemplate", cascade="all, delete-orphan"
    )


class RunTemplateConfig(Base):
    __tablename__ = "runtemplate_config"
    __table_args__ = (UniqueConstraint("runtemplate_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    runtemplate_id: Mapped[int] = mapped_column(ForeignKey("runtemplate.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    # Ciphertext when secret is true (security/secrets.py).
    value: Mapped[str] = mapped_column(Text, default="")
    secret: Mapped[bool] = mapped_column(default=False)

    runtemplate: Mapped[RunTemplate] = relationship(back_populates="config")


class RunTemplateCredential(Base):
    """One credential per requirement (prototype code) of the template's application."""

    __tablename__ = "runtemplate_credential"
    __table_args__ = (UniqueConstraint("runtemplate_id", "requirement"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    runtemplate_id: Mapped[int] = mapped_column(ForeignKey("runtemplate.id", ondelete="CASCADE"))
    credential_id: Mapped[int] = mapped_column(
        ForeignKey("credential.id", ondelete="CASCADE"), index=True
    )
    requirement: Mapped[str] = mapped_column(String(64))

    runtemplate: Mapped[RunTemplate] = relationship(back_populates="credentials")
    credential: Mapped[Credential] = relationship()
