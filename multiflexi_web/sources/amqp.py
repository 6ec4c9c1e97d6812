"""AMQP source (RabbitMQ): consume a queue; acknowledge a message once its event is committed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiflexi_web.services.events.store import decode_message
from multiflexi_web.sources.base import (
    BROKER_REACH,
    KindInfo,
    Sink,
    SourceSpec,
    keep_running,
    taken,
)

if TYPE_CHECKING:
    import pika

IDLE_SECONDS = 0.5


def _parameters(spec: SourceSpec) -> pika.URLParameters:
    import pika  # here: an eventor without an AMQP source never loads the client

    params = pika.URLParameters(str(spec.config["url"]))
    if spec.secret:
        params.credentials = pika.PlainCredentials(params.credentials.username, spec.secret)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.socket_timeout = 5
    params.connection_attempts = 1
    return params


def consume(spec: SourceSpec, sink: Sink) -> None:
    import pika.exceptions

    queue = spec.config["queue"]
    keep_running(
        sink,
        lambda: _session(spec, sink),
        (pika.exceptions.AMQPError, OSError),
        f"amqp {queue}",
    )


def _session(spec: SourceSpec, sink: Sink) -> None:
    import pika

    conn = pika.BlockingConnection(_parameters(spec))
    try:
        channel = conn.channel()
        queue = str(spec.config["queue"])
        if spec.config.get("declare", True):
            channel.queue_declare(queue, durable=bool(spec.config.get("durable", True)))
        channel.basic_qos(prefetch_count=int(spec.config.get("prefetch", 20)))
        sink.healthy()
        _drain(channel, queue, spec, sink)
    finally:
        _close(conn)


def _drain(channel: Any, queue: str, spec: SourceSpec, sink: Sink) -> None:
    for method, props, body in channel.consume(queue, inactivity_timeout=IDLE_SECONDS):
        if sink.stop.is_set():
            break
        if method is None:
            continue
        # Headers and message_id are the sender's, unchecked: the sink's checks (NUL, depth,
        # numbers) keep a bad one as a failed event instead of a refused INSERT.
        headers = {str(k): str(v) for k, v in (props.headers or {}).items()}
        item = decode_message(
            body,
            headers=headers,
            delivery_id=props.message_id,
            id_path=spec.config.get("id_path"),
        )
        # Declined (source disabled) leaves the message unacknowledged: the broker keeps it.
        taken(sink.store(item))
        # Only now: a crash before this line makes the broker deliver the message again.
        channel.basic_ack(method.delivery_tag)


def _close(conn: Any) -> None:
    import pika.exceptions

    try:
        if conn.is_open:
            conn.close()
    except (pika.exceptions.AMQPError, OSError):
        pass  # the connection is already gone; unacknowledged messages return to the queue


KIND = KindInfo(
    "AMQP queue (RabbitMQ)",
    required=("url", "queue"),
    defaults={"url": "amqp://guest:guest@127.0.0.1:5672/%2F", "durable": True, "declare": True},
    consumer=consume,
    admin_only=BROKER_REACH,
)
