"""Failed-login counters by client address and login, shared by every portal worker and host."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, utcnow


class LoginThrottle(Base):
    """One counter; `key` is "ip:<addr>", "ip-login:<addr> <login>" or "login:<login>"."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    blocked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
