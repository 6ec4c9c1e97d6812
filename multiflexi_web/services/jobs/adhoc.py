"""Ad-hoc job operations around transitions.py: run now with uploads, re-run, exit meanings."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from multiflexi_web.extensions import db
from multiflexi_web.models import FileUpload, Job, RunTemplate
from multiflexi_web.security import env_names
from multiflexi_web.services.jobs import transitions as job_service
from multiflexi_web.services.jobs.artifacts import safe_name
from multiflexi_web.services.jobs.environment import SLOT_AT
from multiflexi_web.services.jobs.onetime import unseal

ADHOC_WEB = "adhoc-web"
ADHOC_API = "adhoc-api"
_GENERIC = {
    0: ("success", "success"),
    1: ("general error", "error"),
    2: ("misuse of the command (bad arguments)", "error"),
    124: ("timed out", "error"),
    126: ("the command is not executable", "error"),
    127: ("the command was not found", "error"),
}


@dataclass(frozen=True)
class Upload:
    """A file given for a file-path field: the field's env value becomes its (safe) name."""

    field: str
    filename: str
    content: bytes


@dataclass(frozen=True)
class ExitMeaning:
    code: int
    text: str
    severity: str
    from_app: bool
    # The app file's texts by language, when it gave several (shown through the `tr` filter).
    originals: dict[str, str] | None = None


def exit_meaning(job: Job) -> ExitMeaning | None:
    """What the exit code means: the app's own exitCodes first, then the usual conventions."""
    code = job.exit_code
    if code is None:
        return None
    declared = job.application.exit_code(code)
    if declared is not None:
        originals = (declared.translations or {}).get("description")
        return ExitMeaning(code, declared.description, declared.severity, True, originals)
    if code in _GENERIC:
        text, severity = _GENERIC[code]
        return ExitMeaning(code, text, severity, False)
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    if signum:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return ExitMeaning(code, f"killed by {name}", "error", False)
    return None


def check_one_time_env(
    rt: RunTemplate, env: Mapping[str, str], *, admin: bool, uploads: Iterable[str] = ()
) -> None:
    """Raise EnvNameError for a name this actor may not set (security/env_names.py), or a
    value no environment can hold; `uploads`: the fields files are given for."""
    declared = {f.keyname for f in rt.application.fields}
    env_names.check_all(
        [*env, *uploads], what="env", admin=admin, declared=declared, allow=env_names.allowed()
    )
    env_names.check_values(env, what="env")


def run_now(
    rt: RunTemplate,
    env: dict[str, str],
    uploads: list[Upload],
    launched_by_id: int | None,
    secret: Iterable[str] = (),
    *,
    admin: bool = False,
    schedule_type: str = ADHOC_WEB,
    when: datetime | None = None,
    platform: Mapping[str, str] | None = None,
) -> Job:
    """Queue an ad-hoc job with a one-time environment (the `secret` keys marked secret), now
    or at `when`; uploaded files are stored with the job. `platform` values (the slot time of
    a re-run backfill job) come from the platform itself, so they skip the name check."""
    check_one_time_env(rt, env, admin=admin, uploads=[up.field for up in uploads])
    override = {**env, **(platform or {})}
    rows = []
    for up in uploads:
        name = safe_name(up.filename)
        override[up.field] = name
        rows.append(FileUpload(field=up.field, filename=name, content=up.content))
    job = job_service.enqueue(
        rt,
        schedule_type=schedule_type,
        when=when,
        env_override=override or None,
        secret_keys=secret,
        launched_by_id=launched_by_id,
    )
    for row in rows:
        row.job_id = job.id
        db.session.add(row)
    db.session.flush()
    return job


def one_time_env(job: Job) -> dict[str, str]:
    return unseal(job.env_override).values


def rerun(job: Job, launched_by_id: int | None, schedule_type: str = ADHOC_WEB) -> Job:
    """A new ad-hoc job of the same RunTemplate with the same one-time env and uploaded files."""
    uploads = db.session.scalars(select(FileUpload).where(FileUpload.job_id == job.id)).all()
    once = unseal(job.env_override)
    env = {k: v for k, v in once.values.items() if env_names.forbidden_reason(k) is None}
    slot = {SLOT_AT: once.values[SLOT_AT]} if SLOT_AT in once.values else None
    for up in uploads:
        env.pop(up.field, None)
    return run_now(
        job.runtemplate,
        env,
        [Upload(up.field, up.filename, bytes(up.content)) for up in uploads],
        launched_by_id,
        once.secret,
        admin=True,  # re-running what was accepted (the job start drops forbidden names)
        schedule_type=schedule_type,
        platform=slot,
    )
