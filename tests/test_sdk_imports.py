"""Engine SDKs are first imported one thread at a time (executors/sdk.py)."""

from __future__ import annotations

import threading
import time
from types import ModuleType

import pytest

from multiflexi_web.executors import sdk


def test_concurrent_first_uses_import_each_module_once_and_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A job's run and the engine watch's sweep used to import azure-core together, and one
    # met a half-initialised submodule ("most likely due to a circular import").
    monkeypatch.setattr(sdk, "_DONE", set())
    inside, most, imported = 0, 0, []
    guard = threading.Lock()

    def slow_import(name: str) -> ModuleType:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
            imported.append(name)
        time.sleep(0.01)  # long enough for every other thread to arrive meanwhile
        with guard:
            inside -= 1
        return ModuleType(name)

    monkeypatch.setattr(sdk.importlib, "import_module", slow_import)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def first_use() -> None:
        start.wait()
        try:
            sdk.load(("engine.client", "engine.client.exceptions", "engine.stream"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert most == 1
    assert sorted(imported) == ["engine.client", "engine.client.exceptions", "engine.stream"]


def test_a_private_module_an_sdk_lacks_is_skipped_a_public_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sdk, "_DONE", set())
    sdk.load(("json", "json._no_such_helper"))  # a later SDK version without that helper
    with pytest.raises(ModuleNotFoundError):
        sdk.load(("no_such_sdk.client",))


def test_every_listed_module_imports() -> None:
    sdk.load(sdk.AZURE)
    sdk.load(sdk.KUBERNETES)
