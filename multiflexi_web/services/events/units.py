"""A webhook request's unit of work over either kind of connection (see connection.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from multiflexi_web.db.engine import write_session


@dataclass(frozen=True)
class Received:
    token: str
    body: bytes | None  # None: larger than the limit
    headers: dict[str, str]
    limit: int


class Unit(Protocol):
    @property
    def conn(self) -> Connection: ...

    def commit(self) -> None: ...

    def rollback(self) -> None:
        """Undo and begin again (as a writer)."""


class ConnectionUnit:
    """A Core connection of the webhook's own pool (PostgreSQL), its transaction begun."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # A connection lost during COMMIT may have committed: the request is not run again
        # (an event without a delivery id would be stored twice).
        self.committed = False

    def commit(self) -> None:
        self.committed = True
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()
        self.conn.begin()


class SessionUnit:
    """The app session's connection, used through Core only (SQLite)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        # Asked for once per transaction: Session.connection() costs ~50 µs a call.
        self.conn = write_session(session).connection()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
        self.conn = write_session(self.session).connection()
