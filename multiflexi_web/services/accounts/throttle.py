"""Login throttling by client address and login: capped exponential backoff, never a lockout.

A per-account lock lets anybody lock out `admin` by typing wrong passwords. Instead each
client address earns its own waits, alone and per login. The account's own counter (failures
from every address) only takes the free retries away from addresses the account has never
logged in from; each address still gets its attempt once its wait is over, so the real user is
slowed at worst, never locked out. Counters live in the database so every worker agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from multiflexi_web.extensions import db
from multiflexi_web.models import LoginThrottle

# A counter idle this long starts again from zero, and its row is pruned.
WINDOW = timedelta(hours=24)
ADDRESS_FACTOR = 4  # an address (an office behind NAT) gets this many times the free failures
T = LoginThrottle


@dataclass(frozen=True)
class Policy:
    free: int  # failures per address and login before the waits start
    cap: int  # the longest wait, in seconds

    def wait_after(self, failures: int, free: int) -> int:
        """Seconds to wait after the `failures`-th failure: 1, 2, 4, ... up to the cap."""
        if failures < free or self.cap <= 0:
            return 0
        return int(min(self.cap, 2 ** min(failures - free, 30)))


def _keys(ip: str, login: str) -> tuple[str, str, str]:
    login = login[:100]
    return f"ip:{ip}", f"ip-login:{ip} {login}", f"login:{login}"


def wait_seconds(ip: str, login: str, now: datetime) -> int:
    """Seconds until this address may try this login again (0: now)."""
    by_ip, by_pair, _ = _keys(ip, login)
    until = db.session.scalar(
        select(func.max(T.blocked_until)).where(T.key.in_((by_ip, by_pair)), T.blocked_until > now)
    )
    return 0 if until is None else max(1, int((until - now).total_seconds() + 0.999))


def record_failure(ip: str, login: str, *, known: bool, policy: Policy, now: datetime) -> int:
    """Count a failed attempt; the wait it earned (seconds). `known`: the account last logged
    in from this address, so an attack on the account elsewhere does not slow it down."""
    by_ip, by_pair, by_login = _keys(ip, login)
    hot = _bump(by_login, now) > policy.free and not known
    wait_pair = policy.wait_after(_bump(by_pair, now), 1 if hot else policy.free)
    wait_ip = policy.wait_after(_bump(by_ip, now), policy.free * ADDRESS_FACTOR)
    for key, wait in ((by_pair, wait_pair), (by_ip, wait_ip)):
        if wait:
            until = now + timedelta(seconds=wait)
            db.session.execute(update(T).where(T.key == key).values(blocked_until=until))
    prune(now)
    return max(wait_pair, wait_ip)


def record_success(ip: str, login: str) -> None:
    """A successful login clears this address's counter for this login, and takes that login's
    failures off the address's own count: the user's typos do not count against the address,
    while failures on other logins stay. Clearing the address's whole count let anybody with
    an account spray passwords at other logins from one address, logging in as themselves
    every few failures. Read first: the API checks Basic credentials on every request, and a
    clean one must not write."""
    by_ip, by_pair, _ = _keys(ip, login)
    mine = db.session.scalar(select(T.failures).where(T.key == by_pair))
    if mine is None:
        return
    db.session.execute(
        update(T)
        .where(T.key == by_ip)
        .values(failures=case((T.failures > mine, T.failures - mine), else_=0))
    )
    db.session.execute(delete(T).where((T.key == by_pair) | ((T.key == by_ip) & (T.failures == 0))))


def forget_login(login: str) -> None:
    """A password reset by an administrator: the login's own waits, from every address, end
    (the addresses' counters for other logins stay)."""
    _, _, by_login = _keys("", login)
    pairs = T.key.startswith("ip-login:") & T.key.endswith(f" {login[:100]}", autoescape=True)
    db.session.execute(delete(T).where((T.key == by_login) | pairs))


def prune(now: datetime) -> int:
    """Forget counters idle for longer than WINDOW (their waits are long over)."""
    result = db.session.execute(delete(T).where(T.updated_at < now - WINDOW))
    return int(getattr(result, "rowcount", 0) or 0)


def _bump(key: str, now: datetime) -> int:
    """Add one failure in a single statement (workers race on the same row); the new count."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stale = T.updated_at < now - WINDOW
    stmt = (
        insert(T)
        .values(key=key, failures=1, updated_at=now)
        .on_conflict_do_update(
            index_elements=[T.key],
            set_={"failures": case((stale, 1), else_=T.failures + 1), "updated_at": now},
        )
        .returning(T.failures)
    )
    return int(db.session.execute(stmt).scalar_one())
