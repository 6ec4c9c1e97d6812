"""First-run set-up: keys written once, admin created once, a re-run changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.security import check_password_hash

from multiflexi_web.bootstrap import ensure_admin, ensure_demo_apps, ensure_local_keys
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, AuditLog, User
from multiflexi_web.security.secrets import Cipher
from tests.factories import login, make_user


def test_local_keys_are_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("ENCRYPTION_MASTER_KEY", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9000")  # no trailing newline: keys must still land on their own lines
    assert ensure_local_keys(env_file) == ["SECRET_KEY", "ENCRYPTION_MASTER_KEY"]
    first = env_file.read_text()
    assert first.startswith("PORT=9000\nSECRET_KEY=")
    key = next(ln for ln in first.splitlines() if ln.startswith("ENCRYPTION_MASTER_KEY="))
    Cipher(key.split("=", 1)[1]).encrypt("works")
    assert ensure_local_keys(env_file) == []
    assert env_file.read_text() == first
    assert env_file.stat().st_mode & 0o077 == 0  # readable by the owner only


def test_keys_from_environment_are_not_duplicated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.delenv("ENCRYPTION_MASTER_KEY", raising=False)
    env_file = tmp_path / ".env"
    assert ensure_local_keys(env_file) == ["ENCRYPTION_MASTER_KEY"]
    assert "SECRET_KEY" not in env_file.read_text()


def test_admin_created_once(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIFLEXI_ADMIN_PASSWORD", "chosen-password")
    first = ensure_admin()
    db.session.commit()
    assert first.password == "chosen-password"
    user = db.session.query(User).filter_by(login="admin").one()
    assert user.is_admin and check_password_hash(user.password_hash, "chosen-password")
    second = ensure_admin()
    assert second.password is None
    assert db.session.query(User).count() == 1


def test_admin_random_password(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MULTIFLEXI_ADMIN_PASSWORD", raising=False)
    made = ensure_admin()
    assert made.password is not None and len(made.password) >= 12


def test_demo_apps_imported_at_start_are_in_the_audit_log(app: Flask) -> None:
    ensure_demo_apps()
    db.session.commit()
    rows = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    apps = db.session.scalars(select(Application).order_by(Application.id)).all()
    assert len(apps) == 3 and [r.entity_id for r in rows] == [str(a.id) for a in apps]
    assert {(r.actor, r.action, r.entity_type) for r in rows} == {
        ("system", "import", "application")
    }
    assert all("imported at start from" in r.summary and r.details["uuid"] for r in rows)
    ensure_demo_apps()  # every later start: nothing changed, nothing logged
    db.session.commit()
    assert len(db.session.scalars(select(AuditLog)).all()) == 3
    client = app.test_client()
    login(client, make_user(login="auditor", is_admin=True))
    page = client.get("/audit/?actor=system").get_data(as_text=True)
    assert all(f"application {a.name} imported" in page for a in apps)
