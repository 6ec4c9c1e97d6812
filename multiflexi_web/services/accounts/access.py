"""Per-company access: which companies a user sees and what role they hold there."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute
from werkzeug.exceptions import Forbidden, NotFound

from multiflexi_web.extensions import db
from multiflexi_web.models import CompanyMember, Role, User

Q = TypeVar("Q", bound=Select[Any])

# Higher rank includes the powers of lower ones.
RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def visible_company_ids(user: User) -> set[int] | None:
    """Company ids the user may see; None means all (global admin)."""
    if user.is_admin:
        return None
    return set(
        db.session.scalars(select(CompanyMember.company_id).where(CompanyMember.user_id == user.id))
    )


def role_in(user: User, company_id: int) -> Role | None:
    if user.is_admin:
        return Role.ADMIN
    role = db.session.scalar(
        select(CompanyMember.role).where(
            CompanyMember.user_id == user.id, CompanyMember.company_id == company_id
        )
    )
    return Role(role) if role else None


def require_role(user: User, company_id: int, minimum: Role) -> Role:
    """The user's role in the company, or 404 when they cannot see it, 403 when too low."""
    role = role_in(user, company_id)
    if role is None:
        # Not a member: the company does not exist for this user, so nothing leaks.
        raise NotFound()
    if RANK[role] < RANK[minimum]:
        raise Forbidden(f"this needs the {minimum.value} role in the company")
    return role


def require_global_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("only a global administrator may do this")


def has_role(user: User, company_id: int, minimum: Role) -> bool:
    """Whether the user holds at least `minimum` in the company (to decide which buttons show)."""
    role = role_in(user, company_id)
    return role is not None and RANK[role] >= RANK[minimum]


def scoped(query: Q, column: InstrumentedAttribute[int], user: User) -> Q:
    """Limit a query to rows whose company `column` the user may see."""
    ids = visible_company_ids(user)
    return query if ids is None else query.where(column.in_(ids))


def company_ids_with(user: User, minimum: Role) -> set[int] | None:
    """Company ids where the user holds at least `minimum`; None means all (global admin)."""
    if user.is_admin:
        return None
    ranks = [r.value for r, n in RANK.items() if n >= RANK[minimum]]
    return set(
        db.session.scalars(
            select(CompanyMember.company_id).where(
                CompanyMember.user_id == user.id, CompanyMember.role.in_(ranks)
            )
        )
    )
