"""The Email action against a real SMTP server (aiosmtpd) on loopback: STARTTLS with a
self-signed certificate, implicit TLS, plain; login from config or a Mail credential's DSN;
attachments within the limit; failures mapped to retryable or not."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from multiflexi_web.actions.email import Email
from tests.action_peers import (
    PASSWORD,
    Inbox,
    MailPeer,
    closed_port,
    dripping_tcp,
    make_context,
    smtp_server,
)


def config(peer: MailPeer, **extra: str) -> dict[str, str]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": str(peer.port),
        "security": "starttls",
        "username": "mailer",
        "password": PASSWORD,
        "ca_file": str(peer.cert),
        "from": "multiflexi@acme.test",
        "to": "ops@acme.test, boss@acme.test",
        **extra,
    }


def artifacts(tmp_path: Path, sizes: dict[str, int]) -> dict[str, Path]:
    files = {}
    for name, size in sizes.items():
        path = tmp_path / name
        path.write_bytes(name[0].encode() * size)
        files[name] = path
    return files


def test_starttls_login_from_config_with_attachment(tmp_path: Path) -> None:
    files = artifacts(tmp_path, {"report.csv": 60})
    with smtp_server(tmp_path, "starttls") as peer:
        ctx = make_context(config=config(peer), produced_files=files)
        outcome = Email().perform(ctx)
    assert outcome.ok, outcome
    assert outcome.response == "sent to ops@acme.test, boss@acme.test"
    [(sender, recipients)] = peer.inbox.envelopes
    assert sender == "multiflexi@acme.test"
    assert recipients == ["ops@acme.test", "boss@acme.test"]
    [message] = peer.inbox.messages
    assert message["Subject"] == "Invoice Sync: job 42 failed"
    assert message["X-MultiFlexi-Delivery"] == "action-run-7"
    assert message["Message-ID"] == "<action-run-7@multiflexi>"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert "Job 42 of nightly sync (Invoice Sync, ACME Ltd) failed." in text
    assert "Exit code: 3 bank unreachable" in text
    assert "http://portal.test/job/42" in text
    assert "synced 12 invoices\nthen failed" in text
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content().encode() == b"r" * 60
    assert PASSWORD not in str(outcome)


def test_attachment_named_by_produced_name_with_the_file_extension(tmp_path: Path) -> None:
    path = tmp_path / "0-invoices_2024.csv"
    path.write_text("id;total\n1;10\n")
    with smtp_server(tmp_path, "starttls") as peer:
        ctx = make_context(config=config(peer), produced_files={"invoices": path})
        assert Email().perform(ctx).ok
    [attachment] = list(peer.inbox.messages[0].iter_attachments())
    assert attachment.get_filename() == "invoices.csv"
    assert attachment.get_content_type() == "text/csv"


def test_attachments_over_the_limit_are_listed_not_sent(tmp_path: Path) -> None:
    files = artifacts(tmp_path, {"a.bin": 60, "b.bin": 60, "c.bin": 30})
    urls = {"b.bin": "http://portal.test/artifact/b"}
    with smtp_server(tmp_path, "starttls") as peer:
        ctx = make_context(
            config=config(peer, attachment_limit="100"), produced_files=files, artifact_urls=urls
        )
        assert Email().perform(ctx).ok
    [message] = peer.inbox.messages
    assert [a.get_filename() for a in message.iter_attachments()] == ["a.bin", "c.bin"]
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert "Not attached (over the 100 byte limit):" in text
    assert "- b.bin (60 bytes) http://portal.test/artifact/b" in text


def test_plain_login_from_mail_credential_dsn(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "plain") as peer:
        dsn = f"smtp://mailer:{PASSWORD.replace('@', '%40')}@127.0.0.1:{peer.port}?auto_tls=false"
        values = {
            "MAILER_DSN": dsn,
            "from": "mf@acme.test",
            "to": "ops@acme.test",
            "subject": "${status}",
        }
        outcome = Email().perform(make_context(config=values))
    assert outcome.ok, outcome
    assert peer.inbox.messages[0]["Subject"] == "failed"


def test_implicit_tls_from_smtps_dsn(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "tls") as peer:
        dsn = f"smtps://mailer:{PASSWORD.replace('@', '%40')}@127.0.0.1:{peer.port}"
        values = {
            "MAILER_DSN": dsn,
            "ca_file": str(peer.cert),
            "from": "mf@acme.test",
            "to": "ops@acme.test",
        }
        outcome = Email().perform(make_context(config=values))
    assert outcome.ok, outcome
    assert len(peer.inbox.messages) == 1


def test_the_dsn_wins_over_explicit_server_config(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "plain") as peer:
        dsn = f"smtp://127.0.0.1:{peer.port}?auto_tls=false"
        values = {
            "MAILER_DSN": dsn,
            "smtp_host": "192.0.2.1",
            "from": "mf@acme.test",
            "to": "ops@acme.test",
        }
        assert Email().perform(make_context(config=values)).ok
    assert len(peer.inbox.messages) == 1


def test_wrong_password_is_not_retryable_and_not_echoed(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "starttls") as peer:
        outcome = Email().perform(make_context(config=config(peer, password="wrong-SECRET")))
    assert not outcome.ok and not outcome.retryable
    assert "535" in (outcome.error or "")
    assert "SECRET" not in str(outcome)
    assert peer.inbox.messages == []


def test_starttls_required_but_not_offered_is_not_retryable(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "plain") as peer:
        outcome = Email().perform(make_context(config=config(peer)))
    assert not outcome.ok and not outcome.retryable
    assert "STARTTLS" in (outcome.error or "")
    assert peer.inbox.messages == []


def test_untrusted_certificate_is_not_retryable(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "starttls") as peer:
        outcome = Email().perform(make_context(config=config(peer, ca_file="")))
    assert not outcome.ok and not outcome.retryable
    assert "certificate" in (outcome.error or "").lower()
    assert peer.inbox.messages == []


@pytest.mark.parametrize(
    ("reply", "retryable"), [("450 mailbox busy", True), ("550 no such user", False)]
)
def test_refused_recipient_maps_4xx_and_5xx(tmp_path: Path, reply: str, retryable: bool) -> None:
    with smtp_server(tmp_path, "starttls", Inbox(rcpt_reply=reply)) as peer:
        outcome = Email().perform(make_context(config=config(peer)))
    assert not outcome.ok
    assert outcome.retryable is retryable
    assert reply.split()[0] in (outcome.error or "")


def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    values = {"smtp_host": "127.0.0.1", "smtp_port": str(closed_port()), "password": PASSWORD}
    outcome = Email().perform(make_context(config={**values, "from": "a@b.test", "to": "c@d.test"}))
    assert not outcome.ok and outcome.retryable
    assert "refused" in (outcome.error or "").lower()


def test_silent_server_times_out_retryable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # never accepted: the greeting never comes
        values = {"smtp_host": "127.0.0.1", "smtp_port": str(listener.getsockname()[1])}
        ctx = make_context(config={**values, "from": "a@b.test", "to": "c@d.test"}, timeout=0.5)
        outcome = Email().perform(ctx)
    assert not outcome.ok and outcome.retryable
    assert "timed out" in (outcome.error or "")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"smtp_host": "h", "security": "ssl"}, "security must be one of none, starttls, tls"),
        ({}, "no smtp_host and no MAILER_DSN"),
        ({"MAILER_DSN": "sendmail://default"}, "MAILER_DSN must be smtp://"),
        ({"smtp_host": "h", "smtp_port": "99999"}, "smtp_port must be a port number"),
        ({"smtp_host": "h", "attachment_limit": "lots"}, "invalid literal"),
        ({"smtp_host": "h", "to": ""}, "missing config to"),
    ],
)
def test_bad_config_is_not_retryable(values: dict[str, str], reason: str) -> None:
    outcome = Email().perform(make_context(config={"from": "a@b.test", "to": "c@d.test", **values}))
    assert not outcome.ok and not outcome.retryable
    assert reason in (outcome.error or "")


def test_secret_fields_are_declared() -> None:
    assert {f.key for f in Email().fields if f.secret} == {"MAILER_DSN", "password"}


def test_a_server_dripping_its_banner_is_cut_off_at_the_timeout(tmp_path: Path) -> None:
    """The greeting arrives a byte per 0.1 s (6 s in all) against a 1 s timeout: each read is
    in time, the exchange as a whole is not, and it ends at 1 s, retryable."""
    banner = b"220 " + b"x" * 56 + b"\r\n"
    with dripping_tcp(banner, read_first=False) as (port, cut):
        values = {"smtp_host": "127.0.0.1", "smtp_port": str(port), "security": "none",
                  "from": "multiflexi@acme.test", "to": "ops@acme.test"}  # fmt: skip
        outcome = Email().perform(make_context(config=values, timeout=1))
        assert cut.wait(10), "the connection was left open"
    assert not outcome.ok and outcome.retryable
    assert "timed out" in (outcome.error or "")  # whole exchange (or, stalled, one read)
