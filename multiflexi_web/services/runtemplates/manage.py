"""RunTemplate operations beside configure.py: uploads, clone, delete, credential choices and the
schedule preview (what a template still needs: readiness.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    LIVE_STATUSES,
    Application,
    Credential,
    CredentialPrototype,
    CredentialType,
    FileUpload,
    Interval,
    Job,
    RunTemplate,
    RunTemplateConfig,
    RunTemplateCredential,
    utcnow,
)
from multiflexi_web.services.jobs.adhoc import Upload
from multiflexi_web.services.jobs.artifacts import safe_name
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    ScheduleSpec,
    require_enabled,
)
from multiflexi_web.services.scheduling import times as schedule

PREVIEW_COUNT = 5


def preview(spec: ScheduleSpec, default_tz: str, now: datetime | None = None) -> list[datetime]:
    """The next run times (UTC) of a schedule; [] for manual; ScheduleError when invalid."""
    schedule.validate(spec.interval, spec.cron, spec.timezone, spec.delay)
    code = Interval(spec.interval)
    if code is Interval.MANUAL:
        return []
    # validate() has refused a custom interval without a cron.
    cron = (spec.cron or "") if code is Interval.CUSTOM else schedule.INTERVAL_CRON[code]
    tz = ZoneInfo(spec.timezone or default_tz)
    return schedule.slots_after(cron, tz, now or utcnow(), spec.delay, PREVIEW_COUNT)


def credential_choices(company_id: int, codes: list[str]) -> dict[str, list[Credential]]:
    """For each required prototype code, the company's credentials of that prototype."""
    out: dict[str, list[Credential]] = {code: [] for code in codes}
    if not codes:
        return out
    rows = db.session.execute(
        select(Credential, CredentialPrototype.code)
        .join(CredentialType, Credential.credential_type_id == CredentialType.id)
        .join(CredentialPrototype, CredentialType.prototype_id == CredentialPrototype.id)
        .where(Credential.company_id == company_id, CredentialPrototype.code.in_(codes))
        .order_by(Credential.name)
    ).all()
    for cred, code in rows:
        out[code].append(cred)
    return out


def set_credentials(rt: RunTemplate, chosen: dict[str, int | None]) -> None:
    """Bind the chosen credential per requirement; None unbinds it."""
    from multiflexi_web.services.runtemplates.configure import assign_credential

    for requirement, cred_id in chosen.items():
        if cred_id is None:
            for link in [c for c in rt.credentials if c.requirement == requirement]:
                rt.credentials.remove(link)
        else:
            link = assign_credential(rt, cred_id)
            if link.requirement != requirement:
                raise RunTemplateError(
                    f"credential {cred_id}: it is a {link.requirement!r} credential, "
                    f"not {requirement!r}"
                )
    db.session.flush()


def store_uploads(rt: RunTemplate, uploads: list[Upload]) -> None:
    """Keep uploaded files of file-path fields with the template; a new file replaces the old."""
    for up in uploads:
        db.session.execute(
            delete(FileUpload).where(
                FileUpload.runtemplate_id == rt.id,
                FileUpload.job_id.is_(None),
                FileUpload.field == up.field,
            )
        )
        db.session.add(
            FileUpload(
                runtemplate_id=rt.id,
                field=up.field,
                filename=safe_name(up.filename),
                content=up.content,
            )
        )
    db.session.flush()


def template_uploads(rt_id: int) -> dict[str, str]:
    """Field -> file name of the files stored with a template."""
    rows = db.session.execute(
        select(FileUpload.field, FileUpload.filename).where(
            FileUpload.runtemplate_id == rt_id, FileUpload.job_id.is_(None)
        )
    ).all()
    return {field: name for field, name in rows}


def clone(rt: RunTemplate, name: str | None = None) -> RunTemplate:
    """A copy of a template (config, credentials, schedule, files), created inactive."""
    require_enabled(rt.application)
    copy = RunTemplate(
        company_id=rt.company_id,
        application_id=rt.application_id,
        name=name or f"{rt.name} (copy)",
        active=False,
        next_run_at=None,
    )
    for attr in (
        "interval",
        "cron",
        "delay",
        "timezone",
        "executor",
        "misfire_policy",
        "overlap_policy",
        "max_attempts",
        "retry_backoff",
        "retry_min_gap",
        "timeout",
        "note",
        "mask_output",
    ):
        setattr(copy, attr, getattr(rt, attr))
    copy.topics = list(rt.topics or [])
    copy.executor_options = dict(rt.executor_options or {})
    # Values are copied as stored: secret ones stay encrypted under the same key.
    copy.config = [RunTemplateConfig(key=c.key, value=c.value, secret=c.secret) for c in rt.config]
    copy.credentials = [
        RunTemplateCredential(credential_id=c.credential_id, requirement=c.requirement)
        for c in rt.credentials
    ]
    db.session.add(copy)
    db.session.flush()
    files = db.session.scalars(
        select(FileUpload).where(FileUpload.runtemplate_id == rt.id, FileUpload.job_id.is_(None))
    )
    for f in files:
        db.session.add(
            FileUpload(
                runtemplate_id=copy.id, field=f.field, filename=f.filename, content=f.content
            )
        )
    db.session.flush()
    return copy


def live_job_count(rt_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.runtemplate_id == rt_id, Job.status.in_([s.value for s in LIVE_STATUSES]))
        )
        or 0
    )


def delete_runtemplate(rt: RunTemplate) -> None:
    """Delete a template with its jobs; refused while one of its jobs is scheduled or running."""
    live = live_job_count(rt.id)
    if live:
        raise RunTemplateError(
            f"runtemplate {rt.id}: {live} of its jobs are still scheduled or running; "
            "cancel them first"
        )
    db.session.delete(rt)
    db.session.flush()


def enabled_apps() -> list[Application]:
    return list(
        db.session.scalars(
            select(Application).where(Application.enabled.is_(True)).order_by(Application.name)
        )
    )
