"""First imports of an engine's SDK, one thread at a time.

The Kubernetes and Azure SDKs are imported where a job or a sweep first needs them (an
executor that never runs such a job never loads them). Two threads importing the same package
for the first time (a job's run and the engine watch's sweep) can meet a submodule the other
is still initialising, and one of them fails with "cannot import name ... from partially
initialized module ... (most likely due to a circular import)": under load an Azure job failed
so, and the engine watch's pass with it. Each module calls load() with its SDK's modules before
any of its lazy imports; the first call imports them all under one lock, later ones find them
done without taking it.
"""

from __future__ import annotations

import importlib
import threading

_LOCK = threading.Lock()
_DONE: set[str] = set()

# What each SDK's code paths here import, directly or lazily inside the SDK itself (azure-core
# imports its transport and REST helpers at the first request, not at import). A private
# module ("._") an SDK version no longer has is skipped: it only made the first use safer.
AZURE = (
    "requests",
    "azure.core.exceptions",
    "azure.core.credentials",
    "azure.core.rest",
    "azure.core.pipeline.policies",
    "azure.core.pipeline.transport",
    "azure.core.pipeline.transport._requests_basic",
    "azure.core.utils._pipeline_transport_rest_shared",
    "azure.mgmt.containerinstance",
    "azure.mgmt.containerinstance.models",
)
KUBERNETES = (
    "urllib3.exceptions",
    "kubernetes.client",
    "kubernetes.client.exceptions",
    "kubernetes.config",
    "kubernetes.stream",
)


def load(modules: tuple[str, ...]) -> None:
    """Import `modules` unless done already; only one thread imports at a time."""
    if _DONE.issuperset(modules):
        return
    with _LOCK:
        for name in modules:
            if name in _DONE:
                continue
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                if "._" not in name:
                    raise
            _DONE.add(name)
