"""Password hashes carried over from upstream MultiFlexi, accepted until their first login.

Upstream stores bcrypt (`$2y$`, PHP's spelling of `$2b$`) and, from older installations,
`md5(salt + password):salt`. The importer keeps bcrypt hashes as they are and stores md5 ones
under MD5_PREFIX, so no werkzeug hash is ever mistaken for either. After a successful check
the caller re-hashes the password with our own scheme.
"""

from __future__ import annotations

import hashlib
import hmac

BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")
MD5_PREFIX = "upstream-md5:"


def is_legacy(stored: str) -> bool:
    return stored.startswith((*BCRYPT_PREFIXES, MD5_PREFIX))


def from_upstream(stored: str) -> str | None:
    """The form we keep of an upstream hash, or None when it is neither bcrypt nor md5:salt."""
    if stored.startswith(BCRYPT_PREFIXES):
        return stored
    digest, sep, salt = stored.partition(":")
    if sep and len(digest) == 32 and all(c in "0123456789abcdef" for c in digest.lower()):
        return f"{MD5_PREFIX}{digest.lower()}:{salt}"
    return None


def is_md5(stored: str) -> bool:
    return stored.startswith(MD5_PREFIX)


def check_legacy(stored: str, password: str) -> bool:
    # Upstream's login passes the password through PHP's addslashes() before checking it, so
    # a password with a quote or backslash may have been hashed in that form.
    slashed = password.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    slashed = slashed.replace("\0", "\\0")
    return any(_check(stored, p) for p in dict.fromkeys((password, slashed)))


def _check(stored: str, password: str) -> bool:
    if stored.startswith(BCRYPT_PREFIXES):
        # PHP's $2y$ is the same algorithm as $2b$; the bcrypt module knows only $2a$/$2b$.
        # bcrypt reads at most 72 bytes of the password, as PHP's password_verify does.
        import bcrypt  # only here: the portal runs without it until a moved-in user logs in

        normal = "$2b$" + stored[4:]
        try:
            return bcrypt.checkpw(password.encode()[:72], normal.encode())
        except ValueError:
            return False
    if stored.startswith(MD5_PREFIX):
        digest, _, salt = stored[len(MD5_PREFIX) :].partition(":")
        mine = hashlib.md5((salt + password).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(mine, digest)
    return False
