"""Read models of the companies, users and members pages."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, CompanyMember, Role, User
from multiflexi_web.services.accounts.access import scoped


def visible_companies(user: User) -> list[Company]:
    """The companies the user may see, by name."""
    query = scoped(select(Company).order_by(Company.name), Company.id, user)
    return list(db.session.scalars(query))


def all_companies() -> list[Company]:
    return list(db.session.scalars(select(Company).order_by(Company.name)))


def all_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.login)))


def companies_with_role(user: User, roles: tuple[Role, ...]) -> list[Company]:
    """Companies where the user holds one of `roles` (every company, for a global admin)."""
    query = select(Company).order_by(Company.name)
    if not user.is_admin:
        held = select(CompanyMember.company_id).where(
            CompanyMember.user_id == user.id, CompanyMember.role.in_([r.value for r in roles])
        )
        query = query.where(Company.id.in_(held))
    return list(db.session.scalars(query))
