"""Companies (tenants) and their environment variables."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from multiflexi_web.models.base import Base, utcnow

if TYPE_CHECKING:
    from multiflexi_web.models.user import CompanyMember


class Company(Base):
    __tablename__ = "company"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(255))
    ic: Mapped[str | None] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(default=True)
    zabbix_host: Mapped[str | None] = mapped_column(String(255))
    logo: Mapped[str | None] = mapped_column(Text)
    # Retention overrides (services/housekeeping/policy.py); NULL = the global setting.
    retain_jobs_days: Mapped[int | None]
    retain_failed_days: Mapped[int | None]
    retain_output_days: Mapped[int | None]
    retain_artifacts_days: Mapped[int | None]
    artifact_budget_mb: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    env: Mapped[list[CompanyEnv]] = relationship(
        back_populates="company", cascade="all, delete-orphan", order_by="CompanyEnv.key"
    )
    members: Mapped[list[CompanyMember]] = relationship(
        back_populates="company", cascade="all, delete-orphan"
    )


class CompanyEnv(Base):
    __tablename__ = "company_env"
    __table_args__ = (UniqueConstraint("company_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    # Ciphertext when secret is true: the key is named like a secret (catalogue/fields.py).
    value: Mapped[str] = mapped_column(Text, default="")
    secret: Mapped[bool] = mapped_column(default=False, server_default=false())

    company: Mapped[Company] = relationship(back_populates="env")
