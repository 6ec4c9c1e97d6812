"""Personal API tokens: issued once, stored as a sha256, expiring, scoped and revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, Company, User, utcnow
from multiflexi_web.services.accounts.access import role_in

PREFIX = "mfx_"
READ, WRITE = "read", "write"
# last_used_at moves at most this often: a write per request would cost more than the request.
TOUCH_EVERY = timedelta(minutes=1)
MAX_EXPIRY_DAYS = 3650


class TokenError(ValueError):
    """A token cannot be issued, used or revoked; the message says why."""


@dataclass(frozen=True)
class Issued:
    """A new token: the row, and the secret shown once and never stored."""

    token: ApiToken
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(
    user: User,
    name: str,
    *,
    company: Company | None = None,
    read_only: bool = False,
    expires_days: int | None = None,
) -> Issued:
    """A new token for `user` (32 random bytes: a plain hash is enough, nothing to brute-force)."""
    name = name.strip()[:128] or f"token {utcnow():%Y-%m-%d %H:%M}"
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRY_DAYS:
        raise TokenError(f"expires_days: must be 1 to {MAX_EXPIRY_DAYS}, got {expires_days}")
    if company is not None and role_in(user, company.id) is None:
        raise TokenError(f"company {company.slug!r}: {user.login} is not a member of it")
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=digest(secret),
        scope=READ if read_only else WRITE,
        company_id=company.id if company else None,
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(row)
    db.session.flush()
    return Issued(row, secret)


def verify(secret: str, now: datetime) -> ApiToken:
    """The usable token for a presented secret, or TokenError naming why not."""
    wanted = digest(secret)
    query = select(ApiToken).options(joinedload(ApiToken.user))  # one query for both
    row = db.session.scalar(query.where(ApiToken.token_hash == wanted))
    # The lookup is by hash of a random secret; compare_digest keeps the final check flat.
    if row is None or not hmac.compare_digest(row.token_hash, wanted):
        raise TokenError("unknown token")
    if row.revoked_at is not None:
        raise TokenError("the token was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenError("the token has expired")
    if not row.user.enabled:
        raise TokenError("the token's user is disabled")
    return row


def needs_touch(token: ApiToken, now: datetime) -> bool:
    return token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY


def touch(token_id: int, now: datetime) -> bool:
    """Record use; conditional, so concurrent requests write it once per minute at most."""
    res = db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .where((ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - TOUCH_EVERY))
        .values(last_used_at=now)
    )
    return bool(getattr(res, "rowcount", 0))


def tokens_of(user: User | None) -> list[ApiToken]:
    """A user's tokens (every token for None), newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))


def revoke(token: ApiToken) -> None:
    if token.revoked_at is not None:
        raise TokenError(f"token {token.id}: already revoked")
    token.revoked_at = utcnow()
    db.session.flush()


def state(token: ApiToken, now: datetime) -> str:
    """ "active", "expired" or "revoked", for lists."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"
