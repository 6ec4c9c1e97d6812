"""The Zabbix action against a real TCP trapper on loopback speaking the sender protocol."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from typing import Any

from multiflexi_web.actions.base import AppRef, Outcome
from multiflexi_web.actions.zabbix import Zabbix
from tests.action_peers import closed_port, dripping_tcp, make_context, zabbix_trapper


def processed(request: dict[str, Any]) -> dict[str, Any]:
    count = len(request["data"])
    return {
        "response": "success",
        "info": f"processed: {count}; failed: 0; total: {count}; seconds spent: 0.000041",
    }


def rejected(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "response": "success",
        "info": "processed: 0; failed: 1; total: 1; seconds spent: 0.000030",
    }


def test_sends_stdout_to_the_default_item_of_the_company_host() -> None:
    with zabbix_trapper(processed) as trapper:
        outcome = Zabbix().perform(make_context(config={"port": str(trapper.port)}))
    assert outcome.ok, outcome
    assert "processed: 1; failed: 0" in (outcome.response or "")
    [(head, request)] = trapper.received
    assert head[:5] == b"ZBXD\x01"
    assert request == {
        "request": "sender data",
        "data": [
            {
                "host": "acme-host",
                "key": "zabbix_action-[acme-invoice-sync-9-data]",
                "value": "synced 12 invoices\nthen failed",
            }
        ],
    }


def test_configured_key_host_fallback_and_metrics_file(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"invoices": 12}')
    config = {"key": "invoices", "host": "fallback-host", "metricsfile": "metrics"}
    with zabbix_trapper(processed) as trapper:
        ctx = make_context(
            zabbix_host=None,
            produced_files={"metrics": metrics},
            config={**config, "port": str(trapper.port)},
        )
        outcome = Zabbix().perform(ctx)
    assert outcome.ok, outcome
    [(_, request)] = trapper.received
    assert request["data"] == [
        {"host": "fallback-host", "key": "zabbix_action-[invoices]", "value": '{"invoices": 12}'}
    ]


def test_failed_items_are_not_ok_and_not_retryable() -> None:
    with zabbix_trapper(rejected) as trapper:
        outcome = Zabbix().perform(make_context(config={"port": str(trapper.port)}))
    assert not outcome.ok and not outcome.retryable
    assert "failed: 1" in (outcome.error or "")


def test_a_refusal_is_not_retryable() -> None:
    with zabbix_trapper(lambda _: {"response": "failed", "info": "host not allowed"}) as trapper:
        outcome = Zabbix().perform(make_context(config={"port": str(trapper.port)}))
    assert not outcome.ok and not outcome.retryable
    assert outcome.error == "Zabbix refused: host not allowed"


def test_connection_refused_is_retryable() -> None:
    outcome = Zabbix().perform(make_context(config={"port": str(closed_port())}))
    assert not outcome.ok and outcome.retryable
    assert "refused" in (outcome.error or "").lower()


def test_silent_server_times_out_retryable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        outcome = Zabbix().perform(make_context(config={"port": str(port)}, timeout=0.5))
    assert not outcome.ok and outcome.retryable
    assert "timed out" in (outcome.error or "")


def _answered_once(answer: bytes) -> Outcome:
    """The outcome of a delivery to a server that reads the request, sends `answer` and
    closes the connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

        server = threading.Thread(target=serve)
        server.start()
        outcome = Zabbix().perform(make_context(config={"port": str(listener.getsockname()[1])}))
        server.join(10)
    return outcome


def test_connection_cut_mid_answer_is_retryable() -> None:
    outcome = _answered_once(b"ZBXD\x01" + struct.pack("<II", 100, 0) + b'{"resp')
    assert not outcome.ok and outcome.retryable
    assert "closed after 6 of 100 bytes" in (outcome.error or "")


def test_a_non_zabbix_answer_is_not_retryable() -> None:
    outcome = _answered_once(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert not outcome.ok and not outcome.retryable
    assert "not a Zabbix answer" in (outcome.error or "")


def test_config_errors_are_not_retryable(tmp_path: Path) -> None:
    no_host = Zabbix().perform(make_context(zabbix_host=None))
    bad_port = Zabbix().perform(make_context(config={"port": "zabbix"}))
    no_file = Zabbix().perform(make_context(config={"metricsfile": "metrics"}))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 65537)
    too_big = Zabbix().perform(
        make_context(config={"metricsfile": "big"}, produced_files={"big": big})
    )
    for outcome in (no_host, bad_port, no_file, too_big):
        assert not outcome.ok and not outcome.retryable
    assert no_host.error == "Zabbix: no host (company zabbix_host or config host)"
    assert no_file.error == "Zabbix: the job produced no 'metrics'"
    assert "over 65536 bytes" in (too_big.error or "")


def test_app_name_is_slugged_into_the_default_key() -> None:
    with zabbix_trapper(processed) as trapper:
        app = AppRef(1, "Účty & Faktury 2", None, None)
        assert Zabbix().perform(make_context(app=app, config={"port": str(trapper.port)})).ok
    assert trapper.received[0][1]["data"][0]["key"] == "zabbix_action-[acme-ucty-faktury-2-9-data]"


def test_a_trapper_dripping_its_answer_is_cut_off_at_the_timeout() -> None:
    """Each read gets a byte within 0.1 s, far inside the 1 s timeout; the answer as a whole
    would take 6 s: the exchange ends at 1 s, retryable."""
    answer = b"ZBXD\x01" + struct.pack("<II", 60, 0) + b" " * 47
    with dripping_tcp(answer, read_first=True) as (port, cut):
        outcome = Zabbix().perform(make_context(config={"port": str(port)}, timeout=1))
        assert cut.wait(10), "the connection was left open"
    assert not outcome.ok and outcome.retryable
    assert "timed out" in (outcome.error or "")  # whole answer (or, stalled, one read)


def test_an_answer_longer_than_a_trapper_sends_is_refused_unread() -> None:
    outcome = _answered_once(b"ZBXD\x01" + struct.pack("<II", 2**31, 0))
    assert not outcome.ok and not outcome.retryable
    assert "answer of 2147483648 bytes, over 65536" in (outcome.error or "")
