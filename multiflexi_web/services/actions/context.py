"""The frozen ActionContext a plug-in gets: the finished job as plain data, read for a batch.

The batch reads are statements.py's, compiled once (the ids bound as one list parameter).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web import __version__
from multiflexi_web.actions import registry
from multiflexi_web.actions.base import ActionContext, AppRef
from multiflexi_web.db.raw import driver
from multiflexi_web.models import Application, Artifact
from multiflexi_web.security.secrets import SecretError
from multiflexi_web.services.actions import mail_credential, statements, values
from multiflexi_web.services.actions.settings import ActionSettings
from multiflexi_web.services.jobs.artifacts import content_of

TAIL_BYTES = 8192
TAIL_CHUNKS = statements.TAIL_CHUNKS  # output rows read per stream for a tail


class ContextError(ValueError):
    """The run cannot be performed (its chosen credential is unusable); never retried."""


def configs_for(session: Session, config_ids: Collection[int]) -> dict[int, dict[str, Any]]:
    """Stored values per config: the kind's global defaults, overridden by the RunTemplate's
    (one query). A config that was removed is missing."""
    if not config_ids:
        return {}
    rows = driver(session).read(statements.CONFIGS, {"p_ids": sorted(config_ids)})
    return {row[0]: values.merged(row[2], row[1] or {}) for row in rows}


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


def job_facts(session: Session, job_ids: Collection[int]) -> dict[int, JobFacts]:
    """The jobs' facts, one query for all of them."""
    if not job_ids:
        return {}
    rows = driver(session).read(statements.FACTS, {"p_ids": sorted(job_ids)})
    return {row[0]: _facts(row) for row in rows}


def _facts(row: Any) -> JobFacts:
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


def tails(
    session: Session, job_ids: Collection[int], limit: int = TAIL_BYTES
) -> dict[tuple[int, str], str]:
    """(job id, stream) -> the last `limit` bytes of its output (the last TAIL_CHUNKS chunks
    read), for all the jobs in one query."""
    if not job_ids:
        return {}
    rows = driver(session).read(statements.TAILS, {"p_ids": sorted(job_ids)})
    chunks: dict[tuple[int, str], list[bytes]] = {}
    for job_id, stream, data in rows:
        chunks.setdefault((job_id, stream), []).append(bytes(data))
    return {
        key: b"".join(parts)[-limit:].decode("utf-8", "replace") for key, parts in chunks.items()
    }


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


@dataclass(frozen=True)
class Gathered:
    """What one delivery reads from the database (read for a batch of runs at once)."""

    job: JobFacts | None  # None: the job is gone
    stored: dict[str, Any] | None  # the config's stored values; None: it was removed
    artifacts: list[tuple[int, str]]  # (id, file name)
    stdout_tail: str
    stderr_tail: str
    login: mail_credential.MailLogin | None = None  # the credential its config chose
    login_error: str | None = None  # why that credential cannot be used


def gather(session: Session, claimed: Sequence[Any]) -> dict[int, Gathered]:
    """Run id -> what its delivery needs, for every claimed run (id, job_id, config_id) in
    four queries, whatever their number."""
    facts = job_facts(session, {c.job_id for c in claimed})
    configs = configs_for(session, {c.config_id for c in claimed if c.config_id is not None})
    arts: dict[int, list[tuple[int, str]]] = {}
    if facts:
        for job_id, art_id, filename in driver(session).read(
            statements.ARTIFACTS, {"p_ids": sorted(facts)}
        ):
            arts.setdefault(job_id, []).append((art_id, filename))
    out = tails(session, facts)
    found: dict[int, Gathered] = {}
    for c in claimed:
        job = facts.get(c.job_id)
        stored = configs.get(c.config_id) if c.config_id is not None else None
        login, login_error = None, None
        if job is not None and stored is not None and _chooses_credential(c.action):
            try:
                login = login_for(session, c.action, values.plain(stored), job.company_id)
            except ContextError as exc:
                login_error = str(exc)
            except SecretError:
                pass  # the delivery decrypts the config itself and records this error
        found[c.id] = Gathered(
            job,
            stored,
            arts.get(c.job_id, []),
            out.get((c.job_id, "stdout"), ""),
            out.get((c.job_id, "stderr"), ""),
            login,
            login_error,
        )
    return found


def _chooses_credential(kind: str) -> bool:
    """Whether the kind's config names a credential: only then is its config decrypted here.
    An unknown kind chooses none (its delivery records it failed, rather than every pass of
    the dispatcher failing on it)."""
    try:
        return bool(mail_credential.credential_keys(kind))
    except registry.UnknownAction:
        return False


def build(
    run: Any,
    job: JobFacts,
    found: Gathered,
    config: dict[str, str],
    files: dict[str, Path],
    s: ActionSettings,
) -> ActionContext:
    """`run`: the claimed run (id, idempotency_key, attempts)."""
    if found.login_error:
        raise ContextError(found.login_error)
    login = found.login
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
        artifact_urls={
            n: f"{s.base_url}/jobs/{job.id}/artifacts/{i}/download" for i, n in found.artifacts
        },
        stdout_tail=found.stdout_tail,
        stderr_tail=found.stderr_tail,
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
