"""Who calls the API: a Bearer token or HTTP Basic (never the session cookie), then the limit."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import NoReturn

from flask import current_app, g, request
from sqlalchemy import select

from multiflexi_web.api.v1.errors import ApiError
from multiflexi_web.api.v1.ratelimit import RateCounter, counter_for
from multiflexi_web.db.engine import begin_write
from multiflexi_web.extensions import db
from multiflexi_web.models import ApiToken, User, utcnow
from multiflexi_web.services import settings
from multiflexi_web.services.accounts import throttle, tokens
from multiflexi_web.services.accounts.users import authenticate
from multiflexi_web.services.audit import record

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Bearer, not Basic: a Basic challenge makes browsers prompt and then send the password with
# every request to the site, cross-site form posts included (CSRF). Basic still works when a
# client sends it unasked, as upstream's clients do.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="multiflexi"'}
LIMITER_KEY = "multiflexi_api_limiter"


@dataclass(frozen=True)
class Caller:
    user: User
    token: ApiToken | None

    @property
    def actor(self) -> str:
        """The audit log's "who": the login and, for a token, its name."""
        if self.token is None:
            return f"{self.user.login} (api basic)"
        return f"{self.user.login} (token {self.token.name!r})"


def caller() -> Caller:
    found: Caller = g.api_caller
    return found


def authenticate_request() -> None:
    """Set g.api_caller (and Flask-Login's user for this request) or raise 401/403/429."""
    if request.method not in SAFE_METHODS:
        begin_write()  # one writer from the start: SQLite cannot upgrade a read later
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        token = _token(credentials.strip())
        found = Caller(token.user, token)
    elif scheme.lower() == "basic" and credentials.strip():
        found = Caller(_basic_user(credentials.strip()), None)
    else:
        raise ApiError(401, "", headers=CHALLENGE)
    _limit(found)
    t = found.token
    if t is not None and t.scope != tokens.WRITE and request.method not in SAFE_METHODS:
        raise ApiError(403, "this token is read-only", {"token": t.id})
    g.api_caller = found
    g._login_user = found.user  # Flask-Login's slot: never loaded from the session cookie


def _token(secret: str) -> ApiToken:
    now = utcnow()
    try:
        token = tokens.verify(secret, now)
    except tokens.TokenError as exc:
        raise ApiError(401, str(exc), headers=CHALLENGE) from None
    if tokens.needs_touch(token, now):
        begin_write()  # a GET's read snapshot cannot turn into a write on SQLite
        tokens.touch(token.id, now)
        db.session.commit()
        if request.method not in SAFE_METHODS:
            begin_write()  # the request's own writes start as a writer again
        token = db.session.get(ApiToken, token.id) or token
    return token


def _basic_user(encoded: str) -> User:
    """Login and password, throttled exactly as the login form is."""
    try:
        login, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "malformed Basic credentials", headers=CHALLENGE) from None
    if not sep or not login:
        raise ApiError(401, "malformed Basic credentials", headers=CHALLENGE)
    ip, now = request.remote_addr or "unknown", utcnow()
    wait = throttle.wait_seconds(ip, login, now)
    if wait:
        msg = f"too many failed logins, try again in {wait} s"
        raise ApiError(429, msg, {"retry_after": wait}, {"Retry-After": str(wait)})
    user = authenticate(login, password, ip=ip, record_login=False)
    if user is None:
        _basic_failed(ip, login)
    throttle.record_success(ip, login)
    return user


def _basic_failed(ip: str, login: str) -> NoReturn:
    s = settings()
    policy = throttle.Policy(free=s.login_max_failures, cap=s.login_lockout_seconds)
    begin_write()
    known = db.session.scalar(select(User.last_login_ip).where(User.login == login)) == ip
    wait = throttle.record_failure(ip, login, known=known, policy=policy, now=utcnow())
    record("login_failed", "user", None, f"failed API login for {login!r}", actor=login)
    db.session.commit()
    headers = {**CHALLENGE, **({"Retry-After": str(wait)} if wait else {})}
    raise ApiError(401, "wrong login or password", headers=headers)


def _limit(found: Caller) -> None:
    limiter: RateCounter | None = current_app.extensions.get(LIMITER_KEY)
    if limiter is None:
        s = settings()
        count, period = s.api_rate
        made = counter_for(db.engine, s.tmp_dir, count, period)
        limiter = current_app.extensions.setdefault(LIMITER_KEY, made)
    key = f"token:{found.token.id}" if found.token else f"user:{found.user.id}"
    left, wait = limiter.hit(key, time.time())
    g.api_rate_left = left
    if wait:
        msg = f"rate limit of {limiter.limit} requests per {limiter.period} s reached"
        raise ApiError(429, msg, {"retry_after": wait}, {"Retry-After": str(wait)})
