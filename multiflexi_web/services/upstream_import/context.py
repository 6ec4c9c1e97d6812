"""What every table importer shares: the upstream reader, the id map, the report, the keys."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from multiflexi_web.extensions import db
from multiflexi_web.security.upstream_envelope import UpstreamKeyring
from multiflexi_web.services.upstream_import.mapping import IdMap
from multiflexi_web.services.upstream_import.reader import Row, UpstreamReader, text_of
from multiflexi_web.services.upstream_import.report import Report

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


class Refused(ValueError):
    """This upstream row cannot be carried over; the message says why."""


@dataclass
class Context:
    reader: UpstreamReader
    report: Report
    ids: IdMap
    keyring: UpstreamKeyring
    zone: ZoneInfo
    include_history: bool = False

    def each(
        self,
        table: str,
        rows: Iterable[Row],
        fn: Callable[[Row], str],
        label: Callable[[Row], str] | None = None,
    ) -> None:
        """Import rows one by one, each in a savepoint: a refused row leaves no trace and is
        reported with its reason. Anything else (a database error) ends the whole import."""
        for row in rows:
            try:
                with db.session.begin_nested():
                    outcome = fn(row)
            except ValueError as exc:
                self.report.refuse(table, (label or default_label)(row), str(exc))
                continue
            self.report.count(table, outcome)

    def grouped(self, table: str, key: str) -> dict[Any, list[Row]]:
        out: dict[Any, list[Row]] = defaultdict(list)
        for row in self.reader.rows(table):
            out[row.get(key)].append(row)
        return out

    def our(self, kind: str, upstream_id: Any, what: str) -> int:
        """Our id of an upstream row this one refers to; refused when it was not carried over."""
        found = self.ids.get(kind, upstream_id)
        if found is None:
            raise Refused(f"{what} {upstream_id}: not carried over (see above) or missing")
        return found


def default_label(row: Row) -> str:
    name = row.get("name") or row.get("login") or row.get("keyword") or row.get("keyname")
    return f"#{row.get('id')}" + (f" ({text_of(name)})" if name else "")


def apply(obj: Any, values: dict[str, Any]) -> bool:
    """Set attributes that differ; whether any did."""
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def outcome(created: bool, changed: bool) -> str:
    return CREATED if created else UPDATED if changed else UNCHANGED
