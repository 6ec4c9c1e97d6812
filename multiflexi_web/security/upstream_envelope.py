"""Upstream MultiFlexi's secrets at rest, decrypted for the import (never written by us).

Upstream (`MultiFlexi\\Security\\DataEncryption`): the master key is SHA-256 of the
ENCRYPTION_MASTER_KEY text; each data key in `encryption_keys.key_data` is
base64(iv[16] + AES-256-CBC(master, key[32])); a value in `credata.value` is a JSON envelope
{ciphertext, iv, tag, algorithm: AES-256-GCM | AES-256-CBC, key_name, key_version} with its
parts base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GCM = "AES-256-GCM"
CBC = "AES-256-CBC"


class UpstreamKeyError(ValueError):
    """The upstream master key does not open upstream's data keys (or none was given)."""


class EnvelopeError(ValueError):
    """One stored value cannot be decrypted; the message says why (never the value)."""


@dataclass(frozen=True)
class StoredKey:
    """A row of upstream's `encryption_keys`."""

    name: str
    version: int
    data: str


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what}: not base64") from None


def _cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding, as openssl_decrypt; ValueError on a bad padding."""
    if len(iv) != 16 or not data or len(data) % 16:
        raise ValueError("bad CBC lengths")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = dec.update(data) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def master_key(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def unwrap(master: bytes, stored: StoredKey) -> bytes:
    """A data key opened with the master key; a wrong master key fails the padding or length."""
    raw = _b64(stored.data, f"encryption key {stored.name!r} v{stored.version}")
    try:
        key = _cbc_decrypt(master, raw[:16], raw[16:])
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UpstreamKeyError(
            f"the upstream master key does not open upstream's encryption key {stored.name!r} "
            f"(version {stored.version}): give upstream's ENCRYPTION_MASTER_KEY"
        )
    return key


class UpstreamKeyring:
    """Upstream's data keys, opened with its master key: decrypts credata envelopes."""

    def __init__(self, master_text: str | None, stored: Iterable[StoredKey]) -> None:
        self._keys: dict[tuple[str, int], bytes] = {}
        rows = [s for s in stored if s.data and not s.data.startswith("PLACEHOLDER")]
        if rows and not master_text:
            raise UpstreamKeyError(
                "upstream has encrypted values: give its master key with --upstream-key "
                "or MULTIFLEXI_UPSTREAM_KEY"
            )
        master = master_key(master_text or "")
        for row in rows:
            self._keys[(row.name, row.version)] = unwrap(master, row)

    def decrypt(self, stored_value: str) -> str:
        env = parse_envelope(stored_value)
        name, version = str(env.get("key_name") or "default"), int(env.get("key_version") or 1)
        key = self._keys.get((name, version))
        if key is None:
            raise EnvelopeError(f"encrypted with upstream key {name!r} v{version}, not found")
        algorithm = env.get("algorithm")
        data, iv = _b64(env["ciphertext"], "ciphertext"), _b64(env["iv"], "iv")
        try:
            if algorithm == GCM:
                tag = _b64(env.get("tag", ""), "tag")
                plain = AESGCM(key).decrypt(iv, data + tag, None)
            elif algorithm == CBC:
                plain = _cbc_decrypt(key, iv, data)
            else:
                raise EnvelopeError(f"algorithm {algorithm!r}: unknown")
        except (InvalidTag, ValueError) as exc:
            if isinstance(exc, EnvelopeError):
                raise
            raise EnvelopeError("does not decrypt (damaged or a different key)") from None
        try:
            return plain.decode()
        except UnicodeDecodeError:
            raise EnvelopeError("decrypts to bytes that are not UTF-8 text") from None


def parse_envelope(stored_value: str) -> dict[str, Any]:
    try:
        env = json.loads(stored_value)
    except ValueError:
        raise EnvelopeError("marked encrypted but not a JSON envelope") from None
    if not isinstance(env, dict) or not {"ciphertext", "iv", "algorithm"} <= env.keys():
        raise EnvelopeError("marked encrypted but not an envelope {ciphertext, iv, algorithm}")
    return env


def looks_encrypted(value: str | None) -> bool:
    """For upstream schemas without credata.is_encrypted: a value that is an envelope."""
    if not value or not value.startswith("{"):
        return False
    try:
        parse_envelope(value)
    except EnvelopeError:
        return False
    return True
