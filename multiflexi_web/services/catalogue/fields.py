"""Typed config values: normalise what a user typed for a field of a given type."""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

from multiflexi_web.security.env_names import NUL_REASON

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_MAX = 254  # RFC 5321's limit on a forward path
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


# Environment names that hold secrets whatever their source: a word of the name (split at "_")
# containing one of these, or a word that is or ends with KEY/KEYS (API_KEY, APIKEY, SSH_KEYS).
# Words that only start with KEY (KEYNAME, KEYBOARD, KEYWORD) are not secret; PWD is the shell's
# working directory, not a password. A DSN (MAILER_DSN, SENTRY_DSN) carries a password or key.
SECRET_NAME_PARTS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN")
SECRET_NAME_WORDS = frozenset({"PASS", "PSK", "DSN"})  # a DSN carries its password


def is_secret_name(name: str) -> bool:
    """The one rule of which environment names are secret (one-time, company, system values)."""
    return _secret_name(name)


# Remembered: a job's ~15 names are asked again for every job (34 us of CPU a job, now ~2).
@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    for word in name.upper().split("_"):
        if word in SECRET_NAME_WORDS or word.endswith(("KEY", "KEYS")):
            return True
        if any(part in word for part in SECRET_NAME_PARTS):
            return True
    return False


class CredentialFieldDef(FieldDef, Protocol):
    keyword: str


def is_secret_credential_field(field: CredentialFieldDef) -> bool:
    """A credential's field is also secret when its name is (upstream's Mail prototype declares
    MAILER_DSN, which carries the login, a plain string)."""
    return is_secret_field(field) or is_secret_name(field.keyword)


def option_values(options: Any) -> list[str]:
    """The allowed values of a `set` field, from a list or a {value: label} object."""
    if isinstance(options, dict):
        return [str(k) for k in options]
    if isinstance(options, list):
        return [str(o.get("value")) if isinstance(o, dict) else str(o) for o in options]
    return []


def normalise_value(ftype: str, raw: str, options: Any = None) -> str:
    if "\x00" in raw:
        raise FieldValueError(NUL_REASON)
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
