"""User accounts: creation, password checks with lockout."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from multiflexi_web.extensions import db
from multiflexi_web.models import User, utcnow


class UserError(ValueError):
    """A user operation was refused; the message says why."""


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def create_user(
    login: str, password: str, *, is_admin: bool = False, email: str | None = None
) -> User:
    login = login.strip()
    if not login or len(login) > 64:
        raise UserError("login: must be 1 to 64 characters")
    if len(password) < 8:
        raise UserError("password: must be at least 8 characters")
    if db.session.scalar(select(User.id).where(User.login == login)) is not None:
        raise UserError(f"login: user {login!r} already exists")
    user = User(
        login=login,
        password_hash=generate_password_hash(password),
        is_admin=is_admin,
        email=email,
        password_changed_at=utcnow(),
    )
    db.session.add(user)
    db.session.flush()
    return user


def set_password(user: User, password: str) -> None:
    if len(password) < 8:
        raise UserError("password: must be at least 8 characters")
    user.password_hash = generate_password_hash(password)
    user.password_changed_at = utcnow()


def authenticate(
    login: str, password: str, *, max_failures: int, lockout_seconds: int, ip: str | None
) -> User | None:
    """The user when the password is right and the account usable; counts failures and locks."""
    user = db.session.scalar(select(User).where(User.login == login))
    now = utcnow()
    if user is None:
        # Same work as a real check so timing does not reveal which logins exist.
        check_password_hash(_DUMMY_HASH, password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    if not check_password_hash(user.password_hash, password) or not user.enabled:
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(seconds=lockout_seconds)
            user.failed_logins = 0
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    user.last_login_ip = ip
    return user


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def update_user(
    user: User,
    *,
    acting: User,
    email: str | None,
    full_name: str | None,
    enabled: bool,
    is_admin: bool,
) -> None:
    """Change a user's profile and powers; nobody can lock themselves out of administration."""
    if user.id == acting.id and not enabled:
        raise UserError("enabled: you cannot disable your own account")
    if user.id == acting.id and not is_admin and user.is_admin:
        raise UserError("is_admin: you cannot remove your own administrator rights")
    if email and "@" not in email:
        raise UserError(f"email {email!r}: is not an e-mail address")
    user.email, user.full_name = email, full_name
    user.enabled, user.is_admin = enabled, is_admin
    if enabled:
        user.locked_until, user.failed_logins = None, 0
    db.session.flush()
