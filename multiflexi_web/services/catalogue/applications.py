"""Looking up applications."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application


class ApplicationError(ValueError):
    """An application operation was refused; the message says why."""


def get_application(ref: str | int) -> Application:
    """An application by id or uuid."""
    app = None
    if isinstance(ref, int) or str(ref).isdigit():
        app = db.session.get(Application, int(ref))
    if app is None:
        app = db.session.scalar(select(Application).where(Application.uuid == str(ref)))
    if app is None:
        raise ApplicationError(f"application {ref!r}: not found (give an id or a uuid)")
    return app
