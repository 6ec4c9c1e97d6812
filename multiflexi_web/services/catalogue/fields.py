"""Typed config values: normalise what a user typed for a field of a given type."""

from __future__ import annotations

import re
from typing import Any

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_MAX = 254  # RFC 5321's limit on a forward path
URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
TRUE_WORDS = {"1", "true", "yes", "on", "y"}
FALSE_WORDS = {"0", "false", "no", "off", "n", ""}


class FieldValueError(ValueError):
    """A value does not fit its field's type."""


def option_values(options: Any) -> list[str]:
    """The allowed values of a `set` field, from a list or a {value: label} object."""
    if isinstance(options, dict):
        return [str(k) for k in options]
    if isinstance(options, list):
        return [str(o.get("value")) if isinstance(o, dict) else str(o) for o in options]
    return []


def normalise_value(ftype: str, raw: str, options: Any = None) -> str:
    value = raw.strip() if ftype not in {"text", "password"} else raw
    if value == "":
        return ""
    if ftype == "bool":
        low = value.lower()
        if low in TRUE_WORDS:
            return "true"
        if low in FALSE_WORDS:
            return "false"
        raise FieldValueError(f"{raw!r} is not a yes/no value")
    if ftype == "integer":
        try:
            return str(int(value))
        except ValueError:
            raise FieldValueError(f"{raw!r} is not a whole number") from None
    if ftype == "float":
        try:
            float(value)
        except ValueError:
            raise FieldValueError(f"{raw!r} is not a number") from None
        return value
    # The pattern backtracks quadratically on long input; no address is longer than this.
    if ftype == "email" and (len(value) > EMAIL_MAX or not EMAIL_RE.match(value)):
        raise FieldValueError(f"{raw!r} is not an e-mail address")
    if ftype == "url" and not URL_RE.match(value):
        raise FieldValueError(f"{raw!r} is not a URL")
    if ftype == "set":
        allowed = option_values(options)
        if allowed and value not in allowed:
            raise FieldValueError(f"{raw!r} is not one of {', '.join(allowed)}")
    return value
