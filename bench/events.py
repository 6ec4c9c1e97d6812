"""Event benchmark: webhook intake against a bare Flask floor, event-to-job latency per source kind.

    .venv/bin/python bench/events.py --db sqlite
    .venv/bin/python bench/events.py --db postgres --seconds 10 --rounds 2

Against a temporary database it starts two gunicorns with the same settings (2 sync workers):
the portal (`app:app`) and the floor (`bench.webhook_floor:app`, a bare Flask endpoint inserting
the body into one table). (1) wrk (C, not Python threads: the client must not be the bottleneck;
`apt-get install wrk`) drives each in turn for --seconds, --rounds times, with --threads and
--connections: signed POSTs (X-Hub-Signature-256 of a fixed body, a new X-Delivery-Id per
request, so every request is a new stored event) to the webhook, the same requests to the floor.
It prints both rates, the ratio, and the load average before each round. (2) A real
`multiflexi-eventor` turns the stored webhook events into jobs (backlog), then --samples messages
go one by one through each source kind (webhook, directory, redis list, redis stream, amqp, mqtt,
changes-db) and the time from sending to the job row's creation is measured. Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import shutil
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
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pika
import redis
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from webhook_floor import make_engine, metadata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import scratch_database

from multiflexi_web import create_app
from multiflexi_web.config import PROJECT_ROOT, Settings
from multiflexi_web.extensions import db
from multiflexi_web.models import (
    AppField,
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
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway bench secret
WRK_SCRIPT = Path(__file__).resolve().parent / "webhook.lua"
GUNICORN = ["--workers", "2", "--worker-class", "sync"]  # the same for the portal and the floor


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
        # The rules map $.sent to SENT: a declared field of the app.
        db.session.add(AppField(application_id=app.id, keyname="SENT"))
        rt = RunTemplate(company_id=company.id, application_id=app.id, name="on-event")
        db.session.add(rt)
        db.session.flush()
        return rt.id

    def _source(self, name: str, config: dict[str, Any]) -> int:
        kind = name.split("-")[0] if name.startswith("redis") else name
        source = create_source(name, kind, config, secret=SECRET if kind == "webhook" else None)
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

    def webhook_events(self) -> int:
        with self.app.app_context():
            count = select(func.count(Event.id)).where(Event.source_id == self.sources["webhook"])
            return db.session.scalar(count) or 0


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


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def post(port: int, token: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature(body)}
    conn.request("POST", f"/webhook/{token}", body, headers)
    status = conn.getresponse().status
    conn.close()
    return status


def wrk(port: int, path: str, body: bytes, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    """One wrk run; the requests answered 2xx per second and wrk's own summary."""
    cmd = [
        "wrk",
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={args.seconds}s",
        "--script",
        str(WRK_SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        path,
        body.decode(),
        signature(body),
        tag,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    summary: dict[str, Any] = json.loads(line.removeprefix("WRK "))
    ok = summary["requests"] - summary["non2xx"]
    summary["ok_per_s"] = round(ok / summary["seconds"], 1)
    return summary


def intake_rates(
    port: int, floor_port: int, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    """wrk against the webhook and the floor in turn, --rounds times: both rates, the ratio."""
    body = json.dumps({"bench": True, "data": "x" * 200}).encode()
    rounds = []
    for n in range(args.rounds):
        load = os.getloadavg()[0]
        ours = wrk(port, f"/webhook/{token}", body, args, f"r{n}")
        bare = wrk(floor_port, "/ingest", body, args, f"r{n}")
        rounds.append(
            {
                "load_1min_before": round(load, 2),
                "webhook": ours,
                "floor": bare,
                "ratio": round(ours["ok_per_s"] / bare["ok_per_s"], 2),
            }
        )
    return {
        "gunicorn": " ".join(GUNICORN),
        "wrk": f"{args.threads} threads, {args.connections} connections, {args.seconds} s",
        "rounds": rounds,
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
    p.add_argument("--seconds", type=int, default=10, help="wrk run length per endpoint")
    p.add_argument("--rounds", type=int, default=2, help="webhook/floor pairs of wrk runs")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=8, help="wrk connections")
    p.add_argument("--intake-only", action="store_true", help="skip the eventor and latencies")
    p.add_argument("--samples", type=int, default=50, help="latency messages per source kind")
    p.add_argument("--gap", type=float, default=0.05, help="seconds between latency messages")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/events.py needs wrk: apt-get install wrk")
    with (
        tempfile.TemporaryDirectory(prefix="mf-bench-events-") as tmp,
        scratch_database(args.db, "mf_bench_events") as url,
    ):
        folder = Path(tmp)
        fx = Fixture(url, folder)
        metadata.create_all(make_engine(url))
        env, port, floor_port = child_env(url, folder), free_port(), free_port()
        web = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *GUNICORN, "app:app"]
        bare = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{floor_port}", *GUNICORN]
        with (
            process(web, env, folder / "web.log"),
            process([*bare, "bench.webhook_floor:app"], env, folder / "floor.log"),
        ):
            wait_http(port)
            wait_http(floor_port)
            rate = intake_rates(port, floor_port, fx.token or "", args)
            stored = fx.webhook_events()
            if args.intake_only:
                print(json.dumps({"db": args.db, "webhook_vs_floor": rate, "stored": stored}))
                return
            with process([str(BIN / "multiflexi-eventor")], env, folder / "ev.log"):
                backlog_started = time.perf_counter()
                while fx.jobs() < stored and time.perf_counter() - backlog_started < 300:
                    time.sleep(0.5)
                backlog = {
                    "events": stored,
                    "jobs": fx.jobs(),
                    "seconds": round(time.perf_counter() - backlog_started, 2),
                }
                time.sleep(2.0)  # consumers connect
                latency = measure_latency(fx, port, args.samples, args.gap)
        answered = sum(r["webhook"]["requests"] - r["webhook"]["non2xx"] for r in rate["rounds"])
        result = {
            "db": args.db,
            "webhook_vs_floor": rate,
            # Every 202 is one stored event (a new delivery id each): the two must agree.
            "webhook_202_vs_events_stored": [answered, stored],
            "backlog_to_jobs": backlog,
            "event_to_job_latency": latency,
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
