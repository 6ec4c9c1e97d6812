"""Moving an upstream (PHP) MultiFlexi installation in: `multiflexi upstream import`.

One unit of work: every table is read from upstream and written here in the caller's
transaction (the CLI commits it, or rolls it back for a dry run), so a run is all or nothing.
Rows that cannot be carried over are skipped and reported, each in a savepoint of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from multiflexi_web.extensions import db
from multiflexi_web.security.upstream_envelope import (
    StoredKey,
    UpstreamKeyError,
    UpstreamKeyring,
    looks_encrypted,
)
from multiflexi_web.services.upstream_import.actions import import_actions
from multiflexi_web.services.upstream_import.apps import import_apps
from multiflexi_web.services.upstream_import.companies import import_companies
from multiflexi_web.services.upstream_import.context import Context
from multiflexi_web.services.upstream_import.credentials import import_credentials
from multiflexi_web.services.upstream_import.events import import_events
from multiflexi_web.services.upstream_import.history import import_jobs, pending_note
from multiflexi_web.services.upstream_import.mapping import IdMap
from multiflexi_web.services.upstream_import.reader import (
    UpstreamReader,
    UpstreamReadError,
    flag,
    text_of,
)
from multiflexi_web.services.upstream_import.report import Report
from multiflexi_web.services.upstream_import.runtemplates import import_runtemplates
from multiflexi_web.services.upstream_import.uncarried import note_uncarried
from multiflexi_web.services.upstream_import.users import import_users

__all__ = ["ImportOptions", "Report", "UpstreamKeyError", "UpstreamReadError", "import_upstream"]

# In dependency order: each step refers only to rows of the steps before it.
STEPS = (
    import_companies,
    import_apps,
    import_credentials,
    import_users,
    import_runtemplates,
    import_actions,
    import_events,
)


@dataclass(frozen=True)
class ImportOptions:
    url: str
    upstream_key: str | None = None
    dry_run: bool = False
    include_history: bool = False
    timezone: str = "UTC"  # the zone of upstream's naive timestamps


def import_upstream(options: ImportOptions) -> Report:
    """Read upstream and write it here (added and flushed; the caller commits or rolls back).
    Raises UpstreamKeyError or UpstreamReadError before anything is written."""
    try:
        zone = ZoneInfo(options.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a folder
        raise UpstreamReadError(f"time zone {options.timezone!r}: unknown") from None
    reader = UpstreamReader(options.url)
    try:
        keyring = _keyring(reader, options.upstream_key)
        report = Report(reader.source, options.dry_run)
        ctx = Context(reader, report, IdMap(reader.source), keyring, zone, options.include_history)
        for step in STEPS:
            step(ctx)
        if options.include_history:
            import_jobs(ctx)
        else:
            pending_note(ctx)
        note_uncarried(ctx)
        db.session.flush()
        return report
    finally:
        reader.close()


def _keyring(reader: UpstreamReader, key: str | None) -> UpstreamKeyring:
    """Upstream's data keys opened with the given master key. A given key must open all of
    them; no key is fine only when no stored value is encrypted."""
    stored = _stored_keys(reader)
    if key:
        return UpstreamKeyring(key, stored)
    if _has_encrypted(reader):
        return UpstreamKeyring(None, stored)  # refuses, naming the options
    return UpstreamKeyring(None, [])


def _stored_keys(reader: UpstreamReader) -> list[StoredKey]:
    return [
        StoredKey(
            text_of(r.get("key_name")), int(r.get("version") or 1), text_of(r.get("key_data"))
        )
        for r in reader.rows("encryption_keys")
    ]


def _has_encrypted(reader: UpstreamReader) -> bool:
    has_flag = "is_encrypted" in reader.columns("credata")
    for row in reader.rows("credata"):
        value = text_of(row.get("value"))
        if (flag(row.get("is_encrypted")) if has_flag else looks_encrypted(value)) and value:
            return True
    return False
