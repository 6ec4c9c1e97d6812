"""huey: the job as a task whose result (output and times) huey stores in its own storage."""

from __future__ import annotations

import os
from typing import Any

from huey import PostgresHuey, RedisHuey, SqliteHuey

from bench.peer_tasks import run_job

STORE = os.environ["BENCH_STORE"]
NAME = os.environ.get("BENCH_NAME", "bench")

if STORE.startswith("redis://"):
    huey = RedisHuey(NAME, url=STORE)
elif STORE.startswith("sqlite:///"):
    huey = SqliteHuey(NAME, filename=STORE.removeprefix("sqlite:///"))
else:
    huey = PostgresHuey(NAME, dsn=STORE)


@huey.task()
def job() -> dict[str, Any]:
    return run_job()
