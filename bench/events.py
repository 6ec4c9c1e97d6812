"""Event benchmark: webhook requests/s accepted by the portal, event-to-job latency per source kind.

    .venv/bin/python bench/events.py --db sqlite
    .venv/bin/python bench/events.py --db postgres --requests 5000 --concurrency 16

Starts gunicorn (`app:app`, 2 workers) on a loopback port and a real `multiflexi-eventor` against
a temporary database, then (1) fires --requests webhook POSTs from --concurrency client threads
and counts the 202 answers per second, and (2) sends --samples messages one by one through each
source kind (webhook, directory, redis list, redis stream, amqp, mqtt, changes-db) and measures
the time from sending to the job row's creation. Prints JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pika
import redis
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import scratch_database

from multiflexi_web import create_app
from multiflexi_web.config import PROJECT_ROOT, Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    Application,
    Base,
    Company,
    Event,
    EventSource,
    Job,
    RunTemplate,
)
from multiflexi_web.security.secrets import generate_key
from multiflexi_web.services.events.catalog import RuleSpec, create_rule, create_source

BIN = Path(sys.executable).parent
KEY = generate_key()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_env(url: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "MULTIFLEXI_"))}
    env.update(
        DATABASE_URL=url,
        ENCRYPTION_MASTER_KEY=KEY,
        SECRET_KEY="bench",  # noqa: S106 - a throwaway bench key
        MULTIFLEXI_ENV_FILE=str(folder / "none.env"),
        MULTIFLEXI_LOCAL_ENV=str(folder / "none"),
        MULTIFLEXI_LOG_LEVEL="WARNING",
        MULTIFLEXI_STOP_GRACE="5",
    )
    return env


class Fixture:
    """The sources (one per kind), one rule each, and the names they listen on."""

    def __init__(self, url: str, folder: Path) -> None:
        self.folder = folder
        self.tag = uuid.uuid4().hex[:8]
        self.inbox = folder / "inbox"
        self.inbox.mkdir()
        self.changes_url = f"sqlite:///{folder / 'acceptor.db'}"
        with sqlite3.connect(folder / "acceptor.db") as conn:
            conn.execute(
                "CREATE TABLE changes_cache (inversion INTEGER PRIMARY KEY AUTOINCREMENT,"
                " evidence TEXT, operation TEXT, recordid INTEGER, context TEXT)"
            )
        settings = Settings(
            database_url=url,
            secret_key="bench",  # noqa: S106 - a throwaway bench key
            encryption_master_key=KEY,
            tmp_dir=str(folder / "tmp"),
            artifact_dir=str(folder / "art"),
        )
        self.app = create_app({"TESTING": True}, settings=settings)
        with self.app.app_context():
            Base.metadata.create_all(db.engine)
            self.rt_id = self._template()
            self.sources = {
                kind: self._source(kind, config) for kind, config in self._configs().items()
            }
            db.session.commit()
            self.token = db.session.get_one(EventSource, self.sources["webhook"]).token

    def _configs(self) -> dict[str, dict[str, Any]]:
        t = self.tag
        return {
            "webhook": {},
            "directory": {"path": str(self.inbox), "settle_seconds": 0.3},
            "redis-list": {
                "url": "redis://127.0.0.1:6379/0",
                "key": f"bench-{t}-l",
                "mode": "list",
            },
            "redis-stream": {
                "url": "redis://127.0.0.1:6379/0",
                "key": f"bench-{t}-s",
                "mode": "stream",
            },
            "amqp": {"url": "amqp://guest:guest@127.0.0.1:5672/%2F", "queue": f"bench-{t}"},
            "mqtt": {"host": "127.0.0.1", "topic": f"bench/{t}", "client_id": f"bench-{t}"},
            "changes-db": {"url": self.changes_url, "poll_interval": 1},
        }

    def _template(self) -> int:
        company = Company(name="Bench", slug="bench")
        app = Application(uuid=str(uuid.uuid4()), name="bench", executable="/bin/true")
        db.session.add_all([company, app])
        db.session.flush()
        rt = RunTemplate(company_id=company.id, application_id=app.id, name="on-event")
        db.session.add(rt)
        db.session.flush()
        return rt.id

    def _source(self, name: str, config: dict[str, Any]) -> int:
        kind = name.split("-")[0] if name.startswith("redis") else name
        source = create_source(name, kind, config)
        create_rule(source, RuleSpec(self.rt_id, env_mapping={"SENT": "$.sent"}))
        return source.id

    def latencies(self, source: str) -> list[float]:
        """Seconds from each message's `sent` stamp to its job's creation."""
        with self.app.app_context():
            rows = db.session.execute(
                select(Event.payload, Job.created_at)
                .join(Job, Job.event_id == Event.id)
                .where(Event.source_id == self.sources[source])
            ).all()
        timed = [(p, c) for p, c in rows if p and ("sent" in p or "mtime" in p)]
        return [created.timestamp() - _sent(payload) for payload, created in timed]

    def jobs(self) -> int:
        with self.app.app_context():
            return db.session.scalar(select(func.count(Job.id))) or 0


def _sent(payload: dict[str, Any]) -> float:
    """The send time: the stamp in the message, or (a file) its modification time."""
    if "sent" in payload:
        return float(payload["sent"])
    return datetime.fromisoformat(payload["mtime"]).timestamp()


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=fh, stderr=fh)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz")


def post(port: int, token: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", f"/webhook/{token}", body, {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def webhook_rate(port: int, token: str, requests: int, concurrency: int) -> dict[str, Any]:
    body = json.dumps({"bench": True, "data": "x" * 200}).encode()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(lambda _: post(port, token, body), range(requests)))
    seconds = time.perf_counter() - started
    accepted = statuses.count(202)
    return {
        "requests": requests,
        "accepted": accepted,
        "seconds": round(seconds, 2),
        "accepted_per_s": round(accepted / seconds, 1),
    }


def senders(fx: Fixture, port: int) -> dict[str, Callable[[bytes], None]]:
    r = redis.Redis()
    amqp = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = amqp.channel()
    channel.queue_declare(f"bench-{fx.tag}", durable=True)
    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{fx.tag}")
    mqtt.connect("127.0.0.1")
    mqtt.loop_start()
    counter = iter(range(10**9))

    def to_file(body: bytes) -> None:
        tmp = fx.inbox / f".{next(counter)}.tmp"
        tmp.write_bytes(body)
        tmp.rename(fx.inbox / f"{next(counter)}.json")  # complete at once: a rename

    def to_changes(body: bytes) -> None:
        with sqlite3.connect(fx.folder / "acceptor.db") as conn:
            conn.execute(
                "INSERT INTO changes_cache (evidence, operation, recordid, context)"
                " VALUES ('banka', 'create', 1, ?)",
                (body.decode(),),
            )

    return {
        "webhook": lambda b: post(port, fx.token or "", b) and None,
        "directory": to_file,
        "redis-list": lambda b: r.lpush(f"bench-{fx.tag}-l", b) and None,
        "redis-stream": lambda b: r.xadd(f"bench-{fx.tag}-s", {"payload": b}) and None,
        "amqp": lambda b: channel.basic_publish("", f"bench-{fx.tag}", b),
        "mqtt": lambda b: mqtt.publish(f"bench/{fx.tag}", b, qos=1).wait_for_publish(5),
        "changes-db": to_changes,
    }


def measure_latency(fx: Fixture, port: int, samples: int, gap: float) -> dict[str, Any]:
    send = senders(fx, port)
    for fn in send.values():
        for _ in range(samples):
            fn(json.dumps({"sent": time.time()}).encode())
            time.sleep(gap)
    deadline = time.monotonic() + 60
    out: dict[str, Any] = {}
    for name in send:
        while len(fx.latencies(name)) < samples and time.monotonic() < deadline:
            time.sleep(0.2)
        lat = sorted(fx.latencies(name))
        out[name] = summary(lat, samples)
    redis.Redis().delete(f"bench-{fx.tag}-l", f"bench-{fx.tag}-s")
    return out


def summary(lat: list[float], expected: int) -> dict[str, Any]:
    if not lat:
        return {"jobs": 0, "expected": expected}
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    return {
        "jobs": len(lat),
        "expected": expected,
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--samples", type=int, default=50, help="latency messages per source kind")
    p.add_argument("--gap", type=float, default=0.05, help="seconds between latency messages")
    args = p.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="mf-bench-events-") as tmp,
        scratch_database(args.db, "mf_bench_events") as url,
    ):
        folder = Path(tmp)
        fx = Fixture(url, folder)
        env, port = child_env(url, folder), free_port()
        web = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "app:app"]
        with process(web, env, folder / "web.log"):
            wait_http(port)
            rate = webhook_rate(port, fx.token or "", args.requests, args.concurrency)
            with process([str(BIN / "multiflexi-eventor")], env, folder / "ev.log"):
                backlog_started = time.perf_counter()
                while fx.jobs() < rate["accepted"] and time.perf_counter() - backlog_started < 300:
                    time.sleep(0.5)
                backlog = {
                    "events": rate["accepted"],
                    "jobs": fx.jobs(),
                    "seconds": round(time.perf_counter() - backlog_started, 2),
                }
                time.sleep(2.0)  # consumers connect
                latency = measure_latency(fx, port, args.samples, args.gap)
        result = {
            "db": args.db,
            "webhook_accepted": rate,
            "backlog_to_jobs": backlog,
            "event_to_job_latency": latency,
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
