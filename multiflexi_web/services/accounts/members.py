"""Company membership: which users belong to a company and with which role."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Company, CompanyMember, Role, User


class MemberError(ValueError):
    """A membership change was refused; the message names the field and the reason."""


def parse_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise MemberError(f"role {raw!r}: must be one of {allowed}") from None


def find_member(company_id: int, user_id: int) -> CompanyMember | None:
    return db.session.scalar(
        select(CompanyMember).where(
            CompanyMember.company_id == company_id, CompanyMember.user_id == user_id
        )
    )


def add_member(company: Company, user: User, role: Role) -> CompanyMember:
    """Add the user to the company, or change their role when they already belong."""
    member = find_member(company.id, user.id)
    if member is None:
        member = CompanyMember(company_id=company.id, user_id=user.id, role=role.value)
        db.session.add(member)
    else:
        member.role = role.value
    db.session.flush()
    return member


def set_role(company: Company, user_id: int, role: Role) -> CompanyMember:
    member = find_member(company.id, user_id)
    if member is None:
        raise MemberError(f"user {user_id}: is not a member of {company.slug!r}")
    member.role = role.value
    db.session.flush()
    return member


def remove_member(company: Company, user_id: int) -> None:
    member = find_member(company.id, user_id)
    if member is None:
        raise MemberError(f"user {user_id}: is not a member of {company.slug!r}")
    db.session.delete(member)
    db.session.flush()


def members_of(company: Company) -> list[CompanyMember]:
    return list(
        db.session.scalars(
            select(CompanyMember)
            .join(User, User.id == CompanyMember.user_id)
            .where(CompanyMember.company_id == company.id)
            .order_by(User.login)
        )
    )


def user_by_login(login: str) -> User:
    user = db.session.scalar(select(User).where(User.login == login.strip()))
    if user is None:
        raise MemberError(f"login {login!r}: no such user")
    return user
