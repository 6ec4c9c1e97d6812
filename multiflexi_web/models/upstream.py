"""Which of our rows each upstream MultiFlexi row became: makes the upstream import idempotent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, utcnow


class UpstreamMap(Base):
    """One upstream row (table `kind`, its id) and the id of the row it became here."""

    __tablename__ = "upstream_map"
    __table_args__ = (UniqueConstraint("kind", "upstream_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Upstream's table name (company, apps, runtemplate, job ...).
    kind: Mapped[str] = mapped_column(String(64))
    upstream_id: Mapped[str] = mapped_column(String(64))
    # The upstream uuid where the row has one (apps, credential prototypes).
    upstream_uuid: Mapped[str | None] = mapped_column(String(64))
    our_id: Mapped[int]
    # Where it came from, without password: several installations may be moved in, one by one.
    source: Mapped[str] = mapped_column(String(255), default="")
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
