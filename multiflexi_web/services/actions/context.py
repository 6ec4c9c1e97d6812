"""The frozen ActionContext a plug-in gets: the finished job as plain data, read once per run."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web import __version__
from multiflexi_web.actions.base import ActionContext, AppRef
from multiflexi_web.models import Application, Artifact, Job, JobOutput
from multiflexi_web.models.action import ActionConfig, ActionDefault
from multiflexi_web.services.actions import values
from multiflexi_web.services.actions.settings import ActionSettings
from multiflexi_web.services.jobs.artifacts import content_of

TAIL_BYTES = 8192


class ContextError(ValueError):
    """The run cannot be performed (its job or configuration is gone); never retried."""


def config_for(session: Session, kind: str, config_id: int | None) -> dict[str, Any]:
    """Stored values: the kind's global defaults, overridden by the RunTemplate's."""
    row = session.get(ActionConfig, config_id) if config_id is not None else None
    if row is None:
        raise ContextError("its action configuration was removed")
    default = session.scalar(select(ActionDefault.config).where(ActionDefault.action == kind))
    return values.merged(default, row.config or {})


def tail(session: Session, job_id: int, stream: str, limit: int = TAIL_BYTES) -> str:
    rows = session.scalars(
        select(JobOutput.data)
        .where(JobOutput.job_id == job_id, JobOutput.stream == stream)
        .order_by(JobOutput.seq.desc())
        .limit(16)
    ).all()
    data = b"".join(bytes(r) for r in reversed(rows))[-limit:]
    return data.decode("utf-8", "replace")


def app_ref(app: Application) -> AppRef:
    return AppRef(app.id, app.name, app.uuid, app.homepage)


@contextlib.contextmanager
def produced_files(session: Session, job: Job) -> Iterator[dict[str, Path]]:
    """Temp copies of the job's artifacts that match its app's `produces` patterns."""
    produces = job.application.produces or {}
    if not produces:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="mf-action-") as tmp:
        yield _copy_produced(session, job.id, produces, Path(tmp))


def produced_artifacts(
    session: Session, job_id: int, produces: dict[str, Any]
) -> dict[str, Artifact]:
    """Produced name -> the first artifact whose file name matches one of its patterns."""
    arts = list(
        session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id))
    )
    found: dict[str, Artifact] = {}
    for name, spec in produces.items():
        patterns = [str(p) for p in (spec or {}).get("patterns") or [] if p]
        for art in arts:
            if any(_matches(p, art.filename) for p in patterns):
                found[name] = art
                break
    return found


def _matches(pattern: str, filename: str) -> bool:
    try:
        return re.search(pattern, filename[:255]) is not None
    except re.error:
        return False


def _copy_produced(
    session: Session, job_id: int, produces: dict[str, Any], tmp: Path
) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, art in produced_artifacts(session, job_id, produces).items():
        path = tmp / f"{len(out)}-{Path(art.filename).name}"
        path.write_bytes(content_of(art))
        path.chmod(0o600)
        out[name] = path
    return out


def build(
    session: Session,
    run: Any,
    job: Job,
    config: dict[str, str],
    files: dict[str, Path],
    s: ActionSettings,
) -> ActionContext:
    """`run`: the claimed ActionRun row (id, idempotency_key, attempts)."""
    app, company, rt = job.application, job.company, job.runtemplate
    code = app.exit_code(job.exit_code)
    arts = session.execute(
        select(Artifact.id, Artifact.filename).where(Artifact.job_id == job.id)
    ).all()
    return ActionContext(
        run_id=run.id,
        idempotency_key=run.idempotency_key or f"multiflexi-run-{run.id}",
        attempt=run.attempts,
        job_id=job.id,
        status=job.status,
        exit_code=job.exit_code,
        exit_meaning=code.description if code is not None else None,
        company_id=company.id,
        company_slug=company.slug,
        company_name=company.name,
        zabbix_host=company.zabbix_host,
        app=app_ref(app),
        runtemplate_id=rt.id,
        runtemplate_name=rt.name,
        job_url=f"{s.base_url}/jobs/{job.id}",
        artifact_urls={n: f"{s.base_url}/jobs/{job.id}/artifacts/{i}/download" for i, n in arts},
        stdout_tail=tail(session, job.id, "stdout"),
        stderr_tail=tail(session, job.id, "stderr"),
        produced_files=files,
        env={str(e["key"]): str(e.get("value", "")) for e in job.env or [] if "key" in e},
        config=config,
        timeout=s.timeout,
        platform_version=__version__,
    )
