"""The post-job action interface: plug-ins take plain frozen data and return an outcome;
they never touch the database (effects on jobs are returned, the dispatcher applies them)."""
from __future__ import annotations
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from multiflexi_web.executors.base import RunAs

@dataclass(frozen=True)
class ConfigField:
    key: str
    type: str = "string"          # the application field types: string, text, url, email, integer, bool, password, set, ...;
                                  # "credential" (a mail credential's id) and "runtemplate" (a RunTemplate's id),
                                  # both of the RunTemplate's own company, checked when configured
    description: str = ""
    required: bool = False
    default: str | None = None
    secret: bool = False          # stored encrypted, write-only in forms, masked everywhere
    destination: bool = False     # says where requests go (a URL, a mail server): a global default's
                                  # secrets go only to the default's destination (services/actions/values.py)
    options: tuple[str, ...] = ()

@dataclass(frozen=True)
class AppRef:
    id: int; name: str; uuid: str | None; homepage: str | None

@dataclass(frozen=True)
class ActionContext:
    run_id: int                   # the action run
    idempotency_key: str          # stable per action run (sent as Idempotency-Key / X-MultiFlexi-Delivery where the peer supports one)
    attempt: int
    job_id: int
    status: str                   # succeeded | failed | timed_out | cancelled | lost
    exit_code: int | None
    exit_meaning: str | None      # from the app's exitCodes
    company_id: int; company_slug: str; company_name: str; zabbix_host: str | None
    app: AppRef
    runtemplate_id: int; runtemplate_name: str
    job_url: str                  # absolute link to the job page
    artifact_urls: dict[str, str] # artifact name -> absolute download link
    stdout_tail: str              # bounded (e.g. last 8 KiB), secrets already masked
    stderr_tail: str
    produced_files: dict[str, Path]  # artifact name -> readable local file (a temp copy made by the dispatcher)
    env: dict[str, str]           # the job's environment, secrets masked (for templates / chains use env_clear below)
    config: dict[str, str]        # this action's config: defaults < RunTemplate values, secrets decrypted
    timeout: float                # per-attempt budget in seconds
    platform_version: str = ""
    run_as: RunAs | None = None   # the job user: processes an action starts run as it, as jobs do
    credential: dict[str, str] = field(default_factory=dict)  # the credential chosen in the config (a "credential" field), decrypted; only ever the job's own company's
    credential_secrets: tuple[str, ...] = ()  # its secret values: masked wherever the run's answer or error is recorded

@dataclass(frozen=True)
class EnqueueJob:                 # effect: the dispatcher enqueues it in its transaction
    runtemplate_id: int
    schedule_type: str            # "chained" | "reschedule"
    delay_seconds: int = 0
    pass_env: bool = False        # pass the finished job's (decrypted) environment as one-time env
    pass_files: bool = False      # pass produced files as uploads per the apps' produces/consumes
    depth: int = 0                # chain depth (dispatcher refuses beyond MULTIFLEXI_CHAIN_MAX_DEPTH)

@dataclass(frozen=True)
class DisableSchedule:            # effect: RunTemplate interval -> manual ('n'), audited
    runtemplate_id: int

Effect = EnqueueJob | DisableSchedule

@dataclass(frozen=True)
class Outcome:
    ok: bool
    response: str | None = None   # bounded (<= 4 KiB), never containing secrets
    error: str | None = None
    retryable: bool = False       # network failures, 5xx, timeouts: True; 4xx/config errors: False
    effects: tuple[Effect, ...] = field(default=())

class Action(Protocol):
    name: str                     # upstream's class names: WebHook, ChainRuntemplate, LaunchJob, Reschedule, Stop, CustomCommand, Email, Github, RedmineIssue, TriggerJenkins, Mattermost, Slack, Zabbix
    description: str
    fields: tuple[ConfigField, ...]
    def usable_for(self, app: AppRef) -> str | None: ...   # None = usable, else why not (Github: homepage must be on github.com)
    def perform(self, ctx: ActionContext) -> Outcome: ...
