"""Encryption of secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256) and key rotation."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any, Protocol

from multiflexi_web.config import ConfigError

# cryptography is imported where a secret is first encrypted or decrypted, not at start: a
# daemon whose jobs carry no secret never loads it (~10 MiB of its resident memory).
if TYPE_CHECKING:
    from cryptography.fernet import Fernet

MASK = "••••••••"


class SecretError(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys."""


def fernet_for(key: str) -> Fernet:
    """A Fernet for a master key: a real Fernet key is used as is, any other text is hashed."""
    from cryptography.fernet import Fernet

    try:
        return Fernet(key.encode())
    except ValueError:
        digest = hashlib.sha256(key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class Cipher:
    """Encrypts with the current key, decrypts with the current or any old key."""

    def __init__(self, master_key: str, old_keys: tuple[str, ...] = ()) -> None:
        if not master_key:
            raise ConfigError("ENCRYPTION_MASTER_KEY: not set; it is needed to store secrets")
        from cryptography.fernet import MultiFernet

        self._current = fernet_for(master_key)
        self._all = MultiFernet([self._current, *(fernet_for(k) for k in old_keys)])

    def encrypt(self, plain: str) -> str:
        return self._current.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._all.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError(
                "a stored secret cannot be decrypted: ENCRYPTION_MASTER_KEY does not match the "
                "key it was written with (list the old key in ENCRYPTION_OLD_KEYS)"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the current key."""
        from cryptography.fernet import InvalidToken

        try:
            return self._all.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError("a stored secret cannot be decrypted with any known key") from exc

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value))

    def decrypt_json(self, token: str) -> Any:
        return json.loads(self.decrypt(token))


def cipher() -> Cipher:
    """The cipher of the running app's settings."""
    from multiflexi_web.services import settings

    s = settings()
    return Cipher(s.encryption_master_key, s.encryption_old_keys)


class StoredValue(Protocol):
    """A row holding a value that is ciphertext when `secret` is true."""

    value: str
    secret: bool


def value_to_store(value: str, secret: bool, current: StoredValue | None) -> str | None:
    """Ciphertext for a secret, the text otherwise; None keeps `current` (an empty secret field
    means "unchanged", since forms never send a stored secret back)."""
    if secret and value == "" and current is not None:
        return None
    return cipher().encrypt(value) if secret else value


def reveal(row: StoredValue) -> str:
    """The plain value of a row: only for building a job's environment."""
    return cipher().decrypt(row.value) if row.secret else row.value
