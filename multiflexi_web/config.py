"""Configuration: environment, then the system env file, then ./.env; validated once at start."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from multiflexi_web.security.env_names import DEFAULT_ALLOW, EnvNameError, parse_allow

DEFAULT_ENV_FILE = "/etc/multiflexi/multiflexi.env"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the problem."""


def read_sources(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge the sources, earlier ones winning: process env, system env file, local .env."""
    env = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    env_file = Path(env.get("MULTIFLEXI_ENV_FILE", DEFAULT_ENV_FILE))
    local = Path(env.get("MULTIFLEXI_LOCAL_ENV", str(Path.cwd() / ".env")))
    for path in (local, env_file):
        if path.is_file():
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(env)
    return merged


def system_env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the system env file alone: the lowest layer of a job's environment."""
    env = os.environ if environ is None else environ
    path = Path(env.get("MULTIFLEXI_ENV_FILE", DEFAULT_ENV_FILE))
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _parse(src: Mapping[str, str], key: str, default: T, conv: Callable[[str], T], what: str) -> T:
    raw = src.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        return conv(raw.strip())
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise ConfigError(f"{key}: {what}, got {raw!r}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("not positive")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("negative")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("negative")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError("not in (0, 1]")
    return value


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ValueError("not a boolean")


RATE_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(raw: str) -> tuple[int, int]:
    """ "120/minute" -> (120, 60): requests per period in seconds."""
    count, _, period = raw.partition("/")
    seconds = RATE_PERIODS.get(period.strip().lower().removesuffix("s"))
    if seconds is None or not count.strip().isdigit() or int(count) <= 0:
        raise ValueError("not a rate")
    return int(count), seconds


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except OSError:  # a folder of the zone database ("Europe"), a name too long
        raise ValueError("not a time zone") from None
    return raw


def database_url(src: Mapping[str, str]) -> str:
    """DATABASE_URL, or upstream's DB_* keys, or the embedded SQLite file under ./var/."""
    url = src.get("DATABASE_URL", "").strip()
    if url:
        return _normalise_url(url)
    conn = src.get("DB_CONNECTION", "").strip().lower()
    if not conn:
        return f"sqlite:///{PROJECT_ROOT / 'var' / 'multiflexi.db'}"
    database = src.get("DB_DATABASE", "").strip()
    if not database:
        raise ConfigError("DB_DATABASE: required when DB_CONNECTION is set")
    if conn in {"sqlite", "sqlite3"}:
        return f"sqlite:///{database}"
    if conn not in {"pgsql", "postgres", "postgresql"}:
        raise ConfigError(f"DB_CONNECTION: supported values are sqlite and pgsql, got {conn!r}")
    user = quote_plus(src.get("DB_USERNAME", ""))
    password = quote_plus(src.get("DB_PASSWORD", ""))
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = src.get("DB_HOST", "127.0.0.1") or "127.0.0.1"
    port = _parse(src, "DB_PORT", 5432, _positive_int, "must be a port number")
    return f"postgresql+psycopg://{auth}{host}:{port}/{database}"


def _normalise_url(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    raise ConfigError(
        f"DATABASE_URL: only sqlite:/// and postgresql:// URLs are supported, got {url!r}"
    )


@dataclass(frozen=True)
class Settings:
    """Every setting the platform reads, typed and validated."""

    database_url: str
    secret_key: str
    encryption_master_key: str
    encryption_old_keys: tuple[str, ...] = ()
    timezone: str = "UTC"
    max_parallel: int = field(default_factory=lambda: os.cpu_count() or 1)
    memory_limit_mb: int = 0
    cycle_pause: float = 10.0
    tmp_dir: str = str(PROJECT_ROOT / "var" / "tmp")
    artifact_dir: str = str(PROJECT_ROOT / "var" / "artifacts")
    artifact_inline_max_mb: int = 8
    output_cap_mb: int = 64
    job_timeout: int = 0
    kill_grace: float = 10.0
    lost_after: float = 60.0
    lease_fence: float = 0.75  # of lost_after: an executor cut off this long stops its jobs
    # PostgreSQL ends a daemon's session left idle inside a transaction this long (0: never).
    db_idle_tx_timeout: float = 30.0
    state_dir: str = ""  # the executor's private state (finish journal); "" = <tmp_dir>/.state
    journal_max_mb: int = 64
    stop_grace: float = 30.0
    max_catchup: int = 10
    keep_workdir_on_failure: bool = False
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    webhook_max_bytes: int = 1024 * 1024
    session_cookie_secure: bool = False
    trusted_proxies: int = 0
    api_rate: tuple[int, int] = (120, 60)
    env_allow: frozenset[str] = DEFAULT_ALLOW
    job_user: str = "multiflexi-job"
    # Prometheus metrics (docs/metrics.md): the token guards the portal's /metrics and the
    # daemons' ports alike; a daemon's port 0 means it serves none.
    metrics_token: str = ""
    metrics_addr: str = "127.0.0.1"
    metrics_ports: tuple[tuple[str, int], ...] = ()

    def metrics_port(self, kind: str) -> int:
        """The metrics port of a daemon kind (scheduler, eventor, executor); 0: none."""
        return dict(self.metrics_ports).get(kind, 0)

    # Retention (services/housekeeping/): days, 0 = keep forever; companies may override.
    retain_jobs_days: int = 0
    retain_failed_days: int = 0  # failed, timed-out, lost jobs; 0 = as long as other jobs
    retain_output_days: int = 0
    retain_artifacts_days: int = 0
    artifact_budget_mb: int = 0  # per company, 0 = no budget
    housekeeping_interval: float = 3600.0  # seconds between the scheduler's passes, 0 = none
    prune_batch: int = 500
    stale_workdir_hours: float = 24.0
    # Operations (docs/operations.md): most slots one backfill may create; a slot's job is late
    # when it started more than this many seconds after its slot.
    backfill_max_slots: int = 1000
    sla_late_after: int = 900
    # Docker and Podman jobs (docs/executors.md): always applied, a RunTemplate may only lower
    # them; 0 = no limit.
    container_pids: int = 1024
    container_memory: int = 2 * 1024**3  # bytes

    @property
    def state_path(self) -> str:
        return self.state_dir or os.path.join(self.tmp_dir, ".state")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate all settings; raises ConfigError naming the first wrong key."""
    src = read_sources(environ)
    return Settings(
        database_url=database_url(src),
        secret_key=key_value(src, "SECRET_KEY"),
        encryption_master_key=key_value(src, "ENCRYPTION_MASTER_KEY")
        or src.get("MULTIFLEXI_MASTER_KEY", ""),
        encryption_old_keys=tuple(
            k.strip() for k in src.get("ENCRYPTION_OLD_KEYS", "").split(",") if k.strip()
        ),
        timezone=_parse(src, "MULTIFLEXI_TIMEZONE", "UTC", _timezone, "must be an IANA time zone"),
        max_parallel=_parse(
            src,
            "MULTIFLEXI_MAX_PARALLEL",
            os.cpu_count() or 1,
            _positive_int,
            "must be a positive integer",
        ),
        memory_limit_mb=_parse(
            src, "MULTIFLEXI_MEMORY_LIMIT_MB", 0, _non_negative_int, "must be a whole number >= 0"
        ),
        cycle_pause=_parse(
            src, "MULTIFLEXI_CYCLE_PAUSE", 10.0, _non_negative_float, "must be seconds >= 0"
        ),
        tmp_dir=src.get("MULTIFLEXI_TMP", "") or str(PROJECT_ROOT / "var" / "tmp"),
        artifact_dir=src.get("MULTIFLEXI_ARTIFACT_DIR", "")
        or str(PROJECT_ROOT / "var" / "artifacts"),
        artifact_inline_max_mb=_parse(
            src,
            "MULTIFLEXI_ARTIFACT_INLINE_MAX_MB",
            8,
            _non_negative_int,
            "must be a whole number of MiB >= 0",
        ),
        output_cap_mb=_parse(
            src, "MULTIFLEXI_OUTPUT_CAP_MB", 64, _positive_int, "must be a positive number of MiB"
        ),
        job_timeout=_parse(src, "MULTIFLEXI_JOB_TIMEOUT", 0, _non_negative_int, "must be seconds"),
        kill_grace=_parse(
            src, "MULTIFLEXI_KILL_GRACE", 10.0, _non_negative_float, "must be seconds >= 0"
        ),
        lost_after=_parse(
            src, "MULTIFLEXI_LOST_AFTER", 60.0, _non_negative_float, "must be seconds >= 0"
        ),
        lease_fence=_parse(
            src, "MULTIFLEXI_LEASE_FENCE", 0.75, _fraction, "must be a fraction in (0, 1]"
        ),
        db_idle_tx_timeout=_parse(
            src, "MULTIFLEXI_DB_IDLE_TX_TIMEOUT", 30.0, _non_negative_float, "must be seconds >= 0"
        ),
        state_dir=src.get("MULTIFLEXI_STATE_DIR", ""),
        journal_max_mb=_parse(
            src, "MULTIFLEXI_JOURNAL_MAX_MB", 64, _positive_int, "must be a positive number of MiB"
        ),
        stop_grace=_parse(
            src, "MULTIFLEXI_STOP_GRACE", 30.0, _non_negative_float, "must be seconds >= 0"
        ),
        max_catchup=_parse(
            src, "MULTIFLEXI_MAX_CATCHUP", 10, _positive_int, "must be a positive integer"
        ),
        keep_workdir_on_failure=_parse(
            src, "MULTIFLEXI_KEEP_WORKDIR_ON_FAILURE", False, _bool, "must be true or false"
        ),
        login_max_failures=_parse(
            src, "MULTIFLEXI_LOGIN_MAX_FAILURES", 5, _positive_int, "must be a positive integer"
        ),
        login_lockout_seconds=_parse(
            src, "MULTIFLEXI_LOGIN_LOCKOUT_SECONDS", 900, _non_negative_int, "must be seconds"
        ),
        webhook_max_bytes=_parse(
            src,
            "MULTIFLEXI_WEBHOOK_MAX_BYTES",
            1024 * 1024,
            _positive_int,
            "must be a positive number of bytes",
        ),
        session_cookie_secure=_parse(
            src, "MULTIFLEXI_SECURE_COOKIES", False, _bool, "must be true or false"
        ),
        trusted_proxies=_parse(
            src,
            "MULTIFLEXI_TRUSTED_PROXIES",
            0,
            _non_negative_int,
            "must be the number of reverse proxies in front of the portal (0 = none)",
        ),
        env_allow=_env_allow(src.get("MULTIFLEXI_ENV_ALLOW", "")),
        job_user=_job_user(src.get("MULTIFLEXI_JOB_USER", "")),
        api_rate=_parse(
            src,
            "MULTIFLEXI_API_RATE",
            (120, 60),
            parse_rate,
            "must be requests per period, like 120/minute (second, minute, hour, day)",
        ),
        metrics_token=key_value(src, "MULTIFLEXI_METRICS_TOKEN"),
        metrics_addr=src.get("MULTIFLEXI_METRICS_ADDR", "").strip() or "127.0.0.1",
        metrics_ports=_metrics_ports(src),
        **_retention(src),
        **_operations(src),
        **container_limits(src),
    )


SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size_bytes(raw: str) -> int:
    """Bytes, or a size like 512m, 2g (powers of 1024, as docker reads them)."""
    text = raw.strip().lower()
    digits = text.rstrip("bkmg")
    if not (digits.isascii() and digits.isdigit()) or len(text) - len(digits) > 1:
        raise ValueError("not a size")
    return int(digits) * SIZE_UNITS[text[len(digits) :]]


def container_limits(src: Mapping[str, str]) -> dict[str, int]:
    """The ceilings of every docker and podman job (executors/container_options.py); read per
    job by the executor modules, so a changed env file needs no restart."""
    return {
        "container_pids": _parse(
            src, "MULTIFLEXI_CONTAINER_PIDS", 1024, _non_negative_int, "must be a whole number >= 0"
        ),
        "container_memory": _parse(
            src,
            "MULTIFLEXI_CONTAINER_MEMORY",
            2 * 1024**3,
            _container_memory,
            "must be 0 (no limit), or bytes or a size like 512m, 2g of at least 6m",
        ),
    }


def _container_memory(raw: str) -> int:
    size = size_bytes(raw)
    if 0 < size < 6 * 1024**2:  # engines refuse less
        raise ValueError("too small")
    return size


def _operations(src: Mapping[str, str]) -> dict[str, int]:
    return {
        "backfill_max_slots": _parse(
            src, "MULTIFLEXI_BACKFILL_MAX_SLOTS", 1000, _positive_int, "must be a positive integer"
        ),
        "sla_late_after": _parse(
            src, "MULTIFLEXI_SLA_LATE_AFTER", 900, _non_negative_int, "must be seconds >= 0"
        ),
    }


METRICS_DAEMONS = ("scheduler", "eventor", "executor")


def _metrics_ports(src: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """MULTIFLEXI_<KIND>_METRICS_PORT per daemon, else MULTIFLEXI_METRICS_PORT (one unit's own
    environment, or a container running one daemon); 0 or unset: no metrics port."""
    shared = _parse(src, "MULTIFLEXI_METRICS_PORT", 0, _port, "must be a port number (0 = off)")
    return tuple(
        (
            kind,
            _parse(
                src,
                f"MULTIFLEXI_{kind.upper()}_METRICS_PORT",
                shared,
                _port,
                "must be a port number (0 = off)",
            ),
        )
        for kind in METRICS_DAEMONS
    )


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("not a port")
    return value


class _Retention(TypedDict):
    retain_jobs_days: int
    retain_failed_days: int
    retain_output_days: int
    retain_artifacts_days: int
    artifact_budget_mb: int
    housekeeping_interval: float
    prune_batch: int
    stale_workdir_hours: float


def _retention(src: Mapping[str, str]) -> _Retention:
    days, whole = "must be a whole number of days >= 0 (0 = keep forever)", _non_negative_int
    return {
        "retain_jobs_days": _parse(src, "MULTIFLEXI_RETAIN_JOBS_DAYS", 0, whole, days),
        "retain_failed_days": _parse(src, "MULTIFLEXI_RETAIN_FAILED_DAYS", 0, whole, days),
        "retain_output_days": _parse(src, "MULTIFLEXI_RETAIN_OUTPUT_DAYS", 0, whole, days),
        "retain_artifacts_days": _parse(src, "MULTIFLEXI_RETAIN_ARTIFACTS_DAYS", 0, whole, days),
        "artifact_budget_mb": _parse(
            src, "MULTIFLEXI_ARTIFACT_BUDGET_MB", 0, whole, "must be MiB >= 0 (0 = no budget)"
        ),
        "housekeeping_interval": _parse(
            src, "MULTIFLEXI_HOUSEKEEPING_INTERVAL", 3600.0, _non_negative_float, "must be seconds"
        ),
        "prune_batch": _parse(
            src, "MULTIFLEXI_PRUNE_BATCH", 500, _positive_int, "must be a positive integer"
        ),
        "stale_workdir_hours": _parse(
            src, "MULTIFLEXI_STALE_WORKDIR_HOURS", 24.0, _non_negative_float, "must be hours"
        ),
    }


def _job_user(raw: str) -> str:
    """The job user's name; "daemon" means jobs run as the daemon's own user (tests, dev)."""
    name = raw.strip() or "multiflexi-job"
    return "" if name == "daemon" else name


def _env_allow(raw: str) -> frozenset[str]:
    try:
        return parse_allow(raw)
    except EnvNameError as exc:
        raise ConfigError(str(exc)) from None


# A key may come from a file instead of the environment: NAME_FILE, or systemd's
# LoadCredential= (a file named like the key, lower case, in $CREDENTIALS_DIRECTORY).
def key_value(src: Mapping[str, str], name: str) -> str:
    """The key's value: NAME, else the file NAME_FILE, else $CREDENTIALS_DIRECTORY/name."""
    if src.get(name):
        return src[name]
    path = src.get(f"{name}_FILE", "").strip()
    if not path and src.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(src["CREDENTIALS_DIRECTORY"]) / name.lower()
        path = str(candidate) if candidate.is_file() else ""
    if not path:
        return ""
    try:
        if Path(path).stat().st_mode & 0o077:
            raise ConfigError(f"{name}_FILE: {path} is readable by others; chmod 600 it")
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror or exc}") from None
