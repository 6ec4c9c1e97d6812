"""A PostgreSQL of the test's own, for outages: the chaos suite's cluster (bench/chaos/infra.py).

Never the shared server on 5432: stop it, start it again, its database `mf` is the test's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.chaos.infra import PrivatePostgres as Cluster
from bench.chaos.infra import pg_bin
from tests.services import need


class PrivatePostgres(Cluster):
    """The cluster with one database made for the test (`url`)."""

    url = ""

    def init(self) -> None:
        super().init()
        self.url = self.create_database("mf")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    need(Path(pg_bin("initdb")).exists(), "PostgreSQL server binaries (initdb)")
    # Its own folder under /tmp: the postgres user cannot enter pytest's (root's, 0700).
    pg = PrivatePostgres(Path(tempfile.mkdtemp(prefix="mf-pg-", dir="/tmp")))
    pg.init()
    try:
        yield pg
    finally:
        pg.destroy()
