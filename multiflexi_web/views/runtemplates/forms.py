"""Reading the RunTemplate forms: typed config values, uploads, credentials, schedule, env."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage, ImmutableMultiDict, MultiDict

from multiflexi_web.models import AppField, Application, FieldType
from multiflexi_web.models.bounds import (
    DELAY,
    MAX_ATTEMPTS,
    RETRY_MIN_GAP,
    TIMEOUT,
    Bound,
    BoundError,
    parse_id,
)
from multiflexi_web.services.accounts.companies import ENV_KEY_RE
from multiflexi_web.services.catalogue.fields import is_secret_field, option_values
from multiflexi_web.services.jobs.adhoc import Upload
from multiflexi_web.services.jobs.artifacts import safe_name
from multiflexi_web.services.runtemplates.configure import (
    RunTemplateError,
    RunTemplateSpec,
    ScheduleSpec,
)
from multiflexi_web.services.scheduling.times import Policies
from multiflexi_web.views.display import translated

Form = MultiDict[str, str] | ImmutableMultiDict[str, str]
Files = MultiDict[str, FileStorage] | ImmutableMultiDict[str, FileStorage]
MAX_ENV_ROWS = 100
_DELAY_RE = re.compile(r"^(\d+):([0-5]?\d)(?::([0-5]?\d))?$")
_TRUE = {"1", "true", "yes", "on", "y"}
# Form inputs a service error can name as its first word.
_TARGETS = {
    "name",
    "interval",
    "cron",
    "delay",
    "timezone",
    "executor",
    "timeout",
    "misfire",
    "overlap",
    "max_attempts",
    "retry_backoff",
    "retry_min_gap",
}


@dataclass(frozen=True)
class FieldView:
    """One config field as the form shows it."""

    key: str
    label: str
    # The widget: checkbox, select, password, textarea, file, number, float, email, url, text.
    kind: str
    description: str
    hint: str
    required: bool
    default: str  # "" for a secret field's default: shown nowhere, only said to exist
    options: list[tuple[str, str]] = field(default_factory=list)
    hidden_default: bool = False


_WIDGETS = {
    FieldType.BOOL: "checkbox",
    FieldType.SET: "select",
    FieldType.PASSWORD: "password",
    FieldType.TEXT: "textarea",
    FieldType.FILE_PATH: "file",
    FieldType.INTEGER: "number",
    FieldType.FLOAT: "float",
    FieldType.EMAIL: "email",
    FieldType.URL: "url",
}


def _options(options: Any) -> list[tuple[str, str]]:
    if isinstance(options, dict):
        return [(str(k), str(v)) for k, v in options.items()]
    if isinstance(options, list):
        return [
            (str(o.get("value")), str(o.get("label") or o.get("value")))
            if isinstance(o, dict)
            else (str(o), str(o))
            for o in options
        ]
    return [(v, v) for v in option_values(options)]


def field_view(f: AppField) -> FieldView:
    try:
        kind = _WIDGETS.get(FieldType(f.type), "text")
    except ValueError:
        kind = "text"
    secret = is_secret_field(f)
    if secret and kind == "text":
        kind = "password"
    return FieldView(
        key=f.keyname,
        label=f.name or f.keyname,
        kind=kind,
        description=translated(f, "description"),
        hint=translated(f, "hint"),
        required=f.required,
        default="" if secret else f.default or "",
        options=_options(f.options) if kind == "select" else [],
        hidden_default=secret and bool(f.default),
    )


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def parse_config(
    form: Form, files: Files, app: Application, stored_files: set[str]
) -> tuple[dict[str, str], list[Upload]]:
    """Config values and uploads from `cfg-<KEY>` / `file-<KEY>` inputs."""
    values: dict[str, str] = {}
    uploads: list[Upload] = []
    for f in app.fields:
        view = field_view(f)
        name = f"cfg-{f.keyname}"
        if view.kind == "checkbox":
            # A hidden "false" precedes the checkbox: the last value sent is the truth.
            sent = form.getlist(name)
            values[f.keyname] = "true" if sent and is_true(sent[-1]) else "false"
        elif view.kind == "file":
            upload = files.get(f"file-{f.keyname}")
            if upload is not None and upload.filename:
                content = upload.read()
                uploads.append(Upload(f.keyname, safe_name(upload.filename), content))
                values[f.keyname] = uploads[-1].filename
            elif form.get(name, "").strip() or f.keyname not in stored_files:
                values[f.keyname] = form.get(name, "")
        elif view.kind == "password":
            # Write-only: an empty input means "keep what is stored" (or "not set" when new).
            if form.get(name, ""):
                values[f.keyname] = form.get(name, "")
        elif name in form:
            values[f.keyname] = form.get(name, "")
    return values, uploads


def _int(raw: str, bound: Bound) -> int | None:
    """An empty input (None: keep the default) or a whole number within the field's bound."""
    if not raw.strip():
        return None
    try:
        return bound.parse(raw)
    except BoundError as exc:
        raise RunTemplateError(str(exc)) from None


def parse_delay(raw: str) -> int:
    """Seconds, or hh:mm[:ss] as upstream writes it."""
    raw = raw.strip()
    if not raw:
        return 0
    m = _DELAY_RE.match(raw[:20])
    if m and len(m.group(1)) <= 4:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
    if raw.isascii() and raw.isdigit():
        return _int(raw, DELAY) or 0
    raise RunTemplateError(f"delay {raw[:40]!r}: give seconds (7200) or hh:mm:ss (02:00:00)")


def parse_schedule(form: Form) -> ScheduleSpec:
    return ScheduleSpec(
        interval=form.get("interval", "n").strip() or "n",
        cron=form.get("cron", "").strip() or None,
        delay=parse_delay(form.get("delay", "")),
        timezone=form.get("timezone", "").strip() or None,
    )


def parse_policies(form: Form) -> Policies:
    """Misfire, overlap and retry settings; absent inputs keep the defaults."""
    default = Policies()
    attempts = _int(form.get("max_attempts", ""), MAX_ATTEMPTS)
    gap = _int(form.get("retry_min_gap", ""), RETRY_MIN_GAP)
    return Policies(
        misfire=form.get("misfire", "").strip() or default.misfire,
        overlap=form.get("overlap", "").strip() or default.overlap,
        max_attempts=default.max_attempts if attempts is None else attempts,
        retry_backoff=form.get("retry_backoff", "").strip() or default.retry_backoff,
        retry_min_gap=default.retry_min_gap if gap is None else gap,
    )


def parse_credentials(form: Form, requirements: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for code in requirements:
        raw = form.get(f"cred-{code}", "").strip()
        if raw and parse_id(raw) is None:
            raise RunTemplateError(f"credential {raw[:40]!r}: not a credential id")
        out[code] = parse_id(raw)
    return out


def parse_spec(form: Form, app: Application, config: dict[str, str]) -> RunTemplateSpec:
    """Name, schedule, executor, timeout, active and config; credentials are bound separately."""
    return RunTemplateSpec(
        name=form.get("name", "").strip()[:255],
        schedule=parse_schedule(form),
        executor=form.get("executor", "native").strip() or "native",
        executor_options=parse_executor_options(form.get("executor_options")),
        config=config,
        timeout=_int(form.get("timeout", ""), TIMEOUT),
        policies=parse_policies(form),
        active=is_true((form.getlist("active") or ["false"])[-1]),
        # Masking stays on unless the form says otherwise (a hidden "false" precedes the box).
        mask_output=is_true((form.getlist("mask_output") or ["true"])[-1]),
    )


def parse_executor_options(text: str | None) -> dict[str, str] | None:
    """`memory=256m cpus=0.5` (spaces, commas or lines between); None when the field is absent."""
    if text is None:
        return None
    out: dict[str, str] = {}
    for pair in text.replace(",", " ").split():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RunTemplateError(f"executor options {pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def executor_options_text(options: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted((options or {}).items()))


def parse_env_rows(form: Form) -> dict[str, str]:
    """One-time environment from parallel `env_key` / `env_value` rows; empty rows are ignored."""
    keys, values = form.getlist("env_key"), form.getlist("env_value")
    if len(keys) > MAX_ENV_ROWS:
        raise RunTemplateError(f"env: at most {MAX_ENV_ROWS} variables at once")
    env: dict[str, str] = {}
    for i, key in enumerate(keys):
        key = key.strip()
        value = values[i] if i < len(values) else ""
        if not key:
            if value:
                raise RunTemplateError(f"env row {i + 1}: a value was given without a name")
            continue
        if not ENV_KEY_RE.match(key):
            raise RunTemplateError(
                f"env {key!r}: names are letters, digits and _ and do not start with a digit"
            )
        if key.startswith("MULTIFLEXI_"):
            raise RunTemplateError(f"env {key!r}: MULTIFLEXI_* variables are set by the platform")
        env[key] = value
    return env


def parse_env_secrets(form: Form) -> frozenset[str]:
    """Keys of the one-time rows whose `env_secret` checkbox (value: the row's index) is on."""
    keys = form.getlist("env_key")
    rows = (parse_id(i) for i in form.getlist("env_secret"))
    marked = {i for i in rows if i is not None and i < len(keys)}
    return frozenset(keys[i].strip() for i in marked if keys[i].strip())


def error_target(message: str) -> str:
    """The form input a service error is about: `config KEY: …` -> cfg-KEY, `cron …` -> cron."""
    head = message.split(":", 1)[0].split()
    if not head:
        return "_form"
    word = head[0]
    if word == "config" and len(head) > 1:
        return f"cfg-{head[1]}"
    if word in _TARGETS:
        return word
    if word in {"env", "env row"}:
        return "env"
    if word in {"credential", "credentials"}:
        return "credentials"
    return "_form"


# The wizard's steps (templates/runtemplates/wizard_steps.html) and the inputs each one holds.
CONFIG_STEP = 3
_STEP_OF = {
    "name": 3,
    "credentials": 4,
    "interval": 5,
    "cron": 5,
    "delay": 5,
    "timezone": 5,
    "misfire": 5,
    "overlap": 5,
    "max_attempts": 5,
    "retry_backoff": 5,
    "retry_min_gap": 5,
    "executor": 6,
    "executor_options": 6,
    "timeout": 6,
}


def error_step(errors: dict[str, str]) -> int:
    """The first step holding an error (the step bar marks it), else the form's first step."""
    steps = [
        4 if key.startswith("cred-") else _STEP_OF.get(key, CONFIG_STEP)
        for key in errors
        if key != "_form"
    ]
    return min(steps, default=CONFIG_STEP)
