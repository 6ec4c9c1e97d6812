"""This installation's identity (models/installation.py): a daemon reads it once, at start."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from multiflexi_web.db.engine import write_session
from multiflexi_web.models.installation import ROW_ID, Installation


def uid(session: Session) -> str:
    """The installation's uid; the first caller on a schema made without the migration's row
    (create_all) makes it, and concurrent first callers agree on one. Commits when it inserts."""
    found = session.scalar(select(Installation.uid).where(Installation.id == ROW_ID))
    if found is None:
        session.rollback()
        write_session(session)  # SQLite: begun as the writer, not a read upgraded later
        try:
            session.add(Installation(id=ROW_ID, uid=uuid.uuid4().hex))
            session.commit()
        except IntegrityError:  # another daemon made it first: take theirs
            session.rollback()
        found = session.scalar(select(Installation.uid).where(Installation.id == ROW_ID))
    session.rollback()  # end the read
    if found is None:  # inserted and committed above, or by another daemon
        raise RuntimeError("the installation row vanished as it was made")
    return found
