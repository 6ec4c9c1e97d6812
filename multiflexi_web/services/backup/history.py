"""When the newest backup was made, as the audit log records each one (`multiflexi backup`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog

ACTION, ENTITY = "backup", "platform"


def last_backup_at() -> datetime | None:
    return db.session.scalar(
        select(func.max(AuditLog.at)).where(
            AuditLog.entity_type == ENTITY, AuditLog.action == ACTION
        )
    )
