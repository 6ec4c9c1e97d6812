"""Socket helpers of the tests' TCP forwarders (a database or broker link that can be cut)."""

from __future__ import annotations

import contextlib
import socket


def hard_close(s: socket.socket) -> None:
    """Shut the connection down, then close it. close() alone does not end a TCP connection
    while another thread is blocked in recv() on the socket: no FIN is sent, so the far end (a
    PostgreSQL backend idle in a transaction) waits for good, holding its row locks."""
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
