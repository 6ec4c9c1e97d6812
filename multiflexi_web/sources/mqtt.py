"""MQTT source: a shared QoS 1 subscription per source; a message is acknowledged once stored."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from multiflexi_web.services.events.store import decode_message
from multiflexi_web.sources.base import (
    BROKER_REACH,
    KindInfo,
    Sink,
    SourceConfigError,
    SourceSpec,
    keep_running,
    taken,
)

if TYPE_CHECKING:
    import paho.mqtt.client as paho

# How long the broker keeps this eventor's session (and queues its messages) after the link
# drops: a network outage shorter than this loses nothing. It is also how long the session of
# an eventor that died without saying goodbye keeps taking its turn of the shared subscription,
# and those messages are lost when it expires: the broker deals them to sessions round-robin,
# offline ones included (Mosquitto 2.0), and never hands an expired session's messages on.
SESSION_EXPIRY = 120
# At a graceful stop: how long to go on storing what the broker had already sent us.
DRAIN_QUIET, DRAIN_MAX = 0.3, 3.0


class MqttDisconnected(ConnectionError):
    """The network loop reported the broker gone."""


def consume(spec: SourceSpec, sink: Sink) -> None:
    topic, cid = spec.config["topic"], client_id(spec)
    keep_running(sink, lambda: _session(spec, sink, cid), (OSError,), f"mqtt {topic}")


def client_id(spec: SourceSpec) -> str:
    """Unique per eventor process; kept across its reconnects, so it resumes its own session.

    One id for several eventors would have the broker drop each in turn (a session takeover),
    and an id per host would leave, per host name that goes away (a container), a session that
    takes its turn of the shared subscription until it expires. A restarted eventor starts a new
    session: what arrives while no eventor of the source is subscribed is not kept; run two
    eventors so that one is always subscribed during a restart.
    """
    prefix = str(spec.config.get("client_id") or f"multiflexi-{spec.id}")
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}"


def subscription(spec: SourceSpec) -> str:
    # Shared: the broker gives each message to one member of the group, so several eventors
    # make one event of it (MQTT carries no delivery id the store could deduplicate on).
    group = str(spec.config.get("share_group") or f"multiflexi-{spec.id}")
    return f"$share/{group}/{spec.config['topic']}"


def check(config: Mapping[str, Any]) -> None:
    topic = str(config.get("topic", ""))
    if topic.startswith("$share/"):
        raise SourceConfigError("config topic: give the plain topic, the source shares it itself")
    group = str(config.get("share_group") or "")
    if any(c in group for c in "/+#"):
        raise SourceConfigError(f"config share_group {group!r}: may not contain / + or #")
    expiry = config.get("session_expiry", SESSION_EXPIRY)
    if not isinstance(expiry, int) or isinstance(expiry, bool) or not 0 <= expiry < 2**32:
        raise SourceConfigError(f"config session_expiry {expiry!r}: must be whole seconds, >= 0")


def _client(spec: SourceSpec, sink: Sink, cid: str) -> paho.Client:
    import paho.mqtt.client as paho  # here: an eventor without an MQTT source never loads it
    from paho.mqtt.enums import CallbackAPIVersion

    # MQTT 5: shared subscriptions are standard there, and a session can expire.
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=cid,
        protocol=paho.MQTTv5,
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
        client.subscribe(subscription(spec), int(spec.config.get("qos", 1)))


def _on_message(client: paho.Client, msg: Any, spec: SourceSpec, sink: Sink) -> None:
    item = decode_message(
        msg.payload, headers={"topic": msg.topic}, id_path=spec.config.get("id_path")
    )
    # Declined (source disabled) ends the session unacknowledged: the session keeps it.
    taken(sink.store(item))
    client.ack(msg.mid, msg.qos)


def _properties(packet: int, expiry: int) -> Any:
    from paho.mqtt.properties import Properties

    props = Properties(packet)  # type: ignore[no-untyped-call]  # paho leaves it untyped
    props.SessionExpiryInterval = expiry
    return props


def _session(spec: SourceSpec, sink: Sink, cid: str) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes

    client = _client(spec, sink, cid)
    expiry = int(spec.config.get("session_expiry", SESSION_EXPIRY))
    host, port = str(spec.config["host"]), int(spec.config.get("port", 1883))
    try:
        client.connect(
            host,
            port,
            keepalive=30,
            clean_start=False,
            properties=_properties(PacketTypes.CONNECT, expiry),
        )
        sink.healthy()
        while not sink.stop.is_set():
            rc = client.loop(timeout=0.5)
            if rc != paho.MQTT_ERR_SUCCESS:
                raise MqttDisconnected(f"network loop: {paho.error_string(rc)}")
        _leave(client, spec)
    finally:
        client.disconnect()


def _leave(client: paho.Client, spec: SourceSpec) -> None:
    """Stopped (not a lost link): leave the group first, so the broker deals us nothing more,
    store what it had already sent, then end the session: messages in flight to an ended
    session are lost, not handed to the other members."""
    from paho.mqtt.packettypes import PacketTypes

    arrived = [time.monotonic()]
    handle = client.on_message

    def on_message(c: paho.Client, userdata: Any, msg: Any) -> None:
        arrived[0] = time.monotonic()
        if handle is not None:
            handle(c, userdata, msg)

    client.on_message = on_message
    client.unsubscribe(subscription(spec))
    deadline = time.monotonic() + DRAIN_MAX
    while time.monotonic() < deadline and time.monotonic() - arrived[0] < DRAIN_QUIET:
        client.loop(timeout=0.1)
    client.disconnect(properties=_properties(PacketTypes.DISCONNECT, 0))


KIND = KindInfo(
    "MQTT topic",
    required=("host", "topic"),
    defaults={"host": "127.0.0.1", "port": 1883, "qos": 1, "session_expiry": SESSION_EXPIRY},
    consumer=consume,
    check=check,
    admin_only=BROKER_REACH,
)
