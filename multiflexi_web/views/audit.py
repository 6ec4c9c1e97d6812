"""Audit log (global administrators): filter by entity and user, newest first, keyset pages."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog
from multiflexi_web.views._helpers import global_admin, int_arg, is_htmx, next_cursor, page_size

bp = Blueprint("audit", __name__, url_prefix="/audit")
FILTERS = ("entity_type", "entity_id", "actor", "action")


@bp.get("/")
def index() -> str:
    global_admin()
    filters = {k: request.args.get(k, "").strip()[:128] for k in FILTERS}
    filters = {k: v for k, v in filters.items() if v}
    limit = page_size()
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit + 1)
    for key, value in filters.items():
        query = query.where(getattr(AuditLog, key) == value)
    before = int_arg("before")
    if before is not None:
        query = query.where(AuditLog.id < before)
    rows = db.session.scalars(query).all()
    template = "audit/_rows.html" if is_htmx() else "audit/index.html"
    return render_template(
        template, rows=rows[:limit], cursor=next_cursor(rows, limit), filters=filters
    )
