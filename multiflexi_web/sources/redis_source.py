"""Redis source: a list (BLMOVE into a processing list) or a stream (consumer group, XACK)."""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from multiflexi_web.services.events.store import Incoming, decode_message
from multiflexi_web.sources.base import (
    BROKER_REACH,
    KindInfo,
    Sink,
    SourceSpec,
    keep_running,
    taken,
)

if TYPE_CHECKING:
    import redis

BLOCK_SECONDS = 1
BATCH = 50


def _client(spec: SourceSpec) -> redis.Redis:
    import redis  # here: an eventor without a Redis source never loads the client

    # Bytes in and out (decode_responses off): payloads are decoded as JSON by us.
    return redis.Redis.from_url(
        str(spec.config["url"]),
        password=spec.secret or None,
        socket_timeout=BLOCK_SECONDS + 5,
        socket_connect_timeout=5,
    )


def _consumer_name(spec: SourceSpec) -> str:
    # Stable across restarts on one host, so a restarted eventor finds what it had in flight.
    return str(spec.config.get("consumer") or f"{socket.gethostname()}-{spec.id}")


def consume(spec: SourceSpec, sink: Sink) -> None:
    import redis

    key = spec.config["key"]
    keep_running(sink, lambda: _session(spec, sink), (redis.RedisError, OSError), f"redis {key}")


def _session(spec: SourceSpec, sink: Sink) -> None:
    client = _client(spec)
    try:
        client.ping()
        sink.healthy()
        if spec.config.get("mode") == "stream":
            _consume_stream(client, spec, sink)
        else:
            _consume_list(client, spec, sink)
    finally:
        client.close()


def _consume_list(client: redis.Redis, spec: SourceSpec, sink: Sink) -> None:
    key = str(spec.config["key"])
    processing = f"{key}:processing:{_consumer_name(spec)}"
    # Messages a previous run moved but did not finish come first, oldest first.
    left: Any = client.lrange(processing, 0, -1)
    for raw in reversed(left):
        _store_list_item(client, spec, sink, processing, raw)
    while not sink.stop.is_set():
        raw = client.blmove(key, processing, BLOCK_SECONDS, "RIGHT", "LEFT")
        if raw is not None:
            _store_list_item(client, spec, sink, processing, raw)


def _store_list_item(
    client: redis.Redis, spec: SourceSpec, sink: Sink, processing: str, raw: Any
) -> None:
    taken(sink.store(decode_message(bytes(raw), id_path=spec.config.get("id_path"))))
    # Only now: a crash before this line leaves the message in the processing list for next time.
    client.lrem(processing, 1, raw)


def _consume_stream(client: redis.Redis, spec: SourceSpec, sink: Sink) -> None:
    import redis

    key, group = str(spec.config["key"]), str(spec.config.get("group") or "multiflexi")
    consumer = _consumer_name(spec)
    try:
        client.xgroup_create(key, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    start = "0"  # first our own pending entries (delivered, never acknowledged), then new ones
    while not sink.stop.is_set():
        block = int(BLOCK_SECONDS * 1000) if start == ">" else None
        reply: Any = client.xreadgroup(group, consumer, {key: start}, count=BATCH, block=block)
        entries = reply[0][1] if reply else []
        if start == "0" and not entries:
            start = ">"
        for entry_id, fields in entries:
            _store_stream_entry(spec, sink, entry_id, fields)
            client.xack(key, group, entry_id)


def _store_stream_entry(
    spec: SourceSpec, sink: Sink, entry_id: bytes, fields: dict[bytes, bytes]
) -> None:
    body = fields.get(b"payload", fields.get(b"data"))
    if body is None:
        # Any bytes may be a field: the sink's checks turn a NUL into a failed event, not a crash.
        text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
        item = Incoming(payload=text, delivery_id=entry_id.decode())
    else:
        item = decode_message(body, id_path=spec.config.get("id_path"))
        if item.delivery_id is None:
            item = replace(item, delivery_id=entry_id.decode())
    taken(sink.store(item))


KIND = KindInfo(
    "Redis list or stream",
    required=("url", "key"),
    defaults={"url": "redis://127.0.0.1:6379/0", "mode": "list", "group": "multiflexi"},
    consumer=consume,
    admin_only=BROKER_REACH,
)
