"""How every page shows times (with their zone) and translated texts: one Jinja filter each."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, has_request_context, request
from markupsafe import Markup

FALLBACK_LANGUAGE = "en"
# Every time on every page: UTC, to the second, the zone spelled out.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
NO_TIME = Markup('<span class="muted">&ndash;</span>')
TIME_TAG = Markup('<time datetime="%s">%s</time>')


def when(
    value: datetime | None, zone: str | tzinfo | None = None, *, weekday: bool = False
) -> Markup:
    """A <time> in UTC with "UTC" after it; with `zone` (a schedule's), the local time with its
    zone name first and UTC beside it. Stored times are aware UTC; a naive one is taken as UTC."""
    if value is None:
        return NO_TIME
    utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    shown, fmt = utc, ("%a " if weekday else "") + TIME_FORMAT
    local_zone = _zone(zone)
    if local_zone is not None and utc.astimezone(local_zone).utcoffset():
        shown = utc.astimezone(local_zone)
    text = f"{shown.strftime(fmt)} {shown.tzname()}"
    if shown is not utc:
        text += f" ({utc.strftime('%H:%M')} UTC)"
    stamp = utc.isoformat().replace("+00:00", "Z")
    # `%`, not .format(): string.Formatter cost more than the rest of this filter (a list page
    # calls it for every row); both escape their arguments.
    return TIME_TAG % (stamp, text)


def _zone(zone: str | tzinfo | None) -> tzinfo | None:
    if zone is None or isinstance(zone, tzinfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a folder
        return None


def language(available: Mapping[str, Any]) -> str | None:
    """The reader's language among `available` (Accept-Language), else English, else none."""
    if has_request_context():
        best = request.accept_languages.best_match(list(available))
        if best:
            return best
    return FALLBACK_LANGUAGE if FALLBACK_LANGUAGE in available else None


def translated(value: Any, originals: Any = None) -> str:
    """The text to show for a localisable value of an application or credential prototype.

    `value` is the stored text (its column) or a raw {"en": ..., "cs": ...} mapping as an app file
    gives it (artifacts), with `originals` the mapping kept beside a column; or, as
    `row|tr('description')`, a row and the name of its column, whose originals the importers keep
    in the row's `translations` (fields of an app: `extra`). The column wins when it was edited
    after the import (it then matches none of the originals).
    """
    if isinstance(originals, str):
        return translated(getattr(value, originals, None), _kept_originals(value, originals))
    if isinstance(value, Mapping):
        return _pick(value)
    if isinstance(originals, Mapping) and originals and (not value or value in originals.values()):
        return _pick(originals)
    return "" if value is None else str(value)


def _kept_originals(row: Any, column: str) -> Any:
    for holder in ("translations", "extra"):
        found = (getattr(row, holder, None) or {}).get(column)
        if isinstance(found, Mapping):
            return found
    return None


def _pick(texts: Mapping[str, Any]) -> str:
    lang = language(texts)
    chosen = texts[lang] if lang is not None else next(iter(texts.values()), "")
    return "" if chosen is None else str(chosen)


def register(app: Flask) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["tr"] = translated
    app.jinja_env.globals["NO_TIME"] = NO_TIME
