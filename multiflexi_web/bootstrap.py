"""First-run set-up for `make run`: keys in ./.env, schema, an admin login, demo apps."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import User
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services import audit
from multiflexi_web.services.accounts.users import create_user, generate_password


@dataclass(frozen=True)
class AdminLogin:
    login: str
    password: str | None  # None when the admin already existed


def ensure_local_keys(env_file: Path) -> list[str]:
    """Append SECRET_KEY and ENCRYPTION_MASTER_KEY to the local .env when neither source has them.

    Returns the names written. Existing values are never replaced: that would orphan secrets.
    """
    existing = env_file.read_text() if env_file.exists() else ""
    present = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    wanted = {
        "SECRET_KEY": lambda: secrets.token_hex(32),
        "ENCRYPTION_MASTER_KEY": generate_key,
    }
    lines = [
        f"{name}={make()}"
        for name, make in wanted.items()
        if name not in present and not os.environ.get(name)
    ]
    if lines:
        fd = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            if existing and not existing.endswith("\n"):
                fh.write("\n")
            fh.write("\n".join(lines) + "\n")
    if env_file.exists() and env_file.stat().st_mode & 0o077:  # keys: the daemon user's only
        env_file.chmod(0o600)
    return [line.split("=", 1)[0] for line in lines]


def ensure_admin(login: str = "admin") -> AdminLogin:
    """Create the admin user once, with MULTIFLEXI_ADMIN_PASSWORD or a random password."""
    if db.session.scalar(select(User.id).where(User.login == login)) is not None:
        return AdminLogin(login, None)
    password = os.environ.get("MULTIFLEXI_ADMIN_PASSWORD") or generate_password()
    user = create_user(login, password, is_admin=True)
    audit.record("create", "user", user.id, "admin created by bootstrap", actor="bootstrap")
    return AdminLogin(login, password)


def ensure_demo_apps() -> None:
    """Import the bundled demo apps; each one new or changed goes in the audit log (system)."""
    from multiflexi_web.services.catalogue.app_import import import_demo_apps

    for r in import_demo_apps():
        if r.failed:
            print(f"bootstrap: demo app {r.file} not imported: {r.error}", file=sys.stderr)
        elif r.status == "imported" or r.changes:
            summary = f"application {r.name} {r.status} at start from {Path(r.file).name}"
            details = {"uuid": r.uuid, "changes": r.changes}
            audit.record("import", "application", r.id, summary, details, actor="system")


def bootstrap(app: Flask) -> AdminLogin:
    """Migrate to head, make the admin, import the demo apps; one commit."""
    with app.app_context():
        upgrade()
        admin = ensure_admin()
        ensure_demo_apps()
        db.session.commit()
        return admin
