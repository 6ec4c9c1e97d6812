"""A loopback Kubernetes API server answering the calls of the kubernetes module, recording them.

Pods and Secrets are created and deleted, a Pod's status follows a script, its log is served as
a stream that may stay open, and `exec` speaks the websocket channel protocol (v4) well enough
for the client's stream API: stdout frames, then the status on the error channel.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import struct
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit


def _empty_tar() -> bytes:
    """What `tar cf - -C /work .` prints for an empty folder: the folder's own entry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("./")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return buf.getvalue()


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ROUTE = re.compile(r"^/api/v1/namespaces/([^/]+)/(pods|secrets)(?:/([^/]+))?(?:/(log|exec))?$")
TOKEN = "fake-cluster-token"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]  # names in lower case

    @property
    def kind(self) -> str:
        """e.g. 'POST secrets', 'GET pods', 'GET log', 'DELETE pods', 'LIST pods'."""
        m = ROUTE.match(self.path)
        if m and self.method == "GET" and m.group(3) is None:
            return f"LIST {m.group(2)}"
        return f"{self.method} {m.group(4) or m.group(2)}" if m else f"{self.method} {self.path}"


def container(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "state": state, "ready": False, "restartCount": 0,
            "image": "img", "imageID": ""}  # fmt: skip


def running() -> dict[str, Any]:
    live = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    return {"phase": "Running", "containerStatuses": [container("job", live),
                                                      container("keeper", live)]}  # fmt: skip


def terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    done = {"terminated": {"exitCode": code, "reason": reason}}
    live = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    return {"phase": "Running", "containerStatuses": [container("job", done),
                                                      container("keeper", live)]}  # fmt: skip


def pending(reason: str | None = None, message: str = "") -> dict[str, Any]:
    waiting = {"waiting": {"reason": reason or "ContainerCreating", "message": message}}
    return {"phase": "Pending", "containerStatuses": [container("job", waiting)]}


def unschedulable(message: str) -> dict[str, Any]:
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message}  # fmt: skip
    return {"phase": "Pending", "conditions": [cond]}


@dataclass
class FakeKube:
    """Scripted behaviour: `status(n)` answers the n-th pod read (0-based); `log(out)` writes the
    log stream; `tar` is what `tar cf -` prints; `exec_ok` False makes tar fail."""

    status: Callable[[int], dict[str, Any]] = lambda n: terminated(0)
    log: Callable[[BinaryIO], object] = lambda out: None
    tar: bytes = field(default_factory=_empty_tar)
    exec_ok: bool = True
    exec_drops: bool = False  # the exec stream ends without the status message
    fail: dict[str, int] = field(default_factory=dict)  # call kind -> HTTP status to answer
    blips: int = 0  # this many pod reads answer 503 first
    calls: list[Call] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    pod_deleted: threading.Event = field(default_factory=threading.Event)
    lingering: int = 0  # a deleted Pod is still listed this many times (the kubelet stopping it)
    reads: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kinds(self, without: str = "") -> list[str]:
        """The calls' kinds in order (but `without`), consecutive pod reads folded into one."""
        out: list[str] = []
        for c in self.calls:
            if c.kind != without and not (out and out[-1] == c.kind == "GET pods"):
                out.append(c.kind)
        return out

    def one(self, kind: str) -> Call:
        found = [c for c in self.calls if c.kind == kind]
        assert len(found) == 1, f"{kind}: {len(found)} calls in {self.kinds()}"
        return found[0]

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(doc))  # JSON is YAML
        return path


@contextmanager
def serving(fake: FakeKube) -> Iterator[FakeKube]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.pod_deleted.set()  # releases log streams still held open
        server.shutdown()
        server.server_close()


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and a chunked log stream, as the API server

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size) if size else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            call = Call(method, parts.path, parse_qs(parts.query), body, headers)
            fake.calls.append(call)
            m = ROUTE.match(parts.path)
            if call.kind == "GET pods" and fake.blips > 0:
                fake.blips -= 1
                self._json(503, {"kind": "Status", "message": "apiserver restarting"})
            elif call.kind in fake.fail:
                self._json(fake.fail[call.kind], {"kind": "Status", "message": "denied by test"})
            elif m is None:
                self._json(404, {"kind": "Status", "message": "no such route"})
            else:
                self._route(method, m.group(2), m.group(3), m.group(4), body)

        def _route(self, method: str, kind: str, name: str | None, sub: str | None,
                   body: Any) -> None:  # fmt: skip
            if method == "GET" and name is None:
                return self._list(kind)
            if method == "POST":
                body["metadata"]["uid"] = f"uid-{len(fake.objects)}"
                fake.objects[f"{kind}/{body['metadata']['name']}"] = body
                return self._json(201, body)
            obj = fake.objects.get(f"{kind}/{name}")
            if obj is None:
                return self._json(404, {"kind": "Status", "message": f"{kind} {name} not found"})
            if method == "DELETE":
                del fake.objects[f"{kind}/{name}"]
                if kind == "pods":  # a Pod's delete answers the Pod (being deleted)
                    fake.pod_deleted.set()
                    return self._json(200, obj)
                return self._json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            if sub == "log":
                return self._log()
            if sub == "exec":
                return self._exec()
            fake.reads += 1
            return self._json(200, {**obj, "status": fake.status(fake.reads - 1)})

        def _list(self, kind: str) -> None:
            """A list by `labelSelector` (k=v pairs, comma-separated), as the API server."""
            query = parse_qs(urlsplit(self.path).query)
            wanted = dict(
                pair.split("=", 1)
                for pair in query.get("labelSelector", [""])[0].split(",")
                if pair
            )
            items = [
                obj for key, obj in fake.objects.items()
                if key.startswith(f"{kind}/")
                and wanted.items() <= obj["metadata"].get("labels", {}).items()
            ]  # fmt: skip
            if kind == "pods" and fake.lingering > 0 and not items and fake.pod_deleted.is_set():
                fake.lingering -= 1
                items = [{"metadata": {"name": "terminating", "labels": wanted}}]
            list_kind = "PodList" if kind == "pods" else "SecretList"
            self._json(200, {"kind": list_kind, "apiVersion": "v1", "metadata": {}, "items": items})

        def _json(self, code: int, doc: Any) -> None:
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _log(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            fake.log(_Chunked(self.wfile))  # type: ignore[arg-type]
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _exec(self) -> None:
            key = self.headers["Sec-WebSocket-Key"]
            digest = hashlib.sha1((key + WS_GUID).encode(), usedforsecurity=False).digest()
            accept = base64.b64encode(digest)
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept.decode())
            self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
            self.end_headers()
            for i in range(0, len(fake.tar), 16384):
                self.wfile.write(_frame(b"\x01" + fake.tar[i : i + 16384]))
            status: dict[str, Any] = {"metadata": {}, "status": "Success"}
            if not fake.exec_ok:
                self.wfile.write(_frame(b"\x02tar: /work: No such file or directory\n"))
                cause = {"reason": "ExitCode", "message": "2"}
                status = {"status": "Failure", "details": {"causes": [cause]}}
            if not fake.exec_drops:
                self.wfile.write(_frame(b"\x03" + json.dumps(status).encode()))
            self.wfile.write(b"\x88\x02\x03\xe8")  # close, 1000
            self.wfile.flush()
            self.close_connection = True

    return Handler


class _Chunked:
    """What the scripted log writes goes out as HTTP/1.1 chunks, flushed at once."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        if data:
            self.out.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.out.flush()
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _frame(payload: bytes) -> bytes:
    """One unmasked binary websocket frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x82, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x82, 126, n)
    else:
        head = struct.pack("!BBQ", 0x82, 127, n)
    return head + payload
