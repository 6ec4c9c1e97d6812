"""Storage figures: how big the database is and how much the artifacts hold."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from multiflexi_web.models import Artifact, Job


def database_bytes(session: Session) -> int:
    """The database's size on disk (PostgreSQL's database, SQLite's file without its WAL)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    pages = int(session.scalar(text("PRAGMA page_count")) or 0)
    return pages * int(session.scalar(text("PRAGMA page_size")) or 0)


def artifact_bytes(session: Session, visible: set[int] | None) -> tuple[int, int]:
    """(count, bytes) of the artifacts of these companies' jobs (None: every company)."""
    query = select(func.count(), func.coalesce(func.sum(Artifact.size), 0)).select_from(Artifact)
    if visible is not None:
        query = query.join(Job, Job.id == Artifact.job_id).where(Job.company_id.in_(visible))
    count, size = session.execute(query).one()
    return int(count), int(size)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
