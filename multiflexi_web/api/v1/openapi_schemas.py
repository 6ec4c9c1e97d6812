"""The OpenAPI component schemas of /api/v1: what serialize.py returns and the bodies taken."""

from __future__ import annotations

from typing import Any

S = dict[str, Any]
STR: S = {"type": "string"}
INT: S = {"type": "integer"}
BOOL: S = {"type": "boolean"}
TIME: S = {"type": ["string", "null"], "format": "date-time"}
NSTR: S = {"type": ["string", "null"]}
NINT: S = {"type": ["integer", "null"]}
STR_MAP: S = {"type": "object", "additionalProperties": {"type": "string"}}
# What a body may send for an id or a count (ids of most tables are 32-bit on PostgreSQL).
UINT: S = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
NUINT: S = {**UINT, "type": ["integer", "null"]}


def obj(required: list[str], **props: S) -> S:
    return {"type": "object", "required": required, "properties": props}


def ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(name: str) -> S:
    return obj(["items", "next"], items={"type": "array", "items": ref(name)}, next=NINT)


ENV_ROW = obj(["key", "secret"], key=STR, value=NSTR, source=NSTR, secret=BOOL)
JOB = obj(
    ["id", "status", "company_id", "runtemplate_id", "scheduled_for"],
    id=INT,
    status={
        "type": "string",
        "enum": [
            "scheduled",
            "running",
            "succeeded",
            "failed",
            "timed_out",
            "cancelled",
            "lost",
            "blocked",
            "skipped",
        ],
    },
    schedule_type=STR,
    company_id=INT,
    application_id=INT,
    runtemplate_id=INT,
    scheduled_for=TIME,
    started_at=TIME,
    finished_at=TIME,
    exit_code=NINT,
    executor=STR,
    attempt=INT,
    cancel_requested=BOOL,
    command={"type": "array", "items": STR},
    env={"type": "array", "items": ENV_ROW},
    one_time_keys={"type": "array", "items": STR},
)

SCHEMAS: dict[str, S] = {
    "Error": obj(
        ["error", "message", "details"],
        error={"type": "string", "description": "a stable code: not_found, forbidden, ..."},
        message=STR,
        details={"type": "object"},
    ),
    "Health": obj(["status"], status=STR),
    "Company": obj(
        ["id", "name", "slug", "enabled"], id=INT, name=STR, slug=STR, enabled=BOOL, env=STR_MAP
    ),
    "Application": obj(
        ["id", "uuid", "name", "enabled"],
        id=INT,
        uuid=STR,
        name=STR,
        version=NSTR,
        enabled=BOOL,
        tags={"type": "array", "items": STR},
        fields={"type": "array", "items": {"type": "object"}},
    ),
    "ImportResult": obj(
        ["status", "application"],
        status=STR,
        warnings={"type": "array"},
        application=ref("Application"),
    ),
    "Credential": obj(
        ["id", "company_id", "name", "prototype"],
        id=INT,
        company_id=INT,
        name=STR,
        prototype=STR,
        values={**STR_MAP, "description": "secret values are shown as the mask"},
    ),
    "CredentialCreate": obj(
        ["company_id", "prototype", "name"],
        company_id=UINT,
        prototype=STR,
        name=STR,
        values=STR_MAP,
    ),
    "CredentialUpdate": obj([], name=STR, values=STR_MAP),
    "RunTemplate": obj(
        ["id", "company_id", "application_id", "name", "active", "interval"],
        id=INT,
        company_id=INT,
        application_id=INT,
        name=STR,
        active=BOOL,
        interval=STR,
        cron=NSTR,
        next_run_at=TIME,
        last_run_at=TIME,
        config={**STR_MAP, "description": "secret values are shown as the mask"},
        credentials={"type": "object", "additionalProperties": INT},
        unmet_requirements={
            "type": "array",
            "items": STR,
            "description": "credential requirements with no credential: it stays inactive",
        },
        warnings={"type": "array", "items": STR, "description": "after a save, e.g. inactive"},
    ),
    "RunTemplateWrite": obj(
        [],
        company_id=UINT,
        application_id=UINT,
        name=STR,
        interval={"type": "string", "description": "interval code (n: manual, c: cron, ...)"},
        cron=NSTR,
        delay=UINT,
        timezone=NSTR,
        executor=STR,
        timeout=NUINT,
        active=BOOL,
        config=STR_MAP,
        credentials={"type": "object", "additionalProperties": NUINT},
    ),
    "NextRuns": obj(
        ["runtemplate_id", "active", "next_runs"],
        runtemplate_id=INT,
        active=BOOL,
        next_runs={"type": "array", "items": {"type": "string", "format": "date-time"}},
    ),
    "ScheduleRun": obj(
        [],
        when={"type": "string", "format": "date-time", "description": "with a UTC offset"},
        env=STR_MAP,
        secret={"type": "array", "items": STR, "description": "env keys to keep secret"},
    ),
    "JobCreated": obj(["job"], job=ref("Job")),
    "Job": JOB,
    "Deleted": obj(["id", "deleted"], id=INT, deleted=BOOL),
    "CancelOutcome": obj(["job_id", "outcome"], job_id=INT, outcome=STR),
    "Output": obj(
        ["items", "next", "status"],
        items={
            "type": "array",
            "items": obj(["id", "stream", "text"], id=INT, stream=STR, text=STR),
        },
        next=NINT,
        status=STR,
    ),
    "Artifact": obj(
        ["id", "job_id", "filename", "mime_type", "size", "sha256"],
        id=INT,
        job_id=INT,
        filename=STR,
        mime_type=STR,
        size=INT,
        sha256=STR,
        created_at=TIME,
    ),
    "EventSource": obj(
        ["id", "name", "kind", "enabled"],
        id=INT,
        name=STR,
        kind=STR,
        company_id=NINT,
        enabled=BOOL,
        config={"type": "object"},
    ),
    "EventRule": obj(
        ["id", "source_id", "name", "runtemplate_id", "enabled"],
        id=INT,
        source_id=INT,
        name=STR,
        runtemplate_id=INT,
        conditions={"type": "array"},
        env_mapping=STR_MAP,
        priority=INT,
        enabled=BOOL,
    ),
    "Event": obj(
        ["id", "source_id", "status"],
        id=INT,
        source_id=INT,
        status=STR,
        received_at=TIME,
        processed_at=TIME,
    ),
    "Worker": obj(
        ["id", "kind", "hostname", "pid", "status"],
        id=INT,
        kind=STR,
        hostname=STR,
        pid=INT,
        status=STR,
        heartbeat_at=TIME,
        drain_requested_at=TIME,
    ),
    "Pause": obj(
        ["id", "scope", "target_id", "actor"],
        id=INT,
        scope={"type": "string", "enum": ["runtemplate", "application", "company", "platform"]},
        target_id=INT,
        created_at=TIME,
        actor=STR,
        reason={"type": ["string", "null"]},
    ),
    "PauseOutcome": obj(
        ["scope", "target_id", "paused", "changed"],
        scope=STR,
        target_id=INT,
        paused=BOOL,
        changed=BOOL,
    ),
}
_ID_LIST = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
_COUNTS = {"type": "object", "additionalProperties": NINT}
_OUTCOMES = {"type": "object", "additionalProperties": STR}
SCHEMAS.update(
    {
        "BulkRetry": obj(
            [],
            company=UINT,
            app=UINT,
            runtemplate=UINT,
            since={**STR, "description": "due at or after (ISO 8601; no zone: the platform's)"},
            until={**STR, "description": "due before (ISO 8601)"},
            status={
                "type": "array",
                "items": {"type": "string", "enum": ["failed", "lost", "timed_out"]},
                "description": "default: all three",
            },
            exit_code={"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            job_ids={**_ID_LIST, "description": "only these of the selection (a preview's)"},
            dry_run=BOOL,
        ),
        "BulkRetried": obj(
            ["dry_run", "count", "jobs"],
            dry_run=BOOL,
            count=INT,
            jobs={
                "type": "array",
                "items": obj(
                    ["id", "runtemplate_id", "status", "new_job_id"],
                    id=INT,
                    runtemplate_id=INT,
                    status=STR,
                    exit_code=NINT,
                    new_job_id=NINT,
                ),
            },
        ),
        "Backfill": obj(
            ["from", "to"],
            **{
                "from": {**STR, "description": "first slot at or after (ISO 8601)"},
                "to": {**STR, "description": "slots before this, not in the future"},
            },
            dry_run=BOOL,
        ),
        "BackfillResult": obj(
            ["runtemplate_id", "dry_run", "new", "slots"],
            runtemplate_id=INT,
            dry_run=BOOL,
            new=INT,
            slots={
                "type": "array",
                "items": obj(["slot_at", "job_id", "new"], slot_at=STR, job_id=NINT, new=BOOL),
            },
        ),
        "Sla": obj(
            ["from", "to", "late_after_seconds", "totals", "days", "templates", "problems"],
            **{"from": STR, "to": STR},
            late_after_seconds=INT,
            totals=_COUNTS,
            days=_OUTCOMES,
            templates={
                "type": "array",
                "items": obj(
                    ["runtemplate_id", "name", "company_id", "counts", "missed_unknown", "days"],
                    runtemplate_id=INT,
                    name=STR,
                    company_id=INT,
                    counts=_COUNTS,
                    missed_unknown=BOOL,
                    days=_OUTCOMES,
                ),
            },
            problems={
                "type": "array",
                "items": obj(
                    ["runtemplate_id", "slot_at", "outcome", "job_id", "status"],
                    runtemplate_id=INT,
                    slot_at=STR,
                    outcome=STR,
                    job_id=NINT,
                    status=NSTR,
                ),
            },
            problems_more=INT,
        ),
    }
)
for _name in (
    "Company",
    "Application",
    "Credential",
    "RunTemplate",
    "Job",
    "Artifact",
    "EventSource",
    "EventRule",
    "Event",
    "Worker",
    "Pause",
):
    SCHEMAS[f"{_name}Page"] = page_of(_name)
