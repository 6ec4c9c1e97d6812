"""Login throttling: by client address and login, capped backoff, no lockout of the real user."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from multiflexi_web import create_app
from multiflexi_web.config import ConfigError, load_settings
from multiflexi_web.extensions import db
from multiflexi_web.models import AuditLog, LoginThrottle, utcnow
from multiflexi_web.services.accounts import throttle
from multiflexi_web.services.accounts.throttle import Policy
from tests.conftest import make_settings, reset_schema
from tests.factories import PASSWORD, isolate_requests, make_user, reread

ATTACKER, ADMIN_HOME, ADMIN_TRAVEL = "203.0.113.66", "198.51.100.7", "192.0.2.40"
POLICY = Policy(free=5, cap=900)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The login view's clock, stopped: waits are checked against it, not against sleeps."""
    now = [utcnow()]
    monkeypatch.setattr("multiflexi_web.views.auth.utcnow", lambda: now[0])
    return now


def _try(client: FlaskClient, ip: str, login: str, password: str) -> TestResponse:
    return client.post(
        "/login", data={"login": login, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def _hammer(client: FlaskClient, ip: str, login: str, times: int) -> list[int]:
    return [_try(client, ip, login, "wrong-guess").status_code for _ in range(times)]


def test_backoff_grows_and_is_capped(app: Flask) -> None:
    now, waits = utcnow(), []
    for _ in range(20):
        waits.append(
            throttle.record_failure(ATTACKER, "admin", known=False, policy=POLICY, now=now)
        )
    # Four free failures, a second after the fifth; then the account is under attack and an
    # address it never logged in from has no free failures: 2**(n-1) s after its n-th failure,
    # never more than the cap.
    assert waits[:5] == [0, 0, 0, 0, 1]
    assert waits[5:10] == [32, 64, 128, 256, 512]
    assert waits[10:] == [900] * 10
    assert throttle.wait_seconds(ATTACKER, "admin", now) == 900
    assert throttle.wait_seconds(ATTACKER, "admin", now + timedelta(seconds=899)) == 1
    assert throttle.wait_seconds(ATTACKER, "admin", now + timedelta(seconds=900)) == 0
    assert throttle.wait_seconds(ADMIN_TRAVEL, "admin", now) == 0


def test_a_known_address_keeps_its_free_failures_while_the_account_is_attacked(
    app: Flask,
) -> None:
    now = utcnow()
    for _ in range(30):
        throttle.record_failure(ATTACKER, "admin", known=False, policy=POLICY, now=now)
    known = [
        throttle.record_failure(ADMIN_HOME, "admin", known=True, policy=POLICY, now=now)
        for _ in range(5)
    ]
    stranger = throttle.record_failure(ADMIN_TRAVEL, "admin", known=False, policy=POLICY, now=now)
    assert known == [0, 0, 0, 0, 1]
    assert stranger == 1  # a new address gets its attempt, then waits a second


def test_counters_start_again_after_the_window_and_are_pruned(app: Flask) -> None:
    then = utcnow() - throttle.WINDOW - timedelta(minutes=1)
    for _ in range(10):
        throttle.record_failure(ATTACKER, "admin", known=False, policy=POLICY, now=then)
    now = utcnow()
    assert throttle.record_failure(ADMIN_TRAVEL, "bob", known=False, policy=POLICY, now=now) == 0
    keys = set(db.session.scalars(select(LoginThrottle.key)))
    assert keys == {f"ip:{ADMIN_TRAVEL}", f"ip-login:{ADMIN_TRAVEL} bob", "login:bob"}
    for _ in range(3):
        throttle.record_failure(ATTACKER, "admin", known=False, policy=POLICY, now=then)
    assert throttle.record_failure(ATTACKER, "admin", known=False, policy=POLICY, now=now) == 0


def test_an_attacker_cannot_lock_the_admin_out(app: Flask, clock: list[datetime]) -> None:
    isolate_requests(app)
    make_user("admin", is_admin=True)
    client = app.test_client()
    assert _try(client, ADMIN_HOME, "admin", PASSWORD).status_code == 302  # known address
    client.post("/logout")
    codes = _hammer(client, ATTACKER, "admin", 40)
    assert codes[:4] == [401] * 4 and 429 in codes
    refused = _try(client, ATTACKER, "admin", PASSWORD)
    assert refused.status_code == 429, "the right password does not help a throttled address"
    assert "Too many attempts, try again in" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) >= 1
    # The real admin, from home and from a new address, gets in at once.
    assert _try(app.test_client(), ADMIN_HOME, "admin", PASSWORD).status_code == 302
    assert _try(app.test_client(), ADMIN_TRAVEL, "admin", PASSWORD).status_code == 302
    reread()
    actions = dict(
        db.session.execute(select(AuditLog.action, func.count()).group_by(AuditLog.action)).all()
    )
    assert actions["login_failed"] >= 4 and actions["login_throttled"] >= 1
    assert actions["login"] == 3


def test_messages_name_the_wait_and_success_resets_the_address(
    app: Flask, clock: list[datetime]
) -> None:
    isolate_requests(app)
    make_user("alice")
    client = app.test_client()
    assert _hammer(client, ADMIN_TRAVEL, "alice", 4) == [401] * 4
    fifth = _try(client, ADMIN_TRAVEL, "alice", "wrong-again").get_data(as_text=True)
    assert "Wrong login or password. Too many attempts, try again in 1 s." in fifth
    waiting = _try(client, ADMIN_TRAVEL, "alice", PASSWORD)  # the right one, but too soon
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "1"
    assert "Too many attempts, try again in 1 s." in waiting.get_data(as_text=True)
    clock[0] += timedelta(seconds=1)
    sixth = _try(client, ADMIN_TRAVEL, "alice", "wrong-again")
    assert sixth.status_code == 401 and "try again in 32 s." in sixth.get_data(as_text=True)
    clock[0] += timedelta(seconds=31)
    assert _try(client, ADMIN_TRAVEL, "alice", PASSWORD).status_code == 429
    clock[0] += timedelta(seconds=1)
    assert _try(client, ADMIN_TRAVEL, "alice", PASSWORD).status_code == 302
    reread()
    keys = set(db.session.scalars(select(LoginThrottle.key)))
    assert keys == {"login:alice"}, "the address's counters are gone, the account's stays"


def test_unknown_logins_are_throttled_like_real_ones(app: Flask, clock: list[datetime]) -> None:
    isolate_requests(app)
    codes = _hammer(app.test_client(), ATTACKER, "nobody", 12)
    assert codes[:5] == [401] * 5 and codes[-1] == 429


def _failed_login_keys(app: Flask) -> set[str]:
    app.test_client().post(
        "/login",
        data={"login": "bob", "password": "wrong"},
        headers={"X-Forwarded-For": "203.0.113.9"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    reread()
    return set(db.session.scalars(select(LoginThrottle.key).where(LoginThrottle.key.like("ip:%"))))


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(app: Flask) -> None:
    isolate_requests(app)
    assert _failed_login_keys(app) == {"ip:127.0.0.1"}
    assert db.session.scalars(select(AuditLog.ip)).all() == ["127.0.0.1"]


def test_behind_a_trusted_proxy_the_forwarded_address_counts(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, trusted_proxies=1)
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, settings=settings)
    with app.app_context():
        reset_schema()
        isolate_requests(app)
        assert _failed_login_keys(app) == {"ip:203.0.113.9"}
        assert db.session.scalars(select(AuditLog.ip)).all() == ["203.0.113.9"]
        db.session.remove()
        db.engine.dispose()


def test_trusted_proxies_must_be_a_count() -> None:
    with pytest.raises(ConfigError, match="MULTIFLEXI_TRUSTED_PROXIES"):
        load_settings(
            {"MULTIFLEXI_TRUSTED_PROXIES": "nginx", "MULTIFLEXI_ENV_FILE": "/nonexistent"}
        )
