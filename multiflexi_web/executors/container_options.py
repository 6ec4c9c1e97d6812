"""A RunTemplate's container settings (executor_options), validated into engine arguments.

Keys: `pull` (if-missing, always, never; default if-missing), `memory` (bytes or 512m, 2g),
`cpus` (e.g. 0.5), `pids` (process limit), `network` (none or bridge; default none).
Nothing else is accepted: a tenant's options can limit a container, never widen it. The
administrator's MULTIFLEXI_CONTAINER_PIDS and MULTIFLEXI_CONTAINER_MEMORY apply to every
container (a fork bomb or memory hog must not take the executor's host down with it): an option
above them is refused at save and, if the ceiling was lowered since, lowered to it at run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multiflexi_web.config import SIZE_UNITS, container_limits, read_sources, size_bytes

PULL_POLICIES = ("if-missing", "always", "never")
NETWORKS = ("none", "bridge")
KEYS = ("pull", "memory", "cpus", "pids", "network")
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


@dataclass(frozen=True)
class Ceilings:
    """The administrator's limits for every container; 0: none."""

    pids: int
    memory: int  # bytes

    @classmethod
    def configured(cls) -> Ceilings:
        """Read per call, as the engine's address is: a changed env file needs no restart.
        A wrong value raises config.ConfigError naming the setting."""
        found = container_limits(read_sources())
        return cls(found["container_pids"], found["container_memory"])


def parse(options: Mapping[str, Any], ceilings: Ceilings | None = None) -> ContainerOptions:
    """The options with the ceilings applied: a limit left out, or above a ceiling lowered
    after the template was saved, is the ceiling."""
    top = Ceilings.configured() if ceilings is None else ceilings
    unknown = sorted(set(options) - set(KEYS))
    if unknown:
        raise OptionError(f"executor option {unknown[0]!r}: unknown (known: {', '.join(KEYS)})")
    return ContainerOptions(
        pull=_choice(options, "pull", PULL_POLICIES),
        memory=_lowest(_memory(options.get("memory")), top.memory),
        cpus=_cpus(options.get("cpus")),
        pids=_lowest(_pids(options.get("pids")), top.pids),
        network=_choice(options, "network", NETWORKS),
    )


def problem(options: Mapping[str, Any], ceilings: Ceilings | None = None) -> str | None:
    """Why a RunTemplate's options are refused, or None."""
    try:
        top = Ceilings.configured() if ceilings is None else ceilings
        parse(options, top)
        _within(_pids(options.get("pids")), top.pids, "pids", "MULTIFLEXI_CONTAINER_PIDS")
        _within(_memory(options.get("memory")), top.memory, "memory", "MULTIFLEXI_CONTAINER_MEMORY")
    except (OptionError, ValueError) as exc:  # ValueError: config.ConfigError, a wrong ceiling
        return str(exc)
    return None


def _lowest(asked: int | None, ceiling: int) -> int | None:
    if not ceiling:
        return asked
    return ceiling if asked is None else min(asked, ceiling)


def _within(asked: int | None, ceiling: int, key: str, setting: str) -> None:
    if asked is not None and ceiling and asked > ceiling:
        shown = _size(ceiling) if key == "memory" else str(ceiling)
        raise OptionError(
            f"executor option {key}={asked if key == 'pids' else _size(asked)}: above this "
            f"platform's ceiling of {shown} ({setting}); a template may only lower it"
        )


def _size(size: int) -> str:
    for unit in ("g", "m", "k"):
        if size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return str(size)


def _choice(options: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = str(options.get(key) or allowed[0]).strip().lower()
    if value not in allowed:
        raise OptionError(f"executor option {key}={value!r}: must be one of {', '.join(allowed)}")
    return value


def _memory(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        size = size_bytes(str(raw))
    except ValueError:
        raise OptionError(
            f"executor option memory={raw!r}: must be bytes or a size like 512m, 2g"
        ) from None
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
