"""API request counters per token and time window, shared by every portal worker and host."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base


class ApiRateWindow(Base):
    """Requests counted for one key ("token:<id>" or "user:<id>") in one fixed window."""

    __tablename__ = "api_rate_window"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The window's number: epoch seconds // the period; old windows are pruned as new ones open.
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(default=0)
