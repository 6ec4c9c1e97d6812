"""Applications imported from MultiFlexi app JSON, their config fields and exit codes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from multiflexi_web.models.base import Base, JSONType, utcnow


class FieldType(StrEnum):
    STRING = "string"
    FILE_PATH = "file-path"
    EMAIL = "email"
    URL = "url"
    INTEGER = "integer"
    FLOAT = "float"
    BOOL = "bool"
    PASSWORD = "password"  # noqa: S105 - a field type name, not a secret
    SET = "set"
    TEXT = "text"


class Application(Base):
    __tablename__ = "application"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    title: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    executable: Mapped[str] = mapped_column(String(1024))
    cmdparams: Mapped[str | None] = mapped_column(Text)
    cmdparams_template: Mapped[str | None] = mapped_column(Text)
    setup: Mapped[str | None] = mapped_column(Text)
    deploy: Mapped[str | None] = mapped_column(Text)
    homepage: Mapped[str | None] = mapped_column(String(1024))
    version: Mapped[str | None] = mapped_column(String(64))
    schema_version: Mapped[str | None] = mapped_column(String(32))
    ociimage: Mapped[str | None] = mapped_column(String(512))
    icon: Mapped[str | None] = mapped_column(Text)
    requirements: Mapped[list[str]] = mapped_column(JSONType, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # [{"name", "path" (regex), "type", "description"}]
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    produces: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    consumes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    kubernetes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    events: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Localised originals of name/title/description: {"name": {"en": ..., "cs": ...}, ...}
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Keys of the JSON file this platform does not model, kept so export round-trips.
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    source_file: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    fields: Mapped[list[AppField]] = relationship(
        back_populates="application", cascade="all, delete-orphan", order_by="AppField.position"
    )
    exit_codes: Mapped[list[AppExitCode]] = relationship(
        back_populates="application", cascade="all, delete-orphan", order_by="AppExitCode.code"
    )

    def field(self, keyname: str) -> AppField | None:
        return next((f for f in self.fields if f.keyname == keyname), None)

    def exit_code(self, code: int | None) -> AppExitCode | None:
        return next((c for c in self.exit_codes if c.code == code), None)


class AppField(Base):
    __tablename__ = "app_field"
    __table_args__ = (UniqueConstraint("application_id", "keyname"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    keyname: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32), default=FieldType.STRING.value)
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    hint: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    default: Mapped[str | None] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(default=False)
    secret: Mapped[bool] = mapped_column(default=False)
    multiline: Mapped[bool] = mapped_column(default=False)
    expiring: Mapped[bool] = mapped_column(default=False)
    options: Mapped[Any | None] = mapped_column(JSONType)
    category: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(default=0)
    # Localised description/hint and any unmodelled keys of the field object.
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    application: Mapped[Application] = relationship(back_populates="fields")


class AppExitCode(Base):
    __tablename__ = "app_exit_code"
    __table_args__ = (UniqueConstraint("application_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    code: Mapped[int]
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16), default="error")
    retry: Mapped[bool | None]
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    application: Mapped[Application] = relationship(back_populates="exit_codes")
