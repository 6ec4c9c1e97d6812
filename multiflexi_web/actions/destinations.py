"""Where post-job actions may connect: never to the platform host's own services or a cloud's
metadata endpoint, whatever URL or server a tenant typed.

A WebHook URL, a Slack or Redmine base, an SMTP server or a Zabbix trapper is tenant input
(operators configure actions, and "send a test" shows the peer's answer at once). Without a
rule the delivery process would connect, from the platform's host, to its loopback services
(a broker's management API, a local admin endpoint) or to 169.254.169.254, and record what
they answer. Every action connection goes through connect() below: the name is resolved
once, each address is checked, and the socket is connected to an address that passed (the
address checked is the address used, so a name that resolves differently the next moment
gains nothing). Private networks (10/8, 192.168/16, ...) stay reachable: on-premises
Redmine, Mattermost or Jenkins live there. A global administrator widens or narrows the rule
with MULTIFLEXI_ACTION_ALLOWED_NETWORKS and MULTIFLEXI_ACTION_DENIED_NETWORKS.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from multiflexi_web.config import ConfigError, read_sources

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_VAR = "MULTIFLEXI_ACTION_ALLOWED_NETWORKS"
DENIED_VAR = "MULTIFLEXI_ACTION_DENIED_NETWORKS"
# Always refused unless allowed by name: this host (loopback, "this network"), link-local
# (cloud metadata at 169.254.169.254, fe80::/10), multicast and broadcast, and the metadata
# addresses that sit elsewhere (AWS over IPv6, Azure's wire server, Alibaba Cloud).
DEFAULT_DENIED = (
    "127.0.0.0/8",
    "::1/128",
    "0.0.0.0/8",
    "::/128",
    "169.254.0.0/16",
    "fe80::/10",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "ff00::/8",
    "fd00:ec2::254/128",
    "168.63.129.16/32",
    "100.100.100.200/32",
)


class DestinationRefused(Exception):
    """An action's peer is on a network actions may not reach. Not an OSError on purpose: it
    is a configuration error, never retried."""


@dataclass(frozen=True)
class Policy:
    allowed: tuple[Network, ...]
    denied: tuple[Network, ...]

    def refusing(self, address: Address) -> Network | None:
        """The denied network `address` is in (and no allowed one), else None."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(address in net for net in self.allowed):
            return None
        return next((net for net in self.denied if address in net), None)


def networks(raw: str, name: str) -> tuple[Network, ...]:
    """A comma-separated list of networks (CIDR or single addresses); ConfigError naming the
    variable and the entry that does not parse."""
    found: list[Network] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not a network (e.g. 10.1.2.0/24)") from None
    return tuple(found)


def policy_from(values: Mapping[str, str]) -> Policy:
    denied = networks(",".join(DEFAULT_DENIED), "default")
    return Policy(
        allowed=networks(values.get(ALLOWED_VAR, ""), ALLOWED_VAR),
        denied=denied + networks(values.get(DENIED_VAR, ""), DENIED_VAR),
    )


@functools.cache
def policy() -> Policy:
    """This process's rule, read once from its environment and env files (the daemons check
    the variables at start: services/actions/settings.py)."""
    return policy_from(read_sources())


def connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to `host`:`port` on an address the rule lets actions reach. Raises
    DestinationRefused when every address of the name is refused, OSError as
    socket.create_connection does when none that passed answers."""
    try:
        rule = policy()
    except ConfigError as exc:  # a variable that does not parse: nothing is reached
        raise DestinationRefused(str(exc)) from None
    refused: list[tuple[Address, Network]] = []
    failure: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        denied = rule.refusing(address)
        if denied is not None:
            refused.append((address, denied))
            continue
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        return sock
    if failure is not None:
        raise failure
    if refused:
        raise DestinationRefused(_refusal(host, *refused[0]))
    raise OSError(f"{host}: no address to connect to")


def _refusal(host: str, address: Address, denied: Network) -> str:
    where = host if host == str(address) else f"{host} ({address})"
    return (
        f"{where} is on {denied}, a network post-job actions may not reach; "
        f"a global administrator may allow it with {ALLOWED_VAR}"
    )


def check(host: str, port: int) -> None:
    """For a connection something else makes (a proxy): refused when any address of the
    name is (the proxy may pick any of them)."""
    try:
        rule = policy()
    except ConfigError as exc:
        raise DestinationRefused(str(exc)) from None
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        denied = rule.refusing(address)
        if denied is not None:
            raise DestinationRefused(_refusal(host, address, denied))
