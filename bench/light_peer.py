"""A loopback HTTP/1.1 peer that answers every request `200 ok` and does nothing else.

    python bench/light_peer.py   # prints its port, serves until its stdin closes

The action overhead benchmark's stand-in for a webhook receiver on another machine: an
`http.server` peer in the benchmark's own process parses each request in Python (~0.3-0.5 ms of
this 2-core machine's CPU per delivery) and so slows the jobs measured beside it; a real peer's
CPU is not this host's. This one only finds each request's end (headers, Content-Length body)
and writes a fixed answer, keeping connections alive.
"""

from __future__ import annotations

import asyncio
import sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Answering(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            size = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    size = int(value)
            if len(self.buf) < end + 4 + size:
                return
            self.buf = self.buf[end + 4 + size :]
            if self.transport is not None:
                self.transport.write(ANSWER)


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answering, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes our stdin


if __name__ == "__main__":
    asyncio.run(main())
