"""The explicit registry of executor modules."""

from __future__ import annotations

from multiflexi_web.executors.base import EngineModule, ExecutorModule

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


def engine_modules() -> list[EngineModule]:
    """The modules that drive an engine (may be absent here, may leave things behind)."""
    _load()
    return [m for m in _MODULES.values() if isinstance(m, EngineModule)]


def availability() -> dict[str, str | None]:
    """Every module: None when this host can run it, else why not (what a worker reports)."""
    _load()
    return {
        name: m.engine_problem() if isinstance(m, EngineModule) else None
        for name, m in sorted(_MODULES.items())
    }


def _load() -> None:
    if _MODULES:
        return
    # Each implementation is listed here, not found by import side effects.
    from multiflexi_web.executors import engine
    from multiflexi_web.executors.azure import AzureExecutor
    from multiflexi_web.executors.containers import ContainerExecutor
    from multiflexi_web.executors.kubernetes import KubernetesExecutor
    from multiflexi_web.executors.native import NativeExecutor

    register(NativeExecutor())
    register(ContainerExecutor(engine.DOCKER))
    register(ContainerExecutor(engine.PODMAN))
    register(KubernetesExecutor())
    register(AzureExecutor())
