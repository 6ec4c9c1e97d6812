"""Post-job actions never reach the platform host's own services or cloud metadata: a tenant's
URL or server on loopback, link-local or a metadata address is refused before any byte is
sent, by every kind and both HTTP paths; a global administrator can allow a network."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from multiflexi_web.actions import delivery, destinations, direct, guarded_session
from multiflexi_web.actions.email import Email
from multiflexi_web.actions.slack import Slack
from multiflexi_web.actions.web_hook import WebHook
from multiflexi_web.actions.zabbix import Zabbix
from multiflexi_web.config import ConfigError
from tests.action_peers import Reply, http_peer, make_context, smtp_server, zabbix_trapper

OK: dict[tuple[str, str], Reply] = {("POST", "/hook"): (200, "thanks", {})}


@pytest.fixture
def default_rule(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The rule an installation has unless its administrator widened it (tests/conftest.py
    allows loopback for every other test's peers)."""
    monkeypatch.delenv(destinations.ALLOWED_VAR, raising=False)
    monkeypatch.setenv("MULTIFLEXI_ENV_FILE", "/nonexistent")
    monkeypatch.setenv("MULTIFLEXI_LOCAL_ENV", "/nonexistent")
    destinations.policy.cache_clear()
    direct._held().clear()  # no connection kept from an earlier test
    yield
    destinations.policy.cache_clear()


def _refused_address(address: str) -> bool:
    return destinations.policy().refusing(ipaddress.ip_address(address)) is not None


def test_the_default_rule(default_rule: None) -> None:
    for address in (
        "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1",
        "169.254.169.254", "fe80::1", "fd00:ec2::254", "168.63.129.16", "100.100.100.200",
        "224.0.0.1", "255.255.255.255",
    ):  # fmt: skip
        assert _refused_address(address), address
    # On-premises peers (Redmine, Mattermost, Jenkins on the LAN) and the internet stay open.
    for address in ("10.0.0.5", "192.168.1.20", "172.16.0.9", "fd12:3456::1", "93.184.216.34"):
        assert not _refused_address(address), address


def test_an_administrator_allows_or_denies_networks(
    default_rule: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(destinations.ALLOWED_VAR, "127.0.0.1, ::1")
    monkeypatch.setenv(destinations.DENIED_VAR, "10.0.0.0/8")
    destinations.policy.cache_clear()
    assert not _refused_address("127.0.0.1") and _refused_address("127.0.0.2")
    assert _refused_address("10.1.2.3") and not _refused_address("192.168.1.1")
    with pytest.raises(ConfigError, match=f"{destinations.DENIED_VAR}: 'ten' is not a network"):
        destinations.policy_from({destinations.DENIED_VAR: "10.0.0.0/8, ten"})


def test_webhooks_to_this_host_are_refused_unsent_and_not_retried(default_rule: None) -> None:
    with http_peer(OK) as peer:
        port = peer.url.rsplit(":", 1)[1]
        for url in (f"{peer.url}/hook", f"http://localhost:{port}/hook"):
            outcome = WebHook().perform(make_context(config={"url": url}))
            assert not outcome.ok and not outcome.retryable, outcome
            assert "a network post-job actions may not reach" in (outcome.error or "")
            assert (outcome.error or "").startswith(("127.0.0.1 is on", "localhost ("))
            assert destinations.ALLOWED_VAR in (outcome.error or "")
        # The requests path (a session: proxies, cookies) is pinned the same way.
        _, outcome = delivery.send(
            "POST", f"{peer.url}/hook", ok=(200,), secrets=[], timeout=5.0,
            idempotency_key="k", session=guarded_session.session(), json={},
        )  # fmt: skip
        assert not outcome.ok and not outcome.retryable
        assert "127.0.0.1" in (outcome.error or "")
        slack = Slack().perform(make_context(config={"webhook_url": f"{peer.url}/hook"}))
        assert not slack.ok and "may not reach" in (slack.error or "")
        assert peer.requests == []  # not a byte reached the peer


def test_an_allowed_network_is_reached(default_rule: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(destinations.ALLOWED_VAR, "127.0.0.1/32")
    destinations.policy.cache_clear()
    with http_peer(OK) as peer:
        outcome = WebHook().perform(make_context(config={"url": f"{peer.url}/hook"}))
        _, through_requests = delivery.send(
            "POST", f"{peer.url}/hook", ok=(200,), secrets=[], timeout=5.0,
            idempotency_key="k", session=guarded_session.session(), json={},
        )  # fmt: skip
    assert outcome.ok and through_requests.ok, (outcome, through_requests)
    assert len(peer.requests) == 2


def test_mail_and_zabbix_servers_on_this_host_are_refused(
    default_rule: None, tmp_path: Path
) -> None:
    with smtp_server(tmp_path, "plain") as mail, zabbix_trapper(lambda _: {}) as trapper:
        for security in ("none", "starttls", "tls"):
            values = {
                "smtp_host": "127.0.0.1", "smtp_port": str(mail.port), "security": security,
                "from": "mf@acme.test", "to": "ops@acme.test",
            }  # fmt: skip
            outcome = Email().perform(make_context(config=values))
            assert not outcome.ok and not outcome.retryable, outcome
            assert "SMTP: 127.0.0.1 is on 127.0.0.0/8" in (outcome.error or "")
        zabbix = Zabbix().perform(
            make_context(config={"server": "127.0.0.1", "port": str(trapper.port)})
        )
        assert not zabbix.ok and not zabbix.retryable
        assert "Zabbix: 127.0.0.1 is on 127.0.0.0/8" in (zabbix.error or "")
        assert trapper.received == []


def test_a_name_with_an_allowed_and_a_refused_address_connects_to_the_allowed_one(
    default_rule: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name answering both (a rebinding trick, or a dual-stack host): the connection goes to
    # an address that passed the rule, never to the refused one.
    monkeypatch.setenv(destinations.ALLOWED_VAR, "127.0.0.2/32")
    destinations.policy.cache_clear()
    listener = socket.create_server(("127.0.0.2", 0))
    port = listener.getsockname()[1]
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with listener, destinations.connect("peer.example", port, 5.0) as sock:
        assert sock.getpeername() == ("127.0.0.2", port)
    with pytest.raises(destinations.DestinationRefused):
        destinations.check("peer.example", port)  # a proxy could pick either


def test_through_a_proxy_the_target_is_checked_and_the_proxy_itself_is_the_admins(
    default_rule: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The administrator's proxy may well listen on this host; the URL's host is what a tenant
    # chose, and the proxy would connect to it: that one is checked.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("NO_PROXY", "")
    delivery._HELD.__dict__.pop("sessions", None)  # no session kept from an earlier test
    refused = WebHook().perform(make_context(config={"url": "http://127.0.0.1:9/hook"}))
    assert not refused.ok and not refused.retryable
    assert "a network post-job actions may not reach" in (refused.error or "")
    allowed = WebHook().perform(make_context(config={"url": "http://192.0.2.1/hook"}))
    assert not allowed.ok and allowed.retryable  # went to the (closed) proxy: not refused
    assert "may not reach" not in (allowed.error or "")
