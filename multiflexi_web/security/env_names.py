"""Which environment names a tenant may set for a job: the one rule, used at save and at start."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Read by the dynamic loader, an interpreter or a shell before the job's own code runs: whoever
# sets one of these chooses code that runs as the job (LD_PRELOAD=evil.so). Never, for anyone.
FORBIDDEN_PREFIXES = (
    "LD_",
    "DYLD_",
    "GCONV_",
    "GLIBC_",
    "MALLOC_",
    "PYTHON",
    "PERL5",
    "RUBY",
    "NODE_",
    "NPM_CONFIG_",
    "BASH_FUNC_",
    "LUA_",
    "GIT_",
)
FORBIDDEN_NAMES = frozenset(
    {
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "CDPATH",
        "GLOBIGNORE",
        "PROMPT_COMMAND",
        "PERLLIB",
        "PERLIO",
        "NLSPATH",
        "LOCPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "TMPDIR",
        "CLASSPATH",
        "GEM_HOME",
        "GEM_PATH",
        "TCLLIBPATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "PHPRC",
        "PHP_INI_SCAN_DIR",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "HOME",
        "SHELL",
        "USER",
        "LOGNAME",
    }
)
# The platform's own settings and variables: set by the platform, never by a tenant.
PLATFORM_PREFIXES = ("MULTIFLEXI_",)
PLATFORM_NAMES = frozenset(
    {
        "DATABASE_URL",
        "ENCRYPTION_MASTER_KEY",
        "ENCRYPTION_OLD_KEYS",
        "SECRET_KEY",
        "DB_CONNECTION",
        "DB_HOST",
        "DB_PORT",
        "DB_DATABASE",
        "DB_USERNAME",
        "DB_PASSWORD",
        "CREDENTIALS_DIRECTORY",
    }
)
# Harmless names everyone may set on top of the application's declared fields.
DEFAULT_ALLOW = frozenset({"TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LC_TIME"})


class EnvNameError(ValueError):
    """A name that may not be set here; the message names it and says why."""


def forbidden_reason(name: str) -> str | None:
    """Why nobody may set `name` for a job (None when the name itself is acceptable)."""
    if not NAME_RE.match(name):
        return "names are letters, digits and _ and do not start with a digit"
    upper = name.upper()
    if upper in FORBIDDEN_NAMES or upper.startswith(FORBIDDEN_PREFIXES):
        return "it is read by the loader, an interpreter or the shell before the job runs"
    if upper in PLATFORM_NAMES or upper.startswith(PLATFORM_PREFIXES):
        return "it is set by the platform"
    return None


def parse_allow(raw: str) -> frozenset[str]:
    """MULTIFLEXI_ENV_ALLOW: names separated by commas or spaces, added to DEFAULT_ALLOW."""
    names = {n for n in re.split(r"[\s,]+", raw.strip()) if n}
    for name in sorted(names):
        reason = forbidden_reason(name)
        if reason:
            raise EnvNameError(f"MULTIFLEXI_ENV_ALLOW {name!r}: never allowed, {reason}")
    return DEFAULT_ALLOW | names


def check(
    name: str,
    *,
    what: str,
    admin: bool,
    declared: Collection[str] = (),
    allow: Collection[str] = DEFAULT_ALLOW,
) -> None:
    """Raise EnvNameError unless `name` may be set by this actor: a global admin may set any
    acceptable name; anyone else only declared fields and allow-listed names."""
    reason = forbidden_reason(name)
    if reason:
        raise EnvNameError(f"{what} {name!r}: not allowed, {reason}")
    if not admin and name not in declared and name not in allow:
        raise EnvNameError(
            f"{what} {name!r}: not a field of the application nor an allowed name "
            "(a global administrator can allow it with MULTIFLEXI_ENV_ALLOW)"
        )


# execve() ends a value at its first NUL, and PostgreSQL refuses one in any text column.
NUL_REASON = "contains a NUL character, which no environment value can hold"


def check_values(values: Mapping[str, str], *, what: str) -> None:
    """Raise EnvNameError for a value no job's environment can hold, naming its key."""
    for name, value in values.items():
        if "\x00" in value:
            raise EnvNameError(f"{what} {name!r}: {NUL_REASON}")


def check_all(
    names: Iterable[str],
    *,
    what: str,
    admin: bool,
    declared: Collection[str] = (),
    allow: Collection[str] = DEFAULT_ALLOW,
) -> None:
    for name in names:
        check(name, what=what, admin=admin, declared=declared, allow=allow)


def allowed() -> frozenset[str]:
    """The running app's allow-list (DEFAULT_ALLOW outside an app)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return DEFAULT_ALLOW
    settings = current_app.config.get("MULTIFLEXI")
    return getattr(settings, "env_allow", DEFAULT_ALLOW)
