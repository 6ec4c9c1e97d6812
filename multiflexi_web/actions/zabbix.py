"""Zabbix: send the job's output (or a metrics file it produced) to a trapper item with the
Zabbix sender protocol."""

from __future__ import annotations

import json
import re
import socket
import struct

from multiflexi_web.actions import deadline, destinations
from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import bounded, settings
from multiflexi_web.actions.render import slug

HEADER = b"ZBXD\x01"
# A Zabbix text item holds at most 64 KiB; a larger value would be cut by the server.
MAX_VALUE = 65536
MAX_ANSWER = 65536


class ProtocolError(Exception):
    """The peer's answer is not a Zabbix response."""


class Zabbix:
    name = "Zabbix"
    description = "Send the job's output or metrics file to a Zabbix trapper item"
    fields: tuple[ConfigField, ...] = (
        ConfigField(
            "server",
            "string",
            "Zabbix server or proxy address",
            default="127.0.0.1",
            destination=True,
        ),
        ConfigField("port", "integer", "Trapper port", default="10051", destination=True),
        ConfigField("host", "string", "Zabbix host when the company has no zabbix_host"),
        ConfigField("key", "string", "Item key suffix: zabbix_action-[<key>]"),
        ConfigField("metricsfile", "string", "Artifact name whose content is sent instead"),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = settings(self.fields, ctx)
        host = ctx.zabbix_host or values.get("host")
        if not host:
            return Outcome(ok=False, error="Zabbix: no host (company zabbix_host or config host)")
        if not (values["port"].isascii() and values["port"].isdigit()):
            return Outcome(ok=False, error="Zabbix: port must be a number")
        value = item_value(ctx, values.get("metricsfile"))
        if isinstance(value, Outcome):
            return value
        item = {"host": host, "key": f"zabbix_action-[{item_key(ctx, values)}]", "value": value}
        return self.deliver(values["server"], int(values["port"]), item, ctx.timeout)

    def deliver(self, server: str, port: int, item: dict[str, str], timeout: float) -> Outcome:
        request = {"request": "sender data", "data": [item]}
        try:
            answer = exchange(server, port, json.dumps(request).encode(), timeout)
        except OSError as exc:
            # Refused, unreachable, timed out or cut short: the server may take it later.
            return Outcome(
                ok=False, error=bounded(f"Zabbix {server}:{port}: {exc}"), retryable=True
            )
        except ProtocolError as exc:
            return Outcome(ok=False, error=bounded(f"Zabbix {server}:{port}: {exc}"))
        except destinations.DestinationRefused as exc:  # configuration: never retried
            return Outcome(ok=False, error=bounded(f"Zabbix: {exc}"))
        return judge(answer)


def item_key(ctx: ActionContext, values: dict[str, str]) -> str:
    default = f"{ctx.company_slug}-{slug(ctx.app.name)}-{ctx.runtemplate_id}-data"
    return values.get("key") or default


def item_value(ctx: ActionContext, metricsfile: str | None) -> str | Outcome:
    if not metricsfile:
        return ctx.stdout_tail
    path = ctx.produced_files.get(metricsfile)
    if path is None:
        return Outcome(ok=False, error=f"Zabbix: the job produced no {metricsfile!r}")
    if path.stat().st_size > MAX_VALUE:
        return Outcome(ok=False, error=f"Zabbix: {metricsfile!r} is over {MAX_VALUE} bytes")
    return path.read_text(errors="replace")


def exchange(server: str, port: int, data: bytes, timeout: float) -> dict[str, object]:
    """Send one framed request (header, length, reserved) and read the framed answer, all of
    it within `timeout` (deadline.py: a trapper dripping its answer is cut off)."""
    with (
        deadline.bounded(timeout) as bound,
        destinations.connect(server, port, timeout) as sock,
    ):
        deadline.attach(sock)
        try:
            sock.sendall(HEADER + struct.pack("<II", len(data), 0) + data)
            head = receive(sock, 13)
        except OSError as exc:
            raise _over(bound, timeout) or exc from None
        if head[:4] != b"ZBXD":
            raise ProtocolError(f"not a Zabbix answer: {head!r}")
        (length,) = struct.unpack("<I", head[5:9])
        if length > MAX_ANSWER:  # a trapper answers a line of counters
            raise ProtocolError(f"answer of {length} bytes, over {MAX_ANSWER}")
        try:
            answer = json.loads(receive(sock, length))
        except OSError as exc:
            raise _over(bound, timeout) or exc from None
        except ValueError as exc:
            raise ProtocolError(f"answer is not JSON: {exc}") from None
    if not isinstance(answer, dict):
        raise ProtocolError("answer is not a JSON object")
    return answer


def _over(bound: deadline.Deadline, timeout: float) -> TimeoutError | None:
    return TimeoutError(f"timed out: no whole answer within {timeout:g}s") if bound.fired else None


def receive(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(chunks)} of {size} bytes")
        chunks += chunk
    return bytes(chunks)


def judge(answer: dict[str, object]) -> Outcome:
    """success with failed: 0 is delivered; anything else was refused (unknown host or item,
    not a trapper, sender not allowed) and sending again will not change that."""
    info = str(answer.get("info", ""))
    text = bounded(json.dumps(answer))
    failed = re.search(r"failed:\s*(\d+)", info)
    if answer.get("response") != "success":
        return Outcome(ok=False, response=text, error=f"Zabbix refused: {info or text}")
    if failed is not None and int(failed.group(1)) > 0:
        return Outcome(ok=False, response=text, error=f"Zabbix did not take the value: {info}")
    return Outcome(ok=True, response=text)
