"""Per-company access for API callers: the portal's rules, narrowed by a token's company scope."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from multiflexi_web.api.v1.auth import caller
from multiflexi_web.api.v1.errors import ApiError
from multiflexi_web.api.v1.params import id_limit
from multiflexi_web.extensions import db
from multiflexi_web.models import Role
from multiflexi_web.services.accounts import access

M = TypeVar("M")
Q = TypeVar("Q", bound=Select[Any])


def visible() -> set[int] | None:
    """Company ids the caller may see (None: all), within the token's company if it has one."""
    c = caller()
    ids = access.visible_company_ids(c.user)
    scope = c.token.company_id if c.token else None
    if scope is None:
        return ids
    return {scope} if ids is None or scope in ids else set()


def scoped(query: Q, column: InstrumentedAttribute[int]) -> Q:
    ids = visible()
    return query if ids is None else query.where(column.in_(ids or {-1}))


def require(company_id: int, minimum: Role = Role.VIEWER) -> Role:
    """The caller's role there; 404 when they cannot see the company, 403 when too low."""
    ids = visible()
    if ids is not None and company_id not in ids:
        raise ApiError(404, "")
    return access.require_role(caller().user, company_id, minimum)


def has_role(company_id: int, minimum: Role) -> bool:
    ids = visible()
    if ids is not None and company_id not in ids:
        return False
    return access.has_role(caller().user, company_id, minimum)


def get(model: type[M], object_id: int) -> M:
    if object_id > id_limit(cast(Any, model).__table__.c.id):
        raise ApiError(404, "")  # no such row; the driver could not even bind the number
    obj = db.session.get(model, object_id)
    if obj is None:
        raise ApiError(404, "")
    return obj


def owned(model: type[M], object_id: int, minimum: Role = Role.VIEWER) -> M:
    """A row with a company_id, checked like `require` (missing and foreign look alike)."""
    obj = get(model, object_id)
    require(cast(Any, obj).company_id, minimum)
    return obj


def acts_as_global_admin() -> bool:
    """Whether this request has a global administrator's powers: an administrator's token
    limited to one company has a company member's (docs/api.md), also for the environment
    names it may set (any acceptable name is an administrator's power, SPEC §15)."""
    c = caller()
    return c.user.is_admin and (c.token is None or c.token.company_id is None)


def global_admin() -> None:
    c = caller()
    if c.token is not None and c.token.company_id is not None:
        raise ApiError(403, "a company-scoped token cannot do what needs a global administrator")
    if not c.user.is_admin:
        raise ApiError(403, "only a global administrator may do this")
