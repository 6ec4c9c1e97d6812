"""A job's one-time environment (Run now, CLI, events, retries), encrypted with its marks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from multiflexi_web.security.secrets import cipher


@dataclass(frozen=True)
class OneTimeEnv:
    """Values and the keys the user marked secret (secret-like names are secret anyway)."""

    values: dict[str, str] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()


def seal(values: Mapping[str, str] | None, secret: Iterable[str] = ()) -> str | None:
    """The ciphertext stored in job.env_override; None when there is nothing to store."""
    if not values:
        return None
    marks = sorted(set(secret) & values.keys())
    if not marks:  # the plain {key: value} object, as before marks existed
        return cipher().encrypt_json(dict(values))
    return cipher().encrypt_json({"values": dict(values), "secret": marks})


def unseal(token: str | None) -> OneTimeEnv:
    """The one-time env of a job: {"values", "secret"} or, without marks, {key: value}
    (env values are strings, so a "values" object is never a variable)."""
    if not token:
        return OneTimeEnv()
    data = cipher().decrypt_json(token)
    if not isinstance(data, dict):
        return OneTimeEnv()
    if isinstance(data.get("values"), dict):
        values, marks = data["values"], data.get("secret") or []
    else:
        values, marks = data, []
    plain = {str(k): str(v) for k, v in values.items()}
    return OneTimeEnv(plain, frozenset(str(m) for m in marks) & plain.keys())
