"""The OpenAPI 3.1 document of /api/v1, written as data beside the routes (tests keep it true)."""

from __future__ import annotations

from typing import Any

from multiflexi_web.api.v1.openapi_schemas import SCHEMAS, STR, S, ref

# 32-bit ids (most tables on PostgreSQL) and 64-bit ones (jobs, artifacts, events, cursors).
ID: S = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
BIG_ID: S = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
BIG_PATHS = {"job_id", "artifact_id", "event_id"}
READ_ERRORS = ("400", "401", "403", "404", "429")
WRITE_ERRORS = (*READ_ERRORS, "409", "413", "422")


def _param(name: str, where: str, schema: S, description: str = "") -> S:
    out = {"name": name, "in": where, "schema": schema, "required": where == "path"}
    return {**out, "description": description} if description else out


def _query(name: str, schema: S = ID, description: str = "") -> S:
    return _param(name, "query", schema, description)


PAGING = (
    _query("after", BIG_ID, "the `next` of the previous page"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size, 50 by default"),
)


def _json(schema: S) -> S:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    op_id: str,
    summary: str,
    ok: S,
    *,
    params: tuple[S, ...] = (),
    body: S | None = None,
    status: str = "200",
    errors: tuple[str, ...] = READ_ERRORS,
    public: bool = False,
) -> S:
    responses: dict[str, Any] = {status: {"description": "OK", **ok}}
    responses.update({code: {"$ref": "#/components/responses/Error"} for code in errors})
    op: S = {"operationId": op_id, "summary": summary, "responses": responses}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, **body}
    if public:
        op["security"] = []
    return op


def _path_id(name: str) -> S:
    return _param(name, "path", BIG_ID if name in BIG_PATHS else ID)


def _list(op_id: str, summary: str, item: str, *filters: S) -> S:
    return {"get": _op(op_id, summary, _json(ref(f"{item}Page")), params=(*filters, *PAGING))}


def _detail(op_id: str, summary: str, item: str, id_name: str) -> S:
    return _op(op_id, summary, _json(ref(item)), params=(_path_id(id_name),))


def _write(op_id: str, summary: str, out: str, body: S, *params: S, status: str = "200") -> S:
    return _op(
        op_id,
        summary,
        _json(ref(out)),
        params=params,
        body=body,
        status=status,
        errors=WRITE_ERRORS,
    )


def _paths() -> dict[str, S]:
    rt_id, job_id = _path_id("rt_id"), _path_id("job_id")
    date: S = {"type": "string", "format": "date"}
    statuses = SCHEMAS["Job"]["properties"]["status"]
    schedule_body = {
        "content": {
            "application/json": {"schema": ref("ScheduleRun")},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "when; env and secret as JSON text; one file part per "
                    "file-path field of the application, named like the field",
                    "properties": {"when": STR, "env": STR, "secret": STR},
                }
            },
        }
    }
    return {
        "/health": {"get": _op("health", "Liveness", _json(ref("Health")), public=True)},
        "/companies": _list("listCompanies", "Companies you belong to", "Company"),
        "/companies/{company_id}": {
            "get": _detail("getCompany", "A company", "Company", "company_id")
        },
        "/applications": {
            **_list("listApplications", "Applications", "Application"),
            "post": _write(
                "importApplication",
                "Import a MultiFlexi app JSON (global admin)",
                "ImportResult",
                _json({"type": "object"}),
                status="201",
            ),
        },
        "/applications/{app_id}": {
            "get": _detail("getApplication", "An application", "Application", "app_id")
        },
        "/credentials": {
            **_list("listCredentials", "Credentials", "Credential", _query("company")),
            "post": _write(
                "createCredential",
                "Create a credential (company admin)",
                "Credential",
                _json(ref("CredentialCreate")),
                status="201",
            ),
        },
        "/credentials/{credential_id}": {
            "get": _detail("getCredential", "A credential", "Credential", "credential_id"),
            "patch": _write(
                "updateCredential",
                "Rename or set values (company admin)",
                "Credential",
                _json(ref("CredentialUpdate")),
                _path_id("credential_id"),
            ),
        },
        "/runtemplates": {
            **_list(
                "listRunTemplates", "RunTemplates", "RunTemplate", _query("company"), _query("app")
            ),
            "post": _write(
                "createRunTemplate",
                "Create a RunTemplate (operator)",
                "RunTemplate",
                _json(ref("RunTemplateWrite")),
                status="201",
            ),
        },
        "/runtemplates/{rt_id}": {
            "get": _detail("getRunTemplate", "A RunTemplate", "RunTemplate", "rt_id"),
            "patch": _write(
                "updateRunTemplate",
                "Change a RunTemplate (operator)",
                "RunTemplate",
                _json(ref("RunTemplateWrite")),
                rt_id,
            ),
            "delete": _op(
                "deleteRunTemplate",
                "Delete a RunTemplate and its jobs (operator)",
                _json(ref("Deleted")),
                params=(rt_id,),
                errors=WRITE_ERRORS,
            ),
        },
        "/runtemplates/{rt_id}/enable": {
            "post": _op(
                "enableRunTemplate",
                "Enable",
                _json(ref("RunTemplate")),
                params=(rt_id,),
                errors=WRITE_ERRORS,
            )
        },
        "/runtemplates/{rt_id}/disable": {
            "post": _op(
                "disableRunTemplate",
                "Disable",
                _json(ref("RunTemplate")),
                params=(rt_id,),
                errors=WRITE_ERRORS,
            )
        },
        "/runtemplates/{rt_id}/next-runs": {
            "get": _op("nextRuns", "The next run times", _json(ref("NextRuns")), params=(rt_id,))
        },
        "/runtemplates/{rt_id}/schedule": {
            "post": _write(
                "scheduleRun",
                "Queue a run now or at `when` with a one-time env and files (operator)",
                "JobCreated",
                schedule_body,
                rt_id,
                status="201",
            )
        },
        "/jobs": _list(
            "listJobs",
            "Jobs, newest first",
            "Job",
            _query("company"),
            _query("app"),
            _query("runtemplate"),
            _query("status", statuses),
            _query("since", date, "planned on or after this day (UTC)"),
            _query("until", date, "planned on or before this day (UTC)"),
        ),
        "/jobs/{job_id}": {"get": _detail("getJob", "A job", "Job", "job_id")},
        "/jobs/retry": {
            "post": _write(
                "retryJobs",
                "Re-run failed, lost and timed-out jobs chosen by a filter (operator)",
                "BulkRetried",
                _json(ref("BulkRetry")),
            )
        },
        "/runtemplates/{rt_id}/backfill": {
            "post": _write(
                "backfillRunTemplate",
                "One job per slot of a past range, MULTIFLEXI_SLOT_AT set (operator)",
                "BackfillResult",
                _json(ref("Backfill")),
                rt_id,
            )
        },
        "/sla": {
            "get": _op(
                "slaReport",
                "How each slot of a period ended, per RunTemplate and day",
                _json(ref("Sla")),
                params=(
                    _query("company"),
                    _query("runtemplate"),
                    _query("from", STR, "period start, ISO 8601 (default: this month)"),
                    _query("to", STR, "period end, excluded (default: now)"),
                ),
            )
        },
        "/jobs/{job_id}/output": {
            "get": _op(
                "jobOutput",
                "Output chunks after the chunk id `after`",
                _json(ref("Output")),
                params=(
                    job_id,
                    _query("after", BIG_ID, "the last chunk id read (0: from the start)"),
                    _query("stream", {"type": "string", "enum": ["stdout", "stderr"]}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                ),
            )
        },
        "/jobs/{job_id}/cancel": {
            "post": _op(
                "cancelJob",
                "Cancel (operator)",
                _json(ref("CancelOutcome")),
                params=(job_id,),
                errors=WRITE_ERRORS,
            )
        },
        "/jobs/{job_id}/rerun": {
            "post": _op(
                "rerunJob",
                "Run again (operator)",
                _json(ref("JobCreated")),
                params=(job_id,),
                status="201",
                errors=WRITE_ERRORS,
            )
        },
        "/jobs/{job_id}/artifacts": _list(
            "listJobArtifacts", "A job's artifacts", "Artifact", job_id
        ),
        "/artifacts/{artifact_id}": {
            "get": _detail("getArtifact", "Artifact metadata", "Artifact", "artifact_id")
        },
        "/artifacts/{artifact_id}/download": {
            "get": _op(
                "downloadArtifact",
                "The artifact's bytes (an attachment; sandboxed)",
                {"content": {"*/*": {"schema": {"description": "the stored bytes"}}}},
                params=(_path_id("artifact_id"),),
            )
        },
        "/event-sources": _list("listEventSources", "Event sources", "EventSource"),
        "/event-sources/{source_id}": {
            "get": _detail("getEventSource", "An event source", "EventSource", "source_id")
        },
        "/event-rules": _list("listEventRules", "Event rules", "EventRule", _query("source")),
        "/event-rules/{rule_id}": {
            "get": _detail("getEventRule", "An event rule", "EventRule", "rule_id")
        },
        "/events": _list("listEvents", "Received events", "Event", _query("source")),
        "/events/{event_id}": {"get": _detail("getEvent", "An event", "Event", "event_id")},
        "/workers": _list("listWorkers", "Daemon workers", "Worker"),
        **_operation_paths(),
    }


def _operation_paths() -> dict[str, S]:
    """Pause, resume and drain: POSTs without a body (a pause that waited too long: 409)."""

    def post(op_id: str, summary: str, out: str, *params: S) -> S:
        return {"post": _op(op_id, summary, _json(ref(out)), params=params, errors=WRITE_ERRORS)}

    paths: dict[str, S] = {}
    scopes = (
        ("/runtemplates/{rt_id}", "RunTemplate", "rt_id", "operator"),
        ("/companies/{company_id}", "Company", "company_id", "company admin"),
        ("/applications/{app_id}", "Application", "app_id", "global admin"),
        ("/platform", "Platform", None, "global admin"),
    )
    for prefix, name, id_name, who in scopes:
        params = (_path_id(id_name),) if id_name else ()
        for verb, what in (("pause", "claim none of its jobs"), ("resume", "lift the pause")):
            summary = f"{verb.capitalize()}: {what} ({who})"
            paths[f"{prefix}/{verb}"] = post(f"{verb}{name}", summary, "PauseOutcome", *params)
    paths["/pauses"] = _list("listPauses", "Paused scopes (global admin)", "Pause")
    paths["/workers/{worker_id}/drain"] = post(
        "drainWorker",
        "Drain an executor: no new claims, finish running jobs, then idle (global admin)",
        "Worker",
        _path_id("worker_id"),
    )
    return paths


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MultiFlexi API",
            "version": "1.0.0",
            "description": "Authenticate with `Authorization: Bearer <token>` (a personal token "
            "from the portal's Tokens page or `multiflexi token create`) or HTTP Basic. Lists "
            'are pages `{"items": [...], "next": cursor|null}`; errors are '
            '`{"error": code, "message": text, "details": {...}}`.',
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "responses": {"Error": {"description": "An error", **_json(ref("Error"))}},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
