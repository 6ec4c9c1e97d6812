"""Where a container engine is (settings, usual sockets); one client per address; a cached ping.

Docker is found through the standard DOCKER_HOST (with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for
tcp), Podman through MULTIFLEXI_PODMAN_HOST or CONTAINER_HOST (a unix socket of
`podman system service`); both fall back to the engine's usual system socket when it exists.
Settings come from the process environment and the env files (config.read_sources), read
again on every look-up so a changed file needs no restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from multiflexi_web.config import read_sources
from multiflexi_web.errors import first_line

if TYPE_CHECKING:  # the SDK is imported on first use: a native-only executor never loads it
    import docker

PING_TIMEOUT = 1.0  # seconds: a save in the portal must not hang on an absent engine
PING_TTL = 5.0  # seconds a ping's answer is reused
API_TIMEOUT = 60  # seconds for one ordinary API call (pulls get longer: see PULL_TIMEOUT)
PULL_TIMEOUT = 900
POOL_SIZE = 64  # connections per engine: every running job holds one for its output


@dataclass  # not frozen: tests point the usual sockets elsewhere
class EngineKind:
    name: str  # the executor module's name
    title: str
    keys: tuple[str, ...]  # settings naming the address, first found wins
    sockets: tuple[str, ...]  # usual system sockets, used when no setting is given
    unix_only: bool = False  # Podman's service: a local socket (ssh:// is podman-remote's)

    def address(self) -> str | None:
        src = read_sources()
        for key in self.keys:
            if src.get(key, "").strip():
                return src[key].strip()
        return next((f"unix://{s}" for s in self.sockets if Path(s).exists()), None)

    def not_configured(self) -> str:
        return (
            f"the {self.title} engine is not configured on this host (set {' or '.join(self.keys)}"
            f"; no socket at {', '.join(self.sockets)})"
        )


DOCKER = EngineKind("docker", "Docker", ("DOCKER_HOST",), ("/var/run/docker.sock",))
PODMAN = EngineKind(
    "podman",
    "Podman",
    ("MULTIFLEXI_PODMAN_HOST", "CONTAINER_HOST"),
    ("/run/podman/podman.sock",),
    unix_only=True,
)

_lock = threading.Lock()
_clients: dict[str, docker.DockerClient] = {}
_pings: dict[str, tuple[float, str | None]] = {}


def client(kind: EngineKind, address: str) -> docker.DockerClient:
    """One client per address, shared by every job thread (its pool is sized for them)."""
    with _lock:
        found = _clients.get(address)
        if found is None:
            found = _clients[address] = _new_client(kind, address)
        return found


def _new_client(kind: EngineKind, address: str) -> docker.DockerClient:
    import docker
    from docker.errors import DockerException

    if kind is DOCKER:
        src = {k: v for k, v in read_sources().items() if k.startswith("DOCKER_")}
        src["DOCKER_HOST"] = address
        return docker.DockerClient.from_env(
            environment=src, timeout=API_TIMEOUT, max_pool_size=POOL_SIZE
        )
    if kind.unix_only and not address.startswith("unix://"):
        raise DockerException(f"{kind.keys[0]} must name a unix:// socket, got {address!r}")
    return docker.DockerClient(base_url=address, timeout=API_TIMEOUT, max_pool_size=POOL_SIZE)


def problem(kind: EngineKind) -> str | None:
    """Why the engine cannot be used from here right now (None when it answers a ping)."""
    address = kind.address()
    if address is None:
        return kind.not_configured()
    if kind.unix_only and not address.startswith("unix://"):
        return f"{' or '.join(kind.keys)} must name a unix:// socket, got {address!r}"
    now = time.monotonic()
    with _lock:
        cached = _pings.get(address)
    if cached is not None and now - cached[0] < PING_TTL:
        return cached[1]
    answer = _ping(kind, address)
    with _lock:
        _pings[address] = (time.monotonic(), answer)
    return answer


def _ping(kind: EngineKind, address: str) -> str | None:
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        c = client(kind, address)
        c.api.get(c.api._url("/_ping"), timeout=PING_TIMEOUT).raise_for_status()
    except (DockerException, RequestException, OSError) as exc:
        return f"the {kind.title} engine at {address} does not answer: {first_line(exc)}"
    return None


def forget_pings() -> None:
    """Tests: forget cached answers (an engine was started or stopped)."""
    with _lock:
        _pings.clear()
