"""security/upstream_envelope.py and security/legacy_passwords.py against upstream's formats,
made here the way upstream's PHP makes them (tests/upstream_fixture.py)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from multiflexi_web.security.legacy_passwords import check_legacy, from_upstream, is_legacy
from multiflexi_web.security.upstream_envelope import (
    EnvelopeError,
    StoredKey,
    UpstreamKeyError,
    UpstreamKeyring,
    looks_encrypted,
)
from tests.services import need
from tests.upstream_fixture import envelope, php_bcrypt, php_md5, wrap_key


@pytest.fixture(autouse=True)
def _bcrypt() -> None:
    """Upstream's hashes are bcrypt: PHP's are made (and ours checked) with the bcrypt module."""
    need(importlib.util.find_spec("bcrypt") is not None, "bcrypt (a pyproject dependency)")


KEY_V1, KEY_V2 = os.urandom(32), os.urandom(32)
STORED = [
    StoredKey("credentials", 1, wrap_key("master", KEY_V1)),
    StoredKey("credentials", 2, wrap_key("master", KEY_V2)),
    StoredKey("personal_data", 1, "PLACEHOLDER_KEY_TO_BE_REPLACED"),
]


def _cbc_envelope(key: bytes, plain: str) -> str:
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = {
        "ciphertext": base64.b64encode(enc.update(data) + enc.finalize()).decode(),
        "iv": base64.b64encode(iv).decode(),
        "algorithm": "AES-256-CBC",
        "key_name": "credentials",
        "key_version": 1,
    }
    return json.dumps(body)


def test_both_algorithms_and_every_key_version_decrypt() -> None:
    ring = UpstreamKeyring("master", STORED)
    assert ring.decrypt(envelope(KEY_V1, "žluťoučký kůň")) == "žluťoučký kůň"
    assert ring.decrypt(envelope(KEY_V2, "rotated", version=2)) == "rotated"
    assert ring.decrypt(_cbc_envelope(KEY_V1, "old cbc")) == "old cbc"


def test_a_wrong_or_missing_master_key_is_refused_up_front() -> None:
    with pytest.raises(UpstreamKeyError, match="does not open upstream's encryption key"):
        UpstreamKeyring("not-master", STORED)
    with pytest.raises(UpstreamKeyError, match="MULTIFLEXI_UPSTREAM_KEY"):
        UpstreamKeyring(None, STORED)
    assert UpstreamKeyring(None, [STORED[2]]) is not None, "a placeholder row holds no key"


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        ("not json", "not a JSON envelope"),
        ('{"ciphertext": "x"}', "not an envelope"),
        ("TAMPER", "does not decrypt"),
        ("V9", "v9, not found"),
        ("ALG", "unknown"),
    ],
)
def test_damaged_values_are_refused_with_a_reason(stored: str, why: str) -> None:
    good = json.loads(envelope(KEY_V1, "secret"))
    if stored == "TAMPER":
        good["tag"] = base64.b64encode(b"\0" * 16).decode()
    elif stored == "V9":
        good["key_version"] = 9
    elif stored == "ALG":
        good["algorithm"] = "ROT13"
    value = json.dumps(good) if stored in ("TAMPER", "V9", "ALG") else stored
    with pytest.raises(EnvelopeError, match=why) as caught:
        UpstreamKeyring("master", STORED).decrypt(value)
    assert "secret" not in str(caught.value)


def test_envelopes_are_recognised_without_the_is_encrypted_column() -> None:
    assert looks_encrypted(envelope(KEY_V1, "x"))
    assert not looks_encrypted("https://erp.example") and not looks_encrypted('{"a": 1}')


def test_upstream_password_hashes() -> None:
    bcrypt_hash = php_bcrypt("pw'with\\quote")
    assert from_upstream(bcrypt_hash) == bcrypt_hash and is_legacy(bcrypt_hash)
    assert check_legacy(bcrypt_hash, "pw'with\\quote")
    assert not check_legacy(bcrypt_hash, "pw")
    # Upstream's login runs addslashes() first: a hash of the slashed form matches too.
    slashed = php_bcrypt("it\\'s")
    assert check_legacy(slashed, "it's")
    md5 = from_upstream(php_md5("old", salt="s4lt"))
    assert md5 is not None and md5.startswith("upstream-md5:") and is_legacy(md5)
    assert check_legacy(md5, "old") and not check_legacy(md5, "OLD")
    assert from_upstream("plaintext") is None and from_upstream("") is None
    assert not is_legacy("scrypt:32768:8:1$salt$hash")
