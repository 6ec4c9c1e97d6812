"""A webhook request's unit of work: its connection, commit and rollback (see connection.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection


@dataclass(frozen=True)
class Received:
    token: str
    body: bytes | None  # None: larger than the limit
    headers: dict[str, str]
    limit: int


class ConnectionUnit:
    """A Core connection of the webhook's engine (connection.py), its transaction begun."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # A connection lost during COMMIT may have committed: the request is not run again
        # (an event without a delivery id would be stored twice).
        self.committed = False

    def commit(self) -> None:
        self.committed = True
        self.conn.commit()

    def rollback(self) -> None:
        """Undo and begin again (on SQLite IMMEDIATE again: the engine's option)."""
        self.conn.rollback()
        self.conn.begin()
