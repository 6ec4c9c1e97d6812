"""All models, imported here so metadata knows every table."""

from multiflexi_web.models.action import ActionConfig, ActionDefault, ActionRun
from multiflexi_web.models.api_rate import ApiRateWindow
from multiflexi_web.models.application import AppExitCode, AppField, Application, FieldType
from multiflexi_web.models.audit import AuditLog
from multiflexi_web.models.base import Base, utcnow
from multiflexi_web.models.company import Company, CompanyEnv
from multiflexi_web.models.config_epoch import ConfigEpoch
from multiflexi_web.models.credential import (
    Credential,
    CredentialPrototype,
    CredentialPrototypeField,
    CredentialType,
    CredentialValue,
)
from multiflexi_web.models.event import (
    Event,
    EventRule,
    EventSource,
    EventStatus,
    SourceKind,
    WebhookSignature,
)
from multiflexi_web.models.installation import Installation
from multiflexi_web.models.job import (
    ADHOC_TYPES,
    CANCELLABLE_STATUSES,
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    Artifact,
    FileUpload,
    Job,
    JobOutput,
    JobStatus,
    waiting,
)
from multiflexi_web.models.login_throttle import LoginThrottle
from multiflexi_web.models.pause import PLATFORM_TARGET, Pause, PauseScope
from multiflexi_web.models.runtemplate import (
    Interval,
    MisfirePolicy,
    OverlapPolicy,
    RetryBackoff,
    RunTemplate,
    RunTemplateConfig,
    RunTemplateCredential,
)
from multiflexi_web.models.upstream import UpstreamMap
from multiflexi_web.models.user import ApiToken, CompanyMember, Role, User
from multiflexi_web.models.worker import Worker

__all__ = [
    "ADHOC_TYPES",
    "CANCELLABLE_STATUSES",
    "LIVE_STATUSES",
    "PLATFORM_TARGET",
    "TERMINAL_STATUSES",
    "ActionConfig",
    "ActionDefault",
    "ActionRun",
    "ApiRateWindow",
    "ApiToken",
    "AppExitCode",
    "AppField",
    "Application",
    "Artifact",
    "AuditLog",
    "Base",
    "Company",
    "CompanyEnv",
    "CompanyMember",
    "ConfigEpoch",
    "Credential",
    "CredentialPrototype",
    "CredentialPrototypeField",
    "CredentialType",
    "CredentialValue",
    "Event",
    "EventRule",
    "EventSource",
    "EventStatus",
    "FieldType",
    "FileUpload",
    "Installation",
    "Interval",
    "Job",
    "JobOutput",
    "JobStatus",
    "LoginThrottle",
    "MisfirePolicy",
    "OverlapPolicy",
    "Pause",
    "PauseScope",
    "RetryBackoff",
    "Role",
    "RunTemplate",
    "RunTemplateConfig",
    "RunTemplateCredential",
    "SourceKind",
    "UpstreamMap",
    "User",
    "WebhookSignature",
    "Worker",
    "utcnow",
    "waiting",
]
