"""The frozen ActionContext a plug-in gets: the finished job as plain data, read once per run."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web import __version__
from multiflexi_web.actions.base import ActionContext, AppRef
from multiflexi_web.models import (
    AppExitCode,
    Application,
    Artifact,
    Company,
    Job,
    JobOutput,
    RunTemplate,
)
from multiflexi_web.models.action import ActionConfig, ActionDefault
from multiflexi_web.services.actions import mail_credential, values
from multiflexi_web.services.actions.settings import ActionSettings
from multiflexi_web.services.jobs.artifacts import content_of

TAIL_BYTES = 8192


class ContextError(ValueError):
    """The run cannot be performed (its job or configuration is gone); never retried."""


def config_for(session: Session, config_id: int | None) -> dict[str, Any]:
    """Stored values: the kind's global defaults, overridden by the RunTemplate's (one query)."""
    row = None
    if config_id is not None:
        row = session.execute(
            select(ActionConfig.config, ActionDefault.config)
            .outerjoin(ActionDefault, ActionDefault.action == ActionConfig.action)
            .where(ActionConfig.id == config_id)
        ).first()
    if row is None:
        raise ContextError("its action configuration was removed")
    return values.merged(row[1], row[0] or {})


@dataclass(frozen=True)
class JobFacts:
    """What a delivery needs of the finished job, read with one query (no ORM loading)."""

    id: int
    status: str
    exit_code: int | None
    env: list[dict[str, Any]]
    runtemplate_id: int
    runtemplate_name: str
    app: AppRef
    produces: dict[str, Any]
    company_id: int
    company_slug: str
    company_name: str
    zabbix_host: str | None
    exit_meaning: str | None


def job_facts(session: Session, job_id: int) -> JobFacts | None:
    meaning = (
        select(AppExitCode.description)
        .where(AppExitCode.application_id == Job.application_id, AppExitCode.code == Job.exit_code)
        .limit(1)
        .scalar_subquery()
    )
    row = session.execute(
        select(
            Job.id,
            Job.status,
            Job.exit_code,
            Job.env,
            RunTemplate.id,
            RunTemplate.name,
            Application.id,
            Application.name,
            Application.uuid,
            Application.homepage,
            Application.produces,
            Company.id,
            Company.slug,
            Company.name,
            Company.zabbix_host,
            meaning,
        )
        .join(RunTemplate, RunTemplate.id == Job.runtemplate_id)
        .join(Application, Application.id == Job.application_id)
        .join(Company, Company.id == Job.company_id)
        .where(Job.id == job_id)
    ).first()
    if row is None:
        return None
    return JobFacts(
        row[0],
        row[1],
        row[2],
        row[3] or [],
        row[4],
        row[5],
        AppRef(row[6], row[7], row[8], row[9]),
        row[10] or {},
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
    )


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
def produced_files(session: Session, job: JobFacts) -> Iterator[dict[str, Path]]:
    """Temp copies of the job's artifacts that match its app's `produces` patterns."""
    if not job.produces:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="mf-action-") as tmp:
        yield _copy_produced(session, job.id, job.produces, Path(tmp))


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
    job: JobFacts,
    config: dict[str, str],
    files: dict[str, Path],
    s: ActionSettings,
) -> ActionContext:
    """`run`: the claimed run (id, action, idempotency_key, attempts)."""
    login = login_for(session, run.action, config, job.company_id)
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
        exit_meaning=job.exit_meaning,
        company_id=job.company_id,
        company_slug=job.company_slug,
        company_name=job.company_name,
        zabbix_host=job.zabbix_host,
        app=job.app,
        runtemplate_id=job.runtemplate_id,
        runtemplate_name=job.runtemplate_name,
        job_url=f"{s.base_url}/jobs/{job.id}",
        artifact_urls={n: f"{s.base_url}/jobs/{job.id}/artifacts/{i}/download" for i, n in arts},
        stdout_tail=tail(session, job.id, "stdout"),
        stderr_tail=tail(session, job.id, "stderr"),
        produced_files=files,
        env={str(e["key"]): str(e.get("value", "")) for e in job.env if "key" in e},
        config=config,
        timeout=s.timeout,
        platform_version=__version__,
        run_as=s.run_as,
        credential=login.values if login else {},
        credential_secrets=login.secrets if login else (),
    )


def login_for(
    session: Session, kind: str, config: dict[str, str], company_id: int
) -> mail_credential.MailLogin | None:
    """The credential the action's config chose, resolved for the job's own company only."""
    raw = next((config[k] for k in mail_credential.credential_keys(kind) if config.get(k)), "")
    if not raw:
        return None
    try:
        return mail_credential.resolve(session, company_id, raw)
    except mail_credential.MailCredentialError as exc:
        raise ContextError(f"{kind} {exc}") from None
