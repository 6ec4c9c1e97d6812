"""The delivery threads: calls run on at most `size` threads, and a stuck one never holds up
the process's exit (ThreadPoolExecutor's threads are joined at exit, without a bound)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from multiflexi_web.runner.delivery_threads import DeliveryThreads
from tests.executor_support import wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_calls_run_on_at_most_size_threads_started_as_needed() -> None:
    pool = DeliveryThreads(3, "t")
    assert pool._threads == []  # none started before a call needs one
    gate, seen, done = threading.Event(), set(), threading.Semaphore(0)
    lock = threading.Lock()

    def call(n: int) -> None:
        gate.wait(60)
        with lock:
            seen.add((n, threading.current_thread().name))
        done.release()

    for n in range(10):
        pool.submit(call, n)
    assert len(pool._threads) == 3
    gate.set()
    for _ in range(10):
        assert done.acquire(timeout=60)
    assert sorted(n for n, _ in seen) == list(range(10))
    assert {name for _, name in seen} <= {"t_0", "t_1", "t_2"}
    assert pool.shutdown(60) == []


def test_an_idle_thread_takes_the_next_call_rather_than_a_new_one() -> None:
    pool = DeliveryThreads(4, "t")
    for _ in range(5):
        finished = threading.Event()
        pool.submit(finished.set)
        assert finished.wait(60)
        # the thread counts itself idle just after the call
        wait_for(lambda: pool.idle() == 1, 60, "the thread idle again", every=0.001)
    assert len(pool._threads) == 1
    assert pool.shutdown(60) == []


def test_the_thread_idle_last_takes_the_next_call() -> None:
    """Three threads end their calls one after the other: the next call goes to the one
    that ended last (its connection to the peer is the freshest, its memory the warmest)."""
    pool = DeliveryThreads(3, "t")
    gates = [threading.Event() for _ in range(3)]
    for gate in gates:
        pool.submit(gate.wait, 60)
    for n, gate in enumerate(gates, start=1):
        gate.set()
        wait_for(lambda n=n: pool.idle() == n, 60, "the thread idle", every=0.001)
    names: list[str] = []
    done = threading.Event()
    pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(60)
    assert names == [f"t_{len(gates) - 1}"]
    assert pool.shutdown(60) == []


def test_a_failing_call_keeps_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    pool = DeliveryThreads(1, "t")
    pool.submit(lambda: 1 / 0)
    after = threading.Event()
    pool.submit(after.set)
    assert after.wait(60)
    assert "action=delivery_thread_failed" in caplog.text
    assert pool.shutdown(60) == []
    with pytest.raises(RuntimeError, match="t: submit after shutdown"):
        pool.submit(after.set)


def test_a_stuck_call_is_abandoned_and_the_process_still_exits() -> None:
    """With ThreadPoolExecutor the child below never exits (its threads are joined at exit):
    the subprocess times out."""
    script = (
        "import threading, sys\n"
        "from multiflexi_web.runner.delivery_threads import DeliveryThreads\n"
        "pool = DeliveryThreads(2, 'action')\n"
        "started = threading.Event()\n"
        "def stuck():\n"
        "    started.set()\n"
        "    threading.Event().wait()\n"
        "pool.submit(stuck)\n"
        "started.wait(60)\n"
        "print(pool.shutdown(0.05))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "['action_0']"
