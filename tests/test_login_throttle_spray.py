"""The per-address limit (docs/security.md: "the client address alone: the same after four
times as many failures (any logins)") stops password spraying from one address, also by
someone with an account of their own: a successful login cleared the address's whole count,
so logging in as oneself every 19 failures sprayed the other logins without limit. Now a
success takes only that login's own failures off the address's count."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from multiflexi_web.models import utcnow
from tests.factories import PASSWORD, isolate_requests, make_user

ATTACKER = "203.0.113.66"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [utcnow()]
    monkeypatch.setattr("multiflexi_web.views.auth.utcnow", lambda: now[0])
    return now


def _try(client: FlaskClient, login: str, password: str) -> int:
    resp = client.post(
        "/login",
        data={"login": login, "password": password},
        environ_base={"REMOTE_ADDR": ATTACKER},
    )
    return resp.status_code


def test_control_spraying_from_one_address_is_throttled(app: Flask, clock: list[datetime]) -> None:
    isolate_requests(app)
    client = app.test_client()
    codes = [_try(client, f"victim{i}", "Summer2026!") for i in range(20)]
    assert codes == [401] * 20  # the clock is stopped: after the 20th failure the address waits
    assert _try(client, "victim99", "Summer2026!") == 429


def test_own_login_does_not_reset_the_address_limit(app: Flask, clock: list[datetime]) -> None:
    isolate_requests(app)
    make_user("mallory")  # the attacker's own, ordinary account
    client = app.test_client()
    codes = []
    for i in range(40):
        if i % 19 == 18:  # logs in as themselves now and then
            _try(app.test_client(), "mallory", PASSWORD)
        codes.append(_try(client, f"victim{i}", "Summer2026!"))
    # The clock is stopped: after the address's 20th failure it waits, logins or not.
    assert codes[:20] == [401] * 20
    assert set(codes[20:]) == {429}


def test_the_users_own_typos_do_not_count_against_the_address(
    app: Flask, clock: list[datetime]
) -> None:
    isolate_requests(app)
    make_user("alice")
    client = app.test_client()
    for _ in range(3):  # alice mistypes, then gets it right
        assert _try(client, "alice", "typo") == 401
        assert _try(client, "alice", PASSWORD) == 302
    codes = [_try(client, f"other{i}", "x") for i in range(20)]
    assert codes == [401] * 20  # the address's 20 free failures are all still there
