"""A broker connection dropped mid-stream (a loopback TCP proxy killed and restarted) loses nothing.

The real broker stays up for the other tests on this machine; for our consumer the proxy's death
is a real network outage: its socket is torn down and reconnecting fails until the proxy is back.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pika
import pytest
import redis
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion

from multiflexi_web.extensions import db
from multiflexi_web.services.events.catalog import create_source
from tests.services import need_port
from tests.sockets import hard_close
from tests.test_events_sources import consuming, events_of, forget_mqtt_session, wait_until

TOTAL = 40


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'multiflexi.db'}"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a broker; stop() cuts every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.connections = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._running = threading.Event()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self._running.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._running.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                upstream = socket.create_connection(self.target)
                with self._lock:
                    self.connections += 1
                    self._socks += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                hard_close(s)

    def stop(self) -> None:
        self._running.clear()
        time.sleep(0.2)  # the accept loop sees the flag and closes the listener
        with self._lock:
            for s in self._socks:
                hard_close(s)
            self._socks.clear()


def run_outage(app: Flask, source_id: int, proxy: TcpProxy, publish: Callable[[int], None]) -> None:
    """Publish TOTAL messages straight to the broker while the consumer's link goes down and up."""
    from multiflexi_web.models import EventSource

    source = db.session.get(EventSource, source_id)
    assert source is not None
    with consuming(app, source):
        wait_until(lambda: proxy.connections >= 1, 10, "consumer connected")
        time.sleep(0.5)
        publisher = threading.Thread(
            target=lambda: [publish(n) or time.sleep(0.025) for n in range(TOTAL)]
        )
        publisher.start()
        wait_until(lambda: len(events_of(source_id)) >= 5, 15, "first events")
        proxy.stop()  # outage, mid-stream
        time.sleep(1.0)
        proxy.start()
        publisher.join()
        wait_until(lambda: len(events_of(source_id)) >= TOTAL, 30, f"{TOTAL} events")
        time.sleep(0.5)  # anything redelivered after the reconnect would show up now
    events = events_of(source_id)
    assert sorted(e.payload["n"] for e in events) == list(range(TOTAL))  # none lost, none twice
    assert proxy.connections >= 2  # it really reconnected


def test_redis_stream_survives_an_outage(app: Flask) -> None:
    need_port("127.0.0.1", 6379, "Redis")
    proxy = TcpProxy(6379)
    proxy.start()
    key = f"mf-test-outage-{uuid.uuid4().hex[:8]}"
    source = create_source(
        "r", "redis", {"url": f"redis://127.0.0.1:{proxy.port}/0", "key": key, "mode": "stream"}
    )
    db.session.commit()
    client = redis.Redis()
    try:
        run_outage(
            app,
            source.id,
            proxy,
            lambda n: client.xadd(key, {"payload": b'{"n": %d}' % n}) and None,
        )
    finally:
        proxy.stop()
        client.delete(key)
        client.close()


def test_amqp_survives_an_outage(app: Flask) -> None:
    need_port("127.0.0.1", 5672, "RabbitMQ")
    proxy = TcpProxy(5672)
    proxy.start()
    queue = f"mf-test-outage-{uuid.uuid4().hex[:8]}"
    source = create_source(
        "a", "amqp", {"url": f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F", "queue": queue}
    )
    db.session.commit()
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    channel = conn.channel()
    channel.queue_declare(queue, durable=True)
    lock = threading.Lock()

    def publish(n: int) -> None:
        with lock:  # pika's connection belongs to one thread at a time
            props = pika.BasicProperties(message_id=f"m-{n}", delivery_mode=2)
            channel.basic_publish("", queue, b'{"n": %d}' % n, props)

    try:
        run_outage(app, source.id, proxy, publish)
    finally:
        proxy.stop()
        channel.queue_delete(queue)
        conn.close()


def test_mqtt_survives_an_outage(app: Flask) -> None:
    need_port("127.0.0.1", 1883, "Mosquitto")
    proxy = TcpProxy(1883)
    proxy.start()
    topic, client_id = f"mf-test/{uuid.uuid4().hex[:8]}", f"mf-test-{uuid.uuid4().hex[:8]}"
    source = create_source(
        "m",
        "mqtt",
        {
            "host": "127.0.0.1",
            "port": proxy.port,
            "topic": topic,
            "client_id": client_id,
            "id_path": "$.n",
        },
    )
    db.session.commit()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{client_id}-pub")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    try:
        run_outage(
            app,
            source.id,
            proxy,
            lambda n: pub.publish(topic, b'{"n": %d}' % n, qos=1).wait_for_publish(5),
        )
    finally:
        proxy.stop()
        pub.loop_stop()
        pub.disconnect()
        forget_mqtt_session(client_id)
