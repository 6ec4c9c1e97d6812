"""Writes audit log rows for changes made by people and daemons."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog


def record(
    action: str,
    entity_type: str,
    entity_id: object = None,
    summary: str = "",
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> AuditLog:
    """Add an audit row to the current unit of work; who and where come from the request."""
    user_id = None
    ip = None
    if has_request_context():
        # Only a request has a user: daemons that record audit rows never load Flask-Login.
        from flask_login import current_user

        # Never the raw X-Forwarded-For (anyone can send one): behind trusted proxies
        # ProxyFix has already put the client's address here (MULTIFLEXI_TRUSTED_PROXIES).
        ip = request.remote_addr
        if current_user.is_authenticated:
            user_id = current_user.id
            actor = actor or current_user.login
    row = AuditLog(
        user_id=user_id,
        actor=actor or "cli",
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        summary=summary,
        details=details or {},
        ip=ip,
    )
    db.session.add(row)
    return row
