"""Event sources, received events and the rules that turn them into jobs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multiflexi_web.models.base import Base, JSONType, utcnow
from multiflexi_web.models.job import BigId


class SourceKind(StrEnum):
    WEBHOOK = "webhook"
    DIRECTORY = "directory"
    REDIS = "redis"
    AMQP = "amqp"
    MQTT = "mqtt"
    CHANGES_DB = "changes-db"


class EventSource(Base):
    __tablename__ = "event_source"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), index=True
    )
    # Webhook URL token; random, unique.
    token: Mapped[str | None] = mapped_column(String(64), unique=True)
    # HMAC secret (webhook) or connection password, encrypted.
    secret: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Webhook: only `X-MultiFlexi-Signature: t=…,v1=…` requests (signed time, replays refused).
    require_timestamp: Mapped[bool] = mapped_column(default=False)
    # Webhook: seconds a signed time may differ from ours (bounds: services/events/intake.py).
    signature_tolerance: Mapped[int] = mapped_column(default=300)
    last_processed_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventStatus(StrEnum):
    NEW = "new"
    PROCESSED = "processed"
    FAILED = "failed"


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("source_id", "delivery_id"),
        Index("ix_event_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("event_source.id", ondelete="CASCADE"))
    delivery_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.NEW.value)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    payload: Mapped[Any | None] = mapped_column(JSONType)
    raw_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    matched_rules: Mapped[list[int]] = mapped_column(JSONType, default=list)


class EventRule(Base):
    __tablename__ = "event_rule"
    __table_args__ = (Index("ix_event_rule_source_priority", "source_id", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("event_source.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255), default="")
    runtemplate_id: Mapped[int] = mapped_column(
        ForeignKey("runtemplate.id", ondelete="CASCADE"), index=True
    )
    # [{"path": "$.a.b", "op": "equals"|"exists"|"in", "value": ...}]
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    evidence: Mapped[str | None] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(16), default="any")
    env_mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    priority: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSignature(Base):
    """A timestamped webhook signature seen recently: the same one again is a replay."""

    __tablename__ = "webhook_signature"
    __table_args__ = (UniqueConstraint("source_id", "signature"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("event_source.id", ondelete="CASCADE"))
    signature: Mapped[str] = mapped_column(String(64))
    # Past this the signed time is out of the window anyway: the row can go.
    expires_at: Mapped[datetime] = mapped_column(index=True)
