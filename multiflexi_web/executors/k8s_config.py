"""Kubernetes module settings (environment or the system env file) and the API client."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiflexi_web.config import ConfigError, read_sources
from multiflexi_web.executors import sdk


@dataclass(frozen=True)
class K8sSettings:
    namespace: str = "default"
    start_timeout: float = 300.0
    poll: float = 1.0
    helper_image: str | None = None
    kubeconfig: str | None = None
    copy_max_mb: float = 1024.0

    @classmethod
    def load(cls, src: Mapping[str, str] | None = None) -> K8sSettings:
        src = read_sources() if src is None else src
        return cls(
            namespace=src.get("MULTIFLEXI_K8S_NAMESPACE", "").strip() or "default",
            start_timeout=_seconds(src, "MULTIFLEXI_K8S_START_TIMEOUT", 300.0),
            poll=_seconds(src, "MULTIFLEXI_K8S_POLL", 1.0),
            helper_image=src.get("MULTIFLEXI_K8S_HELPER_IMAGE", "").strip() or None,
            kubeconfig=src.get("KUBECONFIG", "").strip() or None,
            copy_max_mb=_seconds(src, "MULTIFLEXI_K8S_COPY_MAX_MB", 1024.0, "MiB"),
        )


def _seconds(src: Mapping[str, str], key: str, default: float, unit: str = "seconds") -> float:
    raw = src.get(key, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{key}: expected a positive number of {unit}, got {raw!r}")
    return value


def _kubeconfig(cfg: K8sSettings) -> str:
    return cfg.kubeconfig or str(Path("~/.kube/config").expanduser())


def _has_kubeconfig(path: str) -> bool:
    return any(Path(p).is_file() for p in path.split(os.pathsep) if p)


def not_configured(cfg: K8sSettings) -> str | None:
    """Why this host has no cluster to talk to (None: a kubeconfig or the in-cluster account);
    without importing the client, which a host that never runs Pods need not load."""
    path = _kubeconfig(cfg)
    if _has_kubeconfig(path) or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    return f"KUBECONFIG: no kubeconfig at {path} and not inside a cluster"


def api_client(cfg: K8sSettings) -> Any:
    """A client from KUBECONFIG (or ~/.kube/config), else the in-cluster service account."""
    if (problem := not_configured(cfg)) is not None:
        raise ConfigError(problem)
    sdk.load(sdk.KUBERNETES)
    from kubernetes import client, config

    conf = client.Configuration()
    path = _kubeconfig(cfg)
    try:
        if _has_kubeconfig(path):
            config.load_kube_config(config_file=path, client_configuration=conf)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
    except config.ConfigException as exc:
        raise ConfigError(f"KUBECONFIG: {path}: {exc}") from exc
    return client.ApiClient(conf)
