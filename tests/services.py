"""Finding the real services a test needs; skip where absent, fail in CI."""

from __future__ import annotations

import os
import socket
from pathlib import Path

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


def upstream_files() -> Path:
    """Real MultiFlexi files: ../shared/multiflexi beside the checkout, else the copy we ship."""
    beside = Path(__file__).resolve().parent.parent.parent / "shared" / "multiflexi"
    return beside if beside.is_dir() else Path(__file__).resolve().parent / "data" / "upstream"
