"""The memory ceiling reached while jobs run: they finish, nothing new starts, exit code 3."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from flask import Flask

from daemons.runtime import Runtime
from multiflexi_web.extensions import db
from multiflexi_web.runner.pool import MEMORY_EXIT, Executor
from tests.executor_support import job, output_of, schedule, shell_rt, wait_for


def test_running_jobs_finish_and_nothing_new_starts_past_the_ceiling(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = schedule(shell_rt("sleep 1; echo done", overlap_policy="allow"), 2)
    waiting = schedule(shell_rt("echo never", overlap_policy="allow"), 3)
    db.session.commit()
    rt = Runtime("executor", app)
    rt.settings = replace(rt.settings, max_parallel=2)  # whatever the machine's CPU count
    rt.register()
    over = threading.Event()
    # The real check reads the process's RSS; here the test decides when the ceiling is passed.
    monkeypatch.setattr(rt, "over_memory_limit", over.is_set)
    ex = Executor(rt)
    code: list[int] = []
    serving = threading.Thread(target=lambda: code.append(ex.serve()))
    serving.start()
    try:
        wait_for(lambda: _statuses(running) == ["running", "running"], 10, "both jobs running")
        over.set()
        serving.join(20)
        assert not serving.is_alive()
    finally:
        rt.stop.set()
        serving.join(5)
        rt.unregister()
    assert code == [MEMORY_EXIT]
    assert _statuses(running) == ["succeeded", "succeeded"]  # not killed: they ran to the end
    assert all(output_of(i) == b"done\n" for i in running)
    assert _statuses(waiting) == ["scheduled"] * 3


def _statuses(ids: list[int]) -> list[str]:
    db.session.rollback()
    return [job(i).status for i in ids]
