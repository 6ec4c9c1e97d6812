"""ping and status: upstream's heartbeat and its counts, here of what the caller may see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import Select

from multiflexi_web import __version__
from multiflexi_web.api.upstream.blueprint import bp
from multiflexi_web.api.upstream.common import check_suffix
from multiflexi_web.api.v1 import access
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Company,
    Credential,
    CredentialType,
    RunTemplate,
    Worker,
    utcnow,
)

# A daemon whose heartbeat is older than this is not counted as running.
HEARTBEAT_FRESH = timedelta(minutes=2)


@bp.get("/ping.<suffix>")
def ping(suffix: str) -> dict[str, Any]:
    """No credentials needed, as upstream."""
    check_suffix(suffix)
    return {"ping": [{"ping": "pong"}]}


@bp.get("/status.<suffix>")
def status(suffix: str) -> dict[str, Any]:
    check_suffix(suffix)
    topics: set[str] = set()
    query = access.scoped(select(RunTemplate.topics), RunTemplate.company_id)
    for row in db.session.scalars(query):
        topics.update(row or [])
    types = _count(access.scoped(select(CredentialType.id), CredentialType.company_id))
    return {
        "version": __version__,
        "companies": _count(access.scoped(select(Company.id), Company.id)),
        "apps": _count(select(Application.id)),
        "runtemplates": _count(access.scoped(select(RunTemplate.id), RunTemplate.company_id)),
        "topics": len(topics),
        "credentials": _count(access.scoped(select(Credential.id), Credential.company_id)),
        "credentialtypes": types,  # the client's name
        "credential_types": types,  # upstream server's name
        "database": _database(),
        "daemon": _daemon(),
        "timestamp": utcnow().isoformat(timespec="seconds"),
    }


def _count(query: Select[Any]) -> int:
    return int(db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _database() -> str:
    engine = db.session.get_bind()
    version = ".".join(str(p) for p in (engine.dialect.server_version_info or ()))
    return f"{engine.dialect.name} {version}".strip()


def _daemon() -> str:
    """`running` when a daemon has beaten its heart lately (upstream asks systemd)."""
    fresh = select(Worker.id).where(
        Worker.status == "running", Worker.heartbeat_at >= utcnow() - HEARTBEAT_FRESH
    )
    return "running" if db.session.scalar(fresh.limit(1)) is not None else "stopped"
