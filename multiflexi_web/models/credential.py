"""Credential prototypes, a company's credential types, and credentials with their values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from multiflexi_web.models.base import Base, JSONType, utcnow


class CredentialPrototype(Base):
    __tablename__ = "credential_prototype"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[str | None] = mapped_column(String(32))
    logo: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(1024))
    homepage: Mapped[str | None] = mapped_column(String(1024))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # "prototype" (*.credprototype.json) or "type" (*.credtype.json): the file format it came from.
    source_format: Mapped[str] = mapped_column(String(16), default="prototype")
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    fields: Mapped[list[CredentialPrototypeField]] = relationship(
        back_populates="prototype",
        cascade="all, delete-orphan",
        order_by="CredentialPrototypeField.position",
    )


class CredentialPrototypeField(Base):
    __tablename__ = "credential_prototype_field"
    __table_args__ = (UniqueConstraint("prototype_id", "keyword"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prototype_id: Mapped[int] = mapped_column(
        ForeignKey("credential_prototype.id", ondelete="CASCADE")
    )
    keyword: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32), default="string")
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    hint: Mapped[str | None] = mapped_column(Text)
    default: Mapped[str | None] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(default=False)
    secret: Mapped[bool] = mapped_column(default=False)
    options: Mapped[Any | None] = mapped_column(JSONType)
    position: Mapped[int] = mapped_column(default=0)
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    prototype: Mapped[CredentialPrototype] = relationship(back_populates="fields")


class CredentialType(Base):
    """A company's configured instance of a prototype."""

    __tablename__ = "credential_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), index=True
    )
    prototype_id: Mapped[int] = mapped_column(
        ForeignKey("credential_prototype.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prototype: Mapped[CredentialPrototype] = relationship()


class Credential(Base):
    __tablename__ = "credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), index=True
    )
    credential_type_id: Mapped[int] = mapped_column(
        ForeignKey("credential_type.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    credential_type: Mapped[CredentialType] = relationship()
    values: Mapped[list[CredentialValue]] = relationship(
        back_populates="credential", cascade="all, delete-orphan", order_by="CredentialValue.key"
    )


class CredentialValue(Base):
    __tablename__ = "credential_value"
    __table_args__ = (UniqueConstraint("credential_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credential.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    # Ciphertext when secret is true (security/secrets.py), plain text otherwise.
    value: Mapped[str] = mapped_column(Text, default="")
    secret: Mapped[bool] = mapped_column(default=False)

    credential: Mapped[Credential] = relationship(back_populates="values")
