"""requests sessions whose connections are bounded by the thread's request deadline
(deadline.py): each urllib3 connection attaches its socket when it connects and when it is
reused, through a proxy too. Imported only where a delivery needs requests (see delivery.send).
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager

from multiflexi_web.actions import deadline, destinations


def _new_conn(conn: HTTPConnection) -> socket.socket:
    """urllib3's own connect, on an address actions may reach (destinations.py); a connection
    to a proxy is the administrator's (its target was checked in delivery.send)."""
    if conn.proxy is not None:  # to the proxy, a tunnel through it too
        return HTTPConnection._new_conn(conn)
    try:
        timeout = conn.timeout if isinstance(conn.timeout, int | float) else None  # or default
        sock = destinations.connect(conn._dns_host, conn.port, timeout)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    for option in conn.socket_options or ():
        sock.setsockopt(*option)
    return sock


class _GuardedHTTP(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _new_conn(self)

    def connect(self) -> None:
        super().connect()
        deadline.attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # kept from an earlier request; a new one attaches on connect
            deadline.attach(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPS(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _new_conn(self)

    def connect(self) -> None:
        super().connect()
        deadline.attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            deadline.attach(self.sock)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPS


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


def _guard(manager: PoolManager) -> PoolManager:
    # Only urllib3's own pools are replaced: a SOCKS proxy manager brings its own (PySocks is
    # not installed, so requests refuses socks:// proxies before one is made).
    if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
        manager.pool_classes_by_scheme = _POOLS
    return manager


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _guard(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        return _guard(manager) if isinstance(manager, PoolManager) else manager


def session() -> requests.Session:
    """A session whose requests a deadline.bounded() block bounds as a whole."""
    fresh = requests.Session()
    for prefix in ("http://", "https://"):
        fresh.mount(prefix, GuardedAdapter())
    return fresh
