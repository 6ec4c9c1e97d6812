"""A wrong password costs a moved-in user what it costs an unknown login: authenticate() runs a
scrypt check against a dummy hash for an unknown login, while a user moved in from upstream
with an `md5(salt + password):salt` hash was checked with one md5, a millisecond instead of
~0.1 s, so timing the login form or API Basic auth listed the moved-in accounts. Counted, not
timed: the same scrypt work is done for both."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask

from multiflexi_web.extensions import db
from multiflexi_web.models import User
from multiflexi_web.services.accounts import users
from multiflexi_web.services.accounts.users import authenticate


def test_wrong_password_of_moved_in_user_costs_like_an_unknown_login(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    salt = "s4lt"
    digest = hashlib.md5((salt + "real-password").encode(), usedforsecurity=False).hexdigest()
    db.session.add(User(login="legacy", password_hash=f"upstream-md5:{digest}:{salt}"))
    db.session.commit()
    checks: list[str] = []
    real = users.check_password_hash

    def counted(stored: str, password: str) -> bool:
        checks.append(stored)
        return real(stored, password)

    monkeypatch.setattr(users, "check_password_hash", counted)
    assert authenticate("nobody-here", "wrong-guess", ip=None, record_login=False) is None
    unknown, checks[:] = list(checks), []
    assert authenticate("legacy", "wrong-guess", ip=None, record_login=False) is None
    assert checks == unknown == [users._DUMMY_HASH]
    checks.clear()
    assert authenticate("legacy", "real-password", ip=None) is not None  # still logs in
