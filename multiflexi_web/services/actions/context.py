"""The frozen ActionContext a plug-in gets: the finished job as plain data, read for a batch.

The batch reads are statements.py's, compiled once (the ids bound as one list parameter).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from multiflexi_web import __version__
from multiflexi_web.actions import registry
from multiflexi_web.actions.base import ActionContext, AppRef
from multiflexi_web.db.raw import driver
from multiflexi_web.models import AppExitCode, Application, Artifact, RunTemplate
from multiflexi_web.models.action import ActionConfig
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
    return {row[0]: values.merged(row[3], row[2], row[1] or {}) for row in rows}


@dataclass(frozen=True)
class JobFacts:
    """What a delivery needs of the finished job, read with one query (no ORM loading)."""

    id: int
    status: str
    exit_code: int | None
    env: list[dict[str, Any]]
    template: TemplateFacts
    exit_meaning: str | None


@dataclass(frozen=True)
class TemplateFacts:
    """What a delivery knows of the job's RunTemplate, app and company."""

    runtemplate_id: int
    runtemplate_name: str
    app: AppRef
    produces: dict[str, Any]
    company_id: int
    company_slug: str
    company_name: str
    zabbix_host: str | None


def job_facts(session: Session, job_ids: Collection[int]) -> dict[int, JobFacts]:
    """The jobs' facts, one query for all of them."""
    if not job_ids:
        return {}
    rows = driver(session).read(statements.FACTS, {"p_ids": sorted(job_ids)})
    return {row[0]: _facts(row) for row in rows}


def _facts(row: Any) -> JobFacts:
    template = TemplateFacts(
        row[4],
        row[5],
        AppRef(row[6], row[7], row[8], row[9]),
        row[10] or {},
        row[11],
        row[12],
        row[13],
        row[14],
    )
    return JobFacts(row[0], row[1], row[2], row[3] or [], template, row[15])


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
    return {key: tail_text(parts, limit) for key, parts in chunks.items()}


def tail_text(chunks: Sequence[bytes], limit: int = TAIL_BYTES) -> str:
    """A stream's tail from its last TAIL_CHUNKS output rows, in order."""
    return b"".join(chunks)[-limit:].decode("utf-8", "replace")


def app_ref(app: Application) -> AppRef:
    return AppRef(app.id, app.name, app.uuid, app.homepage)


@contextlib.contextmanager
def produced_files(session: Session, job: JobFacts) -> Iterator[dict[str, Path]]:
    """Temp copies of the job's artifacts that match its app's `produces` patterns."""
    if not job.template.produces:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="mf-action-") as tmp:
        yield _copy_produced(session, job.id, job.template.produces, Path(tmp))


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
    artifacts: list[tuple[int, str]] | None  # (id, file name); None: not read yet
    stdout_tail: str
    stderr_tail: str
    login: mail_credential.MailLogin | None = None  # the credential its config chose
    login_error: str | None = None  # why that credential cannot be used


def gather(session: Session, claimed: Sequence[Any]) -> dict[int, Gathered]:
    """Run id -> what its delivery needs, for every claimed run (id, job_id, config_id) in
    four queries, whatever their number."""
    facts = job_facts(session, {c.job_id for c in claimed})
    configs = configs_for(session, {c.config_id for c in claimed if c.config_id is not None})
    arts = artifacts_of(session, facts)
    out = tails(session, facts)
    found: dict[int, Gathered] = {}
    for c in claimed:
        job = facts.get(c.job_id)
        stored = configs.get(c.config_id) if c.config_id is not None else None
        login, login_error = None, None
        if job is not None and stored is not None and _chooses_credential(c.action):
            try:
                login = login_for(session, c.action, values.plain(stored), job.template.company_id)
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


@dataclass(frozen=True)
class DeliveryFacts:
    """What the deliveries of a RunTemplate's jobs read about it, its app and company and its
    enabled action configs: the executor caches it in the template's context (the
    configuration epoch watches every table it is read from), so that a finish can hand its
    runs over with their facts instead of the dispatcher reading them (runner/actions.py)."""

    template: TemplateFacts
    exit_meanings: dict[int, str]  # the app's exit code -> its description
    configs: dict[int, dict[str, Any]]  # enabled config id -> stored values, defaults merged


def delivery_facts(session: Session, rt: RunTemplate) -> DeliveryFacts:
    app, company = rt.application, rt.company
    config_ids = session.scalars(
        select(ActionConfig.id).where(
            ActionConfig.runtemplate_id == rt.id, ActionConfig.enabled.is_(True)
        )
    ).all()
    meanings = session.execute(
        select(AppExitCode.code, AppExitCode.description).where(
            AppExitCode.application_id == app.id
        )
    )
    template = TemplateFacts(
        rt.id,
        rt.name,
        app_ref(app),
        app.produces or {},
        company.id,
        company.slug,
        company.name,
        company.zabbix_host,
    )
    exit_meanings = {code: description for code, description in meanings}
    return DeliveryFacts(template, exit_meanings, configs_for(session, config_ids))


def from_memory(
    facts: DeliveryFacts,
    run: Any,
    job: tuple[int, str, int | None, list[dict[str, Any]]],
    tails: Mapping[str, Sequence[bytes]] | None,
    artifacts: list[tuple[int, str]] | None,
) -> Gathered | None:
    """What gather() would read for `run` (action, config_id), built from what the executor
    holds as it records the finish: `job` is (id, status, exit code, env) as written, `tails`
    each stream's last TAIL_CHUNKS rows (None: some are stored already), `artifacts` the
    (id, file name) of the job's artifacts in id order (None: unknown, left for the
    dispatcher to read alone). None where it holds too little: output already stored, a
    config its cached facts do not have, or a credential to resolve (the dispatcher reads
    those)."""
    stored = facts.configs.get(run.config_id) if run.config_id is not None else None
    if tails is None or stored is None or _chooses_credential(run.action):
        return None
    job_id, status, exit_code, env = job
    meaning = facts.exit_meanings.get(exit_code) if exit_code is not None else None
    return Gathered(
        JobFacts(job_id, status, exit_code, env, facts.template, meaning),
        stored,
        artifacts,
        tail_text(tails.get("stdout", ())),
        tail_text(tails.get("stderr", ())),
    )


def artifacts_of(session: Session, job_ids: Collection[int]) -> dict[int, list[tuple[int, str]]]:
    """Job id -> its artifacts' (id, file name), in id order, one query for all the jobs."""
    arts: dict[int, list[tuple[int, str]]] = {}
    if job_ids:
        for job_id, art_id, filename in driver(session).read(
            statements.ARTIFACTS, {"p_ids": sorted(job_ids)}
        ):
            arts.setdefault(job_id, []).append((art_id, filename))
    return arts


def with_artifacts(session: Session, found: Mapping[int, Gathered]) -> dict[int, Gathered]:
    """Run id -> its Gathered with the artifacts read (from_memory leaves them unread: the
    executor stores them without learning their ids)."""
    arts = artifacts_of(session, {g.job.id for g in found.values() if g.job is not None})
    return {
        run_id: replace(g, artifacts=arts.get(g.job.id, []) if g.job is not None else [])
        for run_id, g in found.items()
    }


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
    if found.artifacts is None:
        raise ValueError("build() needs the artifacts read (with_artifacts)")
    login = found.login
    return ActionContext(
        run_id=run.id,
        idempotency_key=run.idempotency_key or f"multiflexi-run-{run.id}",
        attempt=run.attempts,
        job_id=job.id,
        status=job.status,
        exit_code=job.exit_code,
        exit_meaning=job.exit_meaning,
        company_id=job.template.company_id,
        company_slug=job.template.company_slug,
        company_name=job.template.company_name,
        zabbix_host=job.template.zabbix_host,
        app=job.template.app,
        runtemplate_id=job.template.runtemplate_id,
        runtemplate_name=job.template.runtemplate_name,
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
