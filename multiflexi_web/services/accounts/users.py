"""User accounts: creation, password checks, and ending a user's sessions."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from multiflexi_web.extensions import db
from multiflexi_web.models import User, utcnow
from multiflexi_web.security import legacy_passwords


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
    """A new password also ends every session of the user (a thief's copy included)."""
    if len(password) < 8:
        raise UserError("password: must be at least 8 characters")
    user.password_hash = generate_password_hash(password)
    user.password_changed_at = utcnow()
    end_sessions(user)


def end_sessions(user: User) -> None:
    """Invalidate every session cookie issued to the user so far (see User.get_id)."""
    user.session_epoch = (user.session_epoch or 0) + 1


def authenticate(
    login: str, password: str, *, ip: str | None, record_login: bool = True
) -> User | None:
    """The user when the password is right and the account enabled (throttling is the
    caller's: services/accounts/throttle.py). `record_login` False (API Basic auth, checked on
    every request) leaves the last-login facts alone: no write per request."""
    user = db.session.scalar(select(User).where(User.login == login))
    if user is None:
        # Same work as a real check so timing does not reveal which logins exist.
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not _password_matches(user, password) or not user.enabled:
        return None
    if not record_login:
        return user
    user.last_login_at = utcnow()
    user.last_login_ip = ip
    return user


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def _password_matches(user: User, password: str) -> bool:
    """Our hash, or one carried over from upstream (re-hashed as ours once it matches)."""
    if not legacy_passwords.is_legacy(user.password_hash):
        return check_password_hash(user.password_hash, password)
    if legacy_passwords.is_md5(user.password_hash):
        # An md5 check takes a millisecond where ours takes ~0.1 s: its time would tell
        # which logins are moved-in accounts. The same work as ours is done first.
        check_password_hash(_DUMMY_HASH, password)
    if not legacy_passwords.check_legacy(user.password_hash, password):
        return False
    user.password_hash = generate_password_hash(password)
    return True


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
    if (user.enabled, user.is_admin) != (enabled, is_admin):
        end_sessions(user)  # powers changed: sessions start again with the new ones
    user.email, user.full_name = email, full_name
    user.enabled, user.is_admin = enabled, is_admin
    db.session.flush()
