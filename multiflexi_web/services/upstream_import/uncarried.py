"""Upstream tables with no counterpart here: named in the report when they hold rows."""

from __future__ import annotations

from multiflexi_web.services.upstream_import.context import Context

# Table -> why it is not carried over.
UNCARRIED = {
    "task": "SLA windows have no counterpart here (retries are per RunTemplate)",
    "token": "API tokens: create new ones (`multiflexi token create`)",
    "user_2fa_secrets": "two-factor secrets are not carried",
    "user_sessions": "sessions are not carried",
    "log": "upstream's log stays upstream",
    "security_audit_log": "upstream's audit log stays upstream",
    "customer": "legacy customer accounts have no counterpart",
    "servers": "legacy servers are superseded by credentials",
    "credtypedata": "settings of credential types built on upstream's PHP prototype classes",
    "file_store": "uploaded input files and stored files of jobs (upstream's blobs)",
    "companyapp": "which applications a company was offered (here: every enabled one)",
    "company_apps": "which applications a company was offered (here: every enabled one)",
    "credential_type_translations": "translations (only the main language is carried)",
    "credential_type_field_translations": "translations (only the main language is carried)",
    "credential_prototype_translations": "translations (only the main language is carried)",
    "credential_prototype_field_translations": "translations (only the main language is carried)",
}


def note_uncarried(ctx: Context) -> None:
    for table, why in UNCARRIED.items():
        rows = ctx.reader.count(table)
        if rows:
            ctx.report.note(f"{table}: {rows} rows not carried over ({why})")
    with_sla = [
        r["id"]
        for r in ctx.reader.rows("runtemplate")
        if r.get("deadline_offset") or r.get("allow_late")
    ]
    if with_sla:
        ids = ", ".join(f"#{i}" for i in with_sla)
        ctx.report.note(f"runtemplate {ids}: SLA deadline_offset/allow_late not carried over")
