"""Finding the real services a test needs; skip where absent, fail in CI."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE = os.environ.get("MULTIFLEXI_TEST_REQUIRE_SERVICES") == "1"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def need(available: bool, what: str) -> None:
    """Skip (or fail, when services are required) a test whose service is missing."""
    if available:
        return
    if REQUIRE:
        pytest.fail(f"{what} is required (MULTIFLEXI_TEST_REQUIRE_SERVICES=1) but not reachable")
    pytest.skip(f"{what} is not reachable on this machine")


def need_port(host: str, port: int, what: str) -> None:
    need(port_open(host, port), f"{what} at {host}:{port}")
