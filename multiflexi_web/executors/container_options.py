"""A RunTemplate's container settings (executor_options), validated into engine arguments.

Keys: `pull` (if-missing, always, never; default if-missing), `memory` (bytes or 512m, 2g),
`cpus` (e.g. 0.5), `pids` (process limit), `network` (none or bridge; default none).
Nothing else is accepted: a tenant's options can limit a container, never widen it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PULL_POLICIES = ("if-missing", "always", "never")
NETWORKS = ("none", "bridge")
KEYS = ("pull", "memory", "cpus", "pids", "network")
_SIZE = re.compile(r"^(\d+)([bkmg]?)$")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024 * 1024  # engines refuse less


class OptionError(ValueError):
    """An executor option is wrong; the message names the key."""


@dataclass(frozen=True)
class ContainerOptions:
    pull: str = "if-missing"
    memory: int | None = None  # bytes
    cpus: float | None = None
    pids: int | None = None
    network: str = "none"

    def host_config(self) -> dict[str, Any]:
        """The limits as docker SDK `create_host_config` keyword arguments."""
        args: dict[str, Any] = {"network_mode": self.network}
        if self.memory is not None:
            args["mem_limit"] = args["memswap_limit"] = self.memory  # no swap beyond the limit
        if self.cpus is not None:
            args["nano_cpus"] = int(self.cpus * 1e9)
        if self.pids is not None:
            args["pids_limit"] = self.pids
        return args


def parse(options: Mapping[str, Any]) -> ContainerOptions:
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise OptionError(f"executor option {unknown[0]!r}: unknown (known: {', '.join(KEYS)})")
    return ContainerOptions(
        pull=_choice(options, "pull", PULL_POLICIES),
        memory=_memory(options.get("memory")),
        cpus=_cpus(options.get("cpus")),
        pids=_pids(options.get("pids")),
        network=_choice(options, "network", NETWORKS),
    )


def problem(options: Mapping[str, Any]) -> str | None:
    try:
        parse(options)
    except OptionError as exc:
        return str(exc)
    return None


def _choice(options: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = str(options.get(key) or allowed[0]).strip().lower()
    if value not in allowed:
        raise OptionError(f"executor option {key}={value!r}: must be one of {', '.join(allowed)}")
    return value


def _memory(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    m = _SIZE.match(str(raw).strip().lower())
    if not m:
        raise OptionError(f"executor option memory={raw!r}: must be bytes or a size like 512m, 2g")
    size = int(m.group(1)) * _UNITS[m.group(2)]
    if size < MIN_MEMORY:
        raise OptionError(f"executor option memory={raw!r}: must be at least 6m")
    return size


def _cpus(raw: Any) -> float | None:
    if raw in (None, ""):
        return None
    try:
        cpus = float(raw)
    except (TypeError, ValueError):
        cpus = -1.0
    if not 0.01 <= cpus <= 1024:
        raise OptionError(f"executor option cpus={raw!r}: must be a number of CPUs like 0.5 or 2")
    return cpus


def _pids(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    if not str(raw).strip().isdigit() or int(raw) < 1:
        raise OptionError(f"executor option pids={raw!r}: must be a positive whole number")
    return int(raw)
