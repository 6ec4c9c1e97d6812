"""The explicit registry of executor modules."""

from __future__ import annotations

from multiflexi_web.executors.base import ExecutorModule

_MODULES: dict[str, ExecutorModule] = {}


def register(module: ExecutorModule) -> None:
    _MODULES[module.name] = module


def get(name: str) -> ExecutorModule:
    _load()
    try:
        return _MODULES[name]
    except KeyError:
        raise KeyError(f"unknown executor module (known: {', '.join(sorted(_MODULES))})") from None


def names() -> list[str]:
    _load()
    return sorted(_MODULES)


def _load() -> None:
    if _MODULES:
        return
    # Each implementation is listed here, not found by import side effects.
    from multiflexi_web.executors.azure import AzureExecutor
    from multiflexi_web.executors.kubernetes import KubernetesExecutor
    from multiflexi_web.executors.native import NativeExecutor

    register(NativeExecutor())
    register(KubernetesExecutor())
    register(AzureExecutor())
