"""A job's environment, resolved layer by layer (SPEC §4) with the source of every key."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from multiflexi_web import __version__
from multiflexi_web.models import RunTemplate
from multiflexi_web.security.env_names import forbidden_reason
from multiflexi_web.security.secrets import MASK, reveal
from multiflexi_web.services.catalogue.credentials import plain_values
from multiflexi_web.services.catalogue.fields import is_secret_field, is_secret_name
from multiflexi_web.services.jobs import macros
from multiflexi_web.services.runtemplates.configure import plain_config

if TYPE_CHECKING:
    from multiflexi_web.services.actions.context import DeliveryFacts

# The daemon's own settings never reach a job, even when they sit in the system env file.
PLATFORM_SECRETS = frozenset(
    {
        "DATABASE_URL",
        "ENCRYPTION_MASTER_KEY",
        "ENCRYPTION_OLD_KEYS",
        "MULTIFLEXI_MASTER_KEY",
        "SECRET_KEY",
        "DB_PASSWORD",
        "DB_USERNAME",
        "DB_CONNECTION",
        "DB_HOST",
        "DB_PORT",
        "DB_DATABASE",
    }
)
# The system env file is also the platform's own settings file (multiflexi.env.example): of it,
# a job gets what the operator put there for jobs, never a setting of the platform. Every such
# setting is named with one of these prefixes or in PLATFORM_SECRETS: the metrics token, the
# first admin's password, the Azure service principal, the container and cluster endpoints.
PLATFORM_PREFIXES = (
    "MULTIFLEXI_",
    "DATABASE_",
    "DB_",
    "ENCRYPTION_",
    "SECRET_KEY",
    "AZURE_",
    "DOCKER_",
    "KUBECONFIG",
)
PLATFORM_NAMES = frozenset({"PORT", "MALLOC_ARENA_MAX"})


def platform_setting(name: str) -> bool:
    """Whether `name` in the system env file is one of the platform's own settings."""
    return name in PLATFORM_SECRETS or name in PLATFORM_NAMES or name.startswith(PLATFORM_PREFIXES)


# All a job takes from the daemon's own environment (nothing else of os.environ leaks): what a
# process needs to behave normally. PATH keeps absolute entries only, so that a file in the
# job's work directory can never be found as a command; HOME is the work directory (platform).
BASE_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
RESULT_FILE = "RESULT_FILE"
# A slot's time (ISO 8601, UTC) for jobs that run one slot of a schedule on purpose (backfill,
# and their retries). It travels in the job's sealed one-time env, which only the platform's own
# services can fill with a platform name (every entry point refuses MULTIFLEXI_*), and is lifted
# into the platform layer here.
SLOT_AT = "MULTIFLEXI_SLOT_AT"
# Layers set by the platform or its operator, not by a tenant: their names are not filtered.
TRUSTED_SOURCES = frozenset({"daemon", "system", "platform"})


@dataclass(frozen=True)
class Layer:
    source: str
    values: Mapping[str, str]
    secret: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TemplateContext:
    """Everything about a RunTemplate a job needs, as plain data (cacheable between jobs)."""

    runtemplate_id: int
    runtemplate_name: str
    timeout: int | None
    options: Mapping[str, Any]
    application_id: int
    application_name: str
    application_uuid: str
    executable: str
    cmd_template: str
    cmd_words: tuple[str, ...]
    artifact_patterns: tuple[str, ...]
    company_id: int
    company_slug: str
    company_name: str
    layers: tuple[Layer, ...] = ()
    upload_fields: frozenset[str] = frozenset()  # fields with a file stored with the template
    mask_output: bool = True  # known secret values masked in the stored output
    ociimage: str | None = None  # for the container modules
    kubernetes: Mapping[str, Any] | None = None  # the app's `kubernetes` block
    has_actions: bool = False  # post-job actions configured: the finish queues their runs
    action_triggers: bool = False  # one of them fires on recovery / N failures (history query)
    # With actions: what their deliveries read, handed over with the runs (runner/actions.py)
    action_facts: DeliveryFacts | None = None


@dataclass(frozen=True)
class ResolvedEnv:
    values: dict[str, str]
    entries: list[dict[str, Any]]
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    dropped: tuple[str, ...] = ()  # "NAME (source): reason" of each name refused at start
    unfilled: tuple[str, ...] = ()  # "NAME (source): why" of placeholders left (macros.py)

    def secret_values(self) -> list[str]:
        return [self.values[k] for k in self.secret_keys if self.values[k]]

    def masked_values(self) -> dict[str, str]:
        """The values with every secret one as a mask: for what is stored or shown."""
        return {k: MASK if k in self.secret_keys else v for k, v in self.values.items()}


def context_for(rt: RunTemplate, system_values: Mapping[str, str]) -> TemplateContext:
    """Read a RunTemplate with its app, company and credentials into plain data."""
    from multiflexi_web.services.jobs.command import split_template, template_of
    from multiflexi_web.services.jobs.inputs import template_fields

    app, company = rt.application, rt.company
    template = template_of(app.cmdparams_template, app.cmdparams)
    return TemplateContext(
        runtemplate_id=rt.id,
        runtemplate_name=rt.name,
        timeout=rt.timeout,
        options=dict(rt.executor_options or {}),
        application_id=app.id,
        application_name=app.name,
        application_uuid=app.uuid,
        executable=app.executable,
        cmd_template=template,
        cmd_words=split_template(template),
        artifact_patterns=tuple(str(a.get("path", "")) for a in app.artifacts if a.get("path")),
        company_id=company.id,
        company_slug=company.slug,
        company_name=company.name,
        layers=tuple(_layers(rt, system_values)),
        upload_fields=template_fields(_session_of(rt), rt.id),
        mask_output=rt.mask_output,
        ociimage=app.ociimage or None,
        kubernetes=dict(app.kubernetes) if app.kubernetes else None,
        **_actions_of(_session_of(rt), rt),
    )


def _actions_of(session: Session, rt: RunTemplate) -> dict[str, Any]:
    from multiflexi_web.models.action import ActionConfig
    from multiflexi_web.services.actions.context import delivery_facts

    triggers = set(
        session.scalars(
            select(ActionConfig.trigger).where(
                ActionConfig.runtemplate_id == rt.id, ActionConfig.enabled.is_(True)
            )
        )
    )
    return {
        "has_actions": bool(triggers),
        "action_triggers": bool(triggers - {"always"}),
        "action_facts": delivery_facts(session, rt) if triggers else None,
    }


def _session_of(rt: RunTemplate) -> Session:
    session = object_session(rt)
    if session is None:
        raise ValueError(f"RunTemplate {rt.id} is not attached to a session")
    return session


def _layers(rt: RunTemplate, system_values: Mapping[str, str]) -> Iterable[Layer]:
    app = rt.application
    yield Layer("daemon", daemon_base())
    yield Layer(
        "application",
        {f.keyname: f.default for f in app.fields if f.default is not None},
        frozenset(f.keyname for f in app.fields if is_secret_field(f)),
    )
    yield Layer("system", {k: v for k, v in system_values.items() if not platform_setting(k)})
    yield Layer(
        "company",
        {e.key: reveal(e) for e in rt.company.env},
        frozenset(e.key for e in rt.company.env if e.secret),
    )
    yield Layer("runtemplate", plain_config(rt), frozenset(c.key for c in rt.config if c.secret))
    for link in rt.credentials:
        cred = link.credential
        proto = cred.credential_type.prototype
        proto_secret = {f.keyword for f in proto.fields if is_secret_field(f)}
        yield Layer(
            f"credential:{cred.name}",
            plain_values(cred),
            frozenset(proto_secret | {v.key for v in cred.values if v.secret}),
        )


def daemon_base() -> dict[str, str]:
    base = {k: os.environ[k] for k in BASE_KEYS if k in os.environ}
    path = [p for p in base.get("PATH", "").split(os.pathsep) if p.startswith("/")]
    base["PATH"] = os.pathsep.join(path) or DEFAULT_PATH
    return base


def resolve(
    ctx: TemplateContext,
    *,
    job_id: int,
    executor: str,
    workdir: Path,
    override: Mapping[str, str] | None = None,
    override_secret: frozenset[str] = frozenset(),
    uploads: Mapping[str, str] | None = None,
    slot_at: datetime | str | None = None,
) -> ResolvedEnv:
    """Merge the layers (later wins), then the platform's own variables on top; an uploaded
    file's path replaces the bare file name the portal put into the config or one-time env.
    A key is secret when any layer says so or its name looks like a secret's."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    secret: set[str] = set()
    dropped: list[str] = []
    once = dict(override or {})
    slot = _slot_value(once.pop(SLOT_AT, None)) or _slot_of(slot_at)
    platform = _platform(ctx, job_id, executor, workdir)
    if slot is not None:
        platform = Layer("platform", {**platform.values, SLOT_AT: slot})
    for layer in (
        *ctx.layers,
        Layer("override", once, override_secret),
        Layer("upload", uploads or {}),
        platform,
    ):
        for key, value in layer.values.items():
            reason = None if layer.source in TRUSTED_SOURCES else forbidden_reason(key)
            if reason:  # a row saved before the rule, or written past it: defence in depth
                dropped.append(f"{key} ({layer.source}): {reason}")
                continue
            values[key], sources[key] = str(value), layer.source
        secret |= layer.secret
    secret |= {k for k in values if is_secret_name(k)}
    filled = macros.expand(values, sources, secret)
    values = filled.values
    if RESULT_FILE in values:
        values[RESULT_FILE] = str(result_path(values[RESULT_FILE], workdir))
        sources[RESULT_FILE] = "platform"
    entries = [
        {
            "key": k,
            "value": MASK if k in secret else values[k],
            "source": sources[k],
            "secret": k in secret,
        }
        for k in sorted(values)
    ]
    return ResolvedEnv(
        values, entries, frozenset(secret & values.keys()), tuple(dropped), filled.notes
    )


def _slot_of(slot_at: datetime | str | None) -> str | None:
    """A scheduler slot's time as the job's MULTIFLEXI_SLOT_AT (ISO 8601, UTC); the driver
    returns SQLite's as naive UTC text."""
    if slot_at is None:
        return None
    when = datetime.fromisoformat(slot_at) if isinstance(slot_at, str) else slot_at
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _slot_value(raw: str | None) -> str | None:
    """The slot time when it is one (an ISO 8601 instant), else None: never arbitrary text."""
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at.isoformat() if at.tzinfo is not None else None


def _platform(ctx: TemplateContext, job_id: int, executor: str, workdir: Path) -> Layer:
    return Layer(
        "platform",
        {
            "MULTIFLEXI_JOB_ID": str(job_id),
            "MULTIFLEXI_EXECUTOR": executor,
            "MULTIFLEXI_VERSION": __version__,
            "MULTIFLEXI_TMP": str(workdir),
            "HOME": str(workdir),
            "MULTIFLEXI_APPLICATION_ID": str(ctx.application_id),
            "MULTIFLEXI_APPLICATION_NAME": ctx.application_name,
            "MULTIFLEXI_APPLICATION_UUID": ctx.application_uuid,
            "MULTIFLEXI_COMPANY_ID": str(ctx.company_id),
            "MULTIFLEXI_COMPANY_CODE": ctx.company_slug,
            "MULTIFLEXI_COMPANY_NAME": ctx.company_name,
            "MULTIFLEXI_RUNTEMPLATE_ID": str(ctx.runtemplate_id),
            "MULTIFLEXI_RUNTEMPLATE_NAME": ctx.runtemplate_name,
        },
    )


def result_path(value: str, workdir: Path) -> Path:
    """RESULT_FILE inside the work directory; a path that would escape it keeps only its name."""
    raw = PurePosixPath(value.replace("\x00", ""))
    parts = [p for p in raw.parts if p not in ("/", ".", "")]
    if raw.is_absolute() or ".." in parts or not parts:
        name = raw.name if raw.name not in ("", ".", "..") else "result"
        return workdir / name
    return workdir.joinpath(*parts)
