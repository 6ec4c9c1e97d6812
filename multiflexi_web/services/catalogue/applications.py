"""Looking up applications."""

from __future__ import annotations

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import Application
from multiflexi_web.models.bounds import parse_id


class ApplicationError(ValueError):
    """An application operation was refused; the message says why."""


def get_application(ref: str | int) -> Application:
    """An application by id or uuid."""
    app = None
    # An id in ASCII digits within the column's range; else a name ("²" is not an id).
    number = ref if isinstance(ref, int) else parse_id(str(ref))
    if number is not None:
        app = db.session.get(Application, number)
    if app is None:
        app = db.session.scalar(select(Application).where(Application.uuid == str(ref)))
    if app is None:
        raise ApplicationError(f"application {ref!r}: not found (give an id or a uuid)")
    return app
