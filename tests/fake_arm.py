"""A loopback Azure Resource Manager (container groups) plus an Entra ID token endpoint,
answering the calls of the azure module and recording them."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-arm-token"
GROUP = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups/([^/]+)(/containers/([^/]+)/logs)?$"
)
GROUPS = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups$"
)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]  # names in lower case

    @property
    def kind(self) -> str:
        """e.g. 'PUT group', 'GET group', 'GET logs', 'DELETE group', 'POST token', 'GET groups'
        (the resource group's list)."""
        if self.path.endswith("/oauth2/v2.0/token"):
            return f"{self.method} token"
        if self.path.startswith("/operations/"):
            return f"{self.method} operation"
        if GROUPS.match(self.path):
            return f"{self.method} groups"
        m = GROUP.match(self.path)
        what = ("logs" if m.group(4) else "group") if m else self.path
        return f"{self.method} {what}"


def container_state(state: str, exit_code: int | None = None) -> dict[str, Any]:
    current: dict[str, Any] = {"state": state}
    if exit_code is not None:
        current["exitCode"] = exit_code
    return {"currentState": current, "restartCount": 0}


@dataclass
class FakeArm:
    """`state(n)` answers the n-th GET of the group: (container state, exit code, group state);
    `logs(n)` the n-th log read."""

    state: Callable[[int], tuple[str, int | None, str]] = lambda n: ("Terminated", 0, "Succeeded")
    logs: Callable[[int], str] = lambda n: ""
    events: list[str] = field(default_factory=list)
    # Statuses of the PUT's asynchronous operation, one per poll (the last repeats); empty: the
    # PUT answers provisioningState Succeeded at once.
    provisioning: list[str] = field(default_factory=list)
    op_reads: int = 0
    fail: dict[str, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: threading.Event = field(default_factory=threading.Event)
    reads: int = 0
    log_reads: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kinds(self, without: str = "") -> list[str]:
        """Call kinds in order (but `without`), consecutive repeats folded into one."""
        out: list[str] = []
        for c in self.calls:
            if c.kind != without and not (out and out[-1] == c.kind):
                out.append(c.kind)
        return out

    def one(self, kind: str) -> Call:
        found = [c for c in self.calls if c.kind == kind]
        assert len(found) == 1, f"{kind}: {len(found)} calls in {self.kinds()}"
        return found[0]

    def _group_view(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(json.dumps(self.groups[name]))
        cstate, code, gstate = self.state(self.reads)
        self.reads += 1
        props = doc["properties"]
        props["containers"][0]["properties"]["instanceView"] = container_state(cstate, code)
        events = [{"message": e, "type": "Warning"} for e in self.events]
        props["instanceView"] = {"state": gstate, "events": events}
        for var in props["containers"][0]["properties"].get("environmentVariables", []):
            var.pop("secureValue", None)  # ARM never returns secure values
        return doc


@contextmanager
def serving(fake: FakeArm) -> Iterator[FakeArm]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def _handler(fake: FakeArm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size).decode() if size else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            form = "x-www-form-urlencoded" in headers.get("content-type", "")
            body = parse_qs(raw) if form else (json.loads(raw) if raw else None)
            call = Call(method, parts.path, parse_qs(parts.query), body, headers)
            fake.calls.append(call)
            if call.kind in fake.fail:
                error = {"code": "Denied", "message": "denied by test"}
                return self._json(fake.fail[call.kind], {"error": error})
            if call.kind == "GET operation":
                return self._operation()
            if call.kind == "POST token":
                doc = {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
                return self._json(200, doc)
            if call.kind == "GET groups":  # as ARM: every group of the resource group, one page
                return self._json(200, {"value": list(fake.groups.values())})
            m = GROUP.match(parts.path)
            if m is None:
                return self._json(404, {"error": {"code": "NoRoute", "message": parts.path}})
            self._group(method, m.group(3), bool(m.group(4)), body)

        def _group(self, method: str, name: str, logs: bool, body: Any) -> None:
            if method == "PUT":
                state = "Creating" if fake.provisioning else "Succeeded"
                body["properties"]["provisioningState"] = state
                body.update(id=self.path.split("?")[0], name=name)
                fake.groups[name] = body
                op = {"Azure-AsyncOperation": f"{fake.url}/operations/{name}"}
                return self._json(201, body, op if fake.provisioning else {})
            if name not in fake.groups:
                error = {"code": "ResourceNotFound", "message": f"{name} not found"}
                return self._json(404, {"error": error})
            if method == "DELETE":
                fake.deleted.set()
                return self._json(200, fake.groups.pop(name))
            if logs:
                fake.log_reads += 1
                return self._json(200, {"content": fake.logs(fake.log_reads - 1)})
            self._json(200, fake._group_view(name))

        def _operation(self) -> None:
            status = fake.provisioning[min(fake.op_reads, len(fake.provisioning) - 1)]
            fake.op_reads += 1
            doc: dict[str, Any] = {"status": status}
            if status == "Failed":
                doc["error"] = {"code": "InaccessibleImage", "message": "image not accessible"}
            elif status == "Succeeded":
                for group in fake.groups.values():
                    group["properties"]["provisioningState"] = "Succeeded"
            self._json(200, doc)

        def _json(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(doc).encode()
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
