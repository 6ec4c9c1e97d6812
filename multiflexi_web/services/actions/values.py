"""Action config values: secrets encrypted at rest, masked when shown, defaults merged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multiflexi_web.actions import registry
from multiflexi_web.security.secrets import MASK, cipher

# A secret is stored as {"enc": <ciphertext>} so a plain value can never be taken for one.
ENC = "enc"


def seal(
    kind: str, values: Mapping[str, str], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What to store: secret keys encrypted; a secret sent back as the mask (or empty) keeps
    the stored one (forms never show a stored secret, so they send the placeholder back)."""
    secret = registry.secret_keys(kind)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in secret and value in (MASK, "") and current and key in current:
            out[key] = current[key]
        elif key in secret and value:
            out[key] = {ENC: cipher().encrypt(value)}
        else:
            out[key] = value
    return out


def plain(stored: Mapping[str, Any]) -> dict[str, str]:
    """Decrypted values: only for performing the action."""
    return {k: cipher().decrypt(v[ENC]) if _is_enc(v) else str(v) for k, v in stored.items()}


def masked(stored: Mapping[str, Any]) -> dict[str, str]:
    """For pages, CLI and API: every secret as the mask."""
    return {k: MASK if _is_enc(v) else str(v) for k, v in stored.items()}


def merged(kind: str, defaults: Mapping[str, Any] | None, own: Mapping[str, Any]) -> dict[str, Any]:
    """Global defaults first, the RunTemplate's values override them (as upstream).

    A default's secrets go only where the default sends them: once the RunTemplate names a
    destination of its own (a URL, a mail server, its security), they are left out. Else a
    tenant could set the url alone and receive the platform's token at a server of its own."""
    mine = {k: v for k, v in own.items() if v not in ("", None)}
    base = dict(defaults or {})
    if _redirected(kind, base, mine):
        for key in registry.secret_keys(kind):
            base.pop(key, None)
    return {**base, **mine}


def _redirected(kind: str, defaults: Mapping[str, Any], own: Mapping[str, Any]) -> bool:
    """Whether the RunTemplate's own values send the action elsewhere than the defaults do."""
    return any(
        own.get(key) not in ("", None) and own[key] != defaults.get(key)
        for key in registry.destination_keys(kind)
    )


def secret_plain_values(stored: Mapping[str, Any]) -> list[str]:
    return [v for k, v in plain(stored).items() if _is_enc(stored[k]) and v]


def _is_enc(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {ENC}
