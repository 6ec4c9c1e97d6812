"""This installation's identity: what its engine objects are labelled with.

Two installations (staging beside production) may share a Docker engine, a Kubernetes namespace
or an Azure resource group, and both number their jobs from 1: a label naming only the job would
let one installation's executor remove the other's running container as its own leftover, or a
retry fence stop the other's job of the same id. One row, made with the schema (or by the first
daemon that finds none: executors/installation.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, utcnow

ROW_ID = 1


class Installation(Base):
    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always ROW_ID
    uid: Mapped[str] = mapped_column(String(32))  # random hex, never changes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
