"""Shared view plumbing: the current user, role checks, form parsing, htmx-aware rendering."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

from flask import abort, render_template, request
from flask_login import current_user

from multiflexi_web.db.engine import write_session
from multiflexi_web.extensions import db
from multiflexi_web.models import Company, Role, User
from multiflexi_web.models.bounds import INT32_MAX, parse_id
from multiflexi_web.services.accounts.access import require_global_admin, require_role

M = TypeVar("M")
# Service errors read "field: reason" (or "field 'value': reason"); the head names the field.
_FIELD_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_ ]*?)(?: '[^']*'| \S+)?: ")


def me() -> User:
    """The logged-in user (the login guard guarantees there is one)."""
    return cast(User, current_user._get_current_object())


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def render(template: str, fragment: str | None = None, **context: Any) -> str:
    """The whole page, or only `fragment` when htmx asked for it."""
    return render_template(fragment if fragment and is_htmx() else template, **context)


def get_or_404(model: type[M], object_id: int) -> M:
    obj = db.session.get(model, object_id)
    if obj is None:
        abort(404)
    return obj


def company_for(company_id: int, minimum: Role = Role.VIEWER) -> Company:
    """The company when the user holds `minimum` there; 404 when they cannot see it, 403 if low."""
    require_role(me(), company_id, minimum)
    return get_or_404(Company, company_id)


def owned_by_company(model: type[M], object_id: int, minimum: Role = Role.VIEWER) -> M:
    """A row with a `company_id`, checked like `company_for` (missing and foreign look alike)."""
    obj = get_or_404(model, object_id)
    require_role(me(), cast(Any, obj).company_id, minimum)
    return obj


def global_admin() -> User:
    user = me()
    require_global_admin(user)
    return user


def text(name: str, max_len: int = 255) -> str:
    """A trimmed form value, cut to the column size (the service then validates it)."""
    return request.form.get(name, "").strip()[:max_len]


def flag(name: str) -> bool:
    return request.form.get(name) in {"1", "on", "true", "yes"}


def optional_text(name: str, max_len: int = 255) -> str | None:
    return text(name, max_len) or None


def field_errors(exc: ValueError, fields: Iterable[str], default: str = "_form") -> dict[str, str]:
    """Attach a service error to the form field its message names, else to the whole form."""
    message = str(exc)
    match = _FIELD_RE.match(message[:200])  # the field is named first; the tail may be input
    names = set(fields)
    if match and match.group(1) in names:
        return {match.group(1): message[match.end() :]}
    return {default: message}


def page_size(default: int = 50, maximum: int = 200) -> int:
    raw = parse_id(request.args.get("limit", ""))
    return min(raw, maximum) if raw else default


def int_arg(name: str, high: int = INT32_MAX) -> int | None:
    return parse_id(request.args.get(name, ""), high)


def next_cursor(rows: Sequence[Any], limit: int) -> int | None:
    """Keyset pagination: the id to continue below, when this page was full."""
    return cast(int, rows[limit - 1].id) if len(rows) > limit else None


def begin_writer_for_changes() -> None:
    """Before a portal POST touches the database, take SQLite's write lock (no-op elsewhere).

    A request that reads (the login check) and only later writes would run its write on a
    snapshot that the daemons' constant writes (job output) have outdated, and SQLite refuses
    that at once with "database is locked" instead of waiting.
    """
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    endpoint = request.endpoint or ""
    if endpoint.startswith(("api.", "webhook.")):
        return  # those have their own units of work
    write_session(db.session())
