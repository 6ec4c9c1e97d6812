"""celery: Redis broker, the result (output and times) in its Redis result backend."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.peer_tasks import run_job

app = Celery("bench", broker=os.environ["BENCH_STORE"], backend=os.environ["BENCH_STORE"])
app.conf.update(
    task_default_queue=os.environ.get("BENCH_NAME", "bench"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.job")
def job() -> dict[str, Any]:
    return run_job()
