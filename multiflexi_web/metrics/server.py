"""A daemon's metrics port: a threaded WSGI server on a thread of its own, token checked."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class _Quiet(WSGIRequestHandler):
    """No access line per scrape on stderr (journald keeps the daemon's own events)."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def bearer_ok(header: str | None, token: str) -> bool:
    """The Authorization header carries `Bearer <token>` (no token configured: anyone)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    # As bytes: compare_digest refuses text that is not ASCII (a 500 for "Bearer café").
    wanted = token.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), wanted)


def guarded(app: WSGIApplication, token: str) -> WSGIApplication:
    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if bearer_ok(environ.get("HTTP_AUTHORIZATION"), token):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
        )
        return [b"metrics token required\n"]

    return wsgi


def serve(registry: CollectorRegistry, addr: str, port: int, token: str) -> WSGIServer:
    """Serve `registry` at http://addr:port/ (any path) until the returned server's shutdown()."""
    server = make_server(
        addr, port, guarded(make_wsgi_app(registry), token), ThreadingWSGIServer, _Quiet
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server
