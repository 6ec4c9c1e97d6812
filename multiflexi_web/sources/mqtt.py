"""MQTT source: a persistent QoS 1 subscription; each message is acknowledged after it is stored."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from multiflexi_web.services.events.store import decode_message
from multiflexi_web.sources.base import (
    BROKER_REACH,
    KindInfo,
    Sink,
    SourceSpec,
    keep_running,
)

if TYPE_CHECKING:
    import paho.mqtt.client as paho


class MqttDisconnected(ConnectionError):
    """The network loop reported the broker gone."""


def consume(spec: SourceSpec, sink: Sink) -> None:
    topic = spec.config["topic"]
    keep_running(sink, lambda: _session(spec, sink), (OSError,), f"mqtt {topic}")


def client_id(spec: SourceSpec) -> str:
    # Stable, so the broker keeps the session (and queues QoS 1 messages) while we are away.
    return str(spec.config.get("client_id") or f"multiflexi-{spec.id}-{socket.gethostname()}")


def _client(spec: SourceSpec, sink: Sink) -> paho.Client:
    import paho.mqtt.client as paho  # here: an eventor without an MQTT source never loads it
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id(spec),
        clean_session=False,
        manual_ack=True,
        reconnect_on_failure=False,
    )
    if spec.config.get("username"):
        client.username_pw_set(str(spec.config["username"]), spec.secret)
    client.on_connect = lambda c, _u, _f, rc, _p: _on_connect(c, rc, spec)
    client.on_message = lambda c, _u, msg: _on_message(c, msg, spec, sink)
    return client


def _on_connect(client: paho.Client, reason: Any, spec: SourceSpec) -> None:
    # Subscribing again on every connect is harmless and covers a session the broker dropped.
    if not reason.is_failure:
        client.subscribe(str(spec.config["topic"]), int(spec.config.get("qos", 1)))


def _on_message(client: paho.Client, msg: Any, spec: SourceSpec, sink: Sink) -> None:
    item = decode_message(
        msg.payload, headers={"topic": msg.topic}, id_path=spec.config.get("id_path")
    )
    sink.store(item)
    client.ack(msg.mid, msg.qos)


def _session(spec: SourceSpec, sink: Sink) -> None:
    import paho.mqtt.client as paho

    client = _client(spec, sink)
    try:
        client.connect(str(spec.config["host"]), int(spec.config.get("port", 1883)), keepalive=30)
        sink.healthy()
        while not sink.stop.is_set():
            rc = client.loop(timeout=0.5)
            if rc != paho.MQTT_ERR_SUCCESS:
                raise MqttDisconnected(f"network loop: {paho.error_string(rc)}")
    finally:
        client.disconnect()


KIND = KindInfo(
    "MQTT topic",
    required=("host", "topic"),
    defaults={"host": "127.0.0.1", "port": 1883, "qos": 1},
    consumer=consume,
    admin_only=BROKER_REACH,
)
