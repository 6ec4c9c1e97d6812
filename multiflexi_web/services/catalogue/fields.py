"""Typed config values: normalise what a user typed for a field of a given type."""

from __future__ import annotations

import re
from typing import Any, Protocol

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
TRUE_WORDS = {"1", "true", "yes", "on", "y"}
FALSE_WORDS = {"0", "false", "no", "off", "n", ""}
# Field types whose values are secret whatever the flag says ("secret" exists in credential
# formats; application imports turn it into "password").
SECRET_FIELD_TYPES = frozenset({"password", "secret"})


class FieldValueError(ValueError):
    """A value does not fit its field's type."""


class FieldDef(Protocol):
    """An application field or a credential prototype field."""

    type: str
    secret: bool


def is_secret_field(field: FieldDef | None) -> bool:
    """The one rule of what is secret: a field of a secret type or with its secret flag set.
    Its values are encrypted at rest, masked on every page and never printed by the CLI."""
    return field is not None and (bool(field.secret) or field.type in SECRET_FIELD_TYPES)


def option_values(options: Any) -> list[str]:
    """The allowed values of a `set` field, from a list or a {value: label} object."""
    if isinstance(options, dict):
        return [str(k) for k in options]
    if isinstance(options, list):
        return [str(o.get("value")) if isinstance(o, dict) else str(o) for o in options]
    return []


def normalise_value(ftype: str, raw: str, options: Any = None) -> str:
    value = raw if ftype == "text" or ftype in SECRET_FIELD_TYPES else raw.strip()
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
    if ftype == "email" and not EMAIL_RE.match(value):
        raise FieldValueError(f"{raw!r} is not an e-mail address")
    if ftype == "url" and not URL_RE.match(value):
        raise FieldValueError(f"{raw!r} is not a URL")
    if ftype == "set":
        allowed = option_values(options)
        if allowed and value not in allowed:
            raise FieldValueError(f"{raw!r} is not one of {', '.join(allowed)}")
    return value
