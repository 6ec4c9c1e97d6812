"""Audit log (global administrators): filter by entity and user, newest first, keyset pages."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from multiflexi_web.views._helpers import global_admin, int_arg, is_htmx, next_cursor, page_size
from multiflexi_web.views.queries.operations import audit_page

bp = Blueprint("audit", __name__, url_prefix="/audit")
FILTERS = ("entity_type", "entity_id", "actor", "action")


@bp.get("/")
def index() -> str:
    global_admin()
    filters = {k: request.args.get(k, "").strip()[:128] for k in FILTERS}
    filters = {k: v for k, v in filters.items() if v}
    limit = page_size()
    rows = audit_page(filters, int_arg("before"), limit)
    template = "audit/_rows.html" if is_htmx() else "audit/index.html"
    return render_template(
        template, rows=rows[:limit], cursor=next_cursor(rows, limit), filters=filters
    )
