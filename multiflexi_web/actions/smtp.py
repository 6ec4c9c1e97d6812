"""SMTP delivery for the Email action: server settings from a Mail credential's MAILER_DSN or
explicit config, one authenticated session, failures mapped to retryable or not."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from multiflexi_web.actions import deadline, destinations
from multiflexi_web.actions.base import Outcome
from multiflexi_web.actions.delivery import bounded

SECURITY = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


class MailConfigError(ValueError):
    """The mail server settings cannot be used as given."""


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    security: str  # one of SECURITY
    username: str = ""
    password: str = ""
    ca_file: str = ""


def server_from(values: Mapping[str, str]) -> MailServer:
    """A MAILER_DSN (the Mail credential) wins; otherwise smtp_host, smtp_port, security,
    username and password from the action's config."""
    if values.get("MAILER_DSN"):
        return parse_dsn(values["MAILER_DSN"], values.get("ca_file", ""))
    security = values.get("security", "starttls")
    if security not in SECURITY:
        raise MailConfigError(f"security must be one of {', '.join(SECURITY)}, not {security!r}")
    if not values.get("smtp_host"):
        raise MailConfigError("no smtp_host and no MAILER_DSN (Mail credential)")
    return MailServer(
        values["smtp_host"],
        port_of(values.get("smtp_port") or str(DEFAULT_PORTS[security])),
        security,
        values.get("username", ""),
        values.get("password", ""),
        values.get("ca_file", ""),
    )


def parse_dsn(dsn: str, ca_file: str) -> MailServer:
    """Symfony Mailer's smtp://user:pass@host:port and smtps://...: smtps or port 465 is
    implicit TLS, smtp is STARTTLS (required, never a silent downgrade) unless ?auto_tls=false."""
    parts = urlsplit(dsn)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise MailConfigError("MAILER_DSN must be smtp://[user:pass@]host[:port] or smtps://...")
    try:
        port = parts.port
    except ValueError:
        raise MailConfigError("MAILER_DSN has a bad port") from None
    if parts.scheme == "smtps" or port == 465:
        security = "tls"
    elif parse_qs(parts.query).get("auto_tls") == ["false"]:
        security = "none"
    else:
        security = "starttls"
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    return MailServer(
        parts.hostname, port or DEFAULT_PORTS[security], security, user, password, ca_file
    )


def port_of(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not 0 < int(text) < 65536:
        raise MailConfigError(f"smtp_port must be a port number, not {text!r}")
    return int(text)


def deliver(
    server: MailServer, message: EmailMessage, timeout: float, secrets: list[str]
) -> Outcome:
    try:
        refused = submit(server, message, timeout)
    except destinations.DestinationRefused as exc:  # configuration: never retried
        return Outcome(ok=False, error=bounded(f"SMTP: {exc}", secrets))
    except smtplib.SMTPException as exc:
        return smtp_failure(exc, secrets)
    except ssl.SSLError as exc:
        # A certificate that does not verify will not verify on the next attempt either.
        return Outcome(ok=False, error=bounded(f"TLS: {exc}", secrets))
    except OSError as exc:
        return Outcome(
            ok=False,
            error=bounded(f"SMTP {server.host}:{server.port}: {exc}", secrets),
            retryable=True,
        )
    if refused:
        return Outcome(ok=True, response=bounded(f"sent; refused recipients: {refused}", secrets))
    return Outcome(ok=True, response=f"sent to {message['To']}")


class _SMTP(smtplib.SMTP):
    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        # Only a server actions may reach (destinations.py), as smtplib would connect.
        sock = destinations.connect(host, port, timeout)
        deadline.attach(sock)  # before the banner is read: a server dripping it is bounded too
        return sock


class _SMTPS(smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        plain = destinations.connect(host, port, timeout)
        sock = self.context.wrap_socket(plain, server_hostname=self._host)  # type: ignore[attr-defined]
        deadline.attach(sock)
        return sock


def submit(server: MailServer, message: EmailMessage, timeout: float) -> dict[str, object]:
    """The whole exchange within `timeout` (deadline.py), each network operation too: a server
    answering a byte at a time cannot hold a delivery thread."""
    context = ssl.create_default_context(cafile=server.ca_file or None)
    smtp: smtplib.SMTP
    with deadline.bounded(timeout) as bound:
        try:
            if server.security == "tls":
                smtp = _SMTPS(server.host, server.port, timeout=timeout, context=context)
            else:
                smtp = _SMTP(server.host, server.port, timeout=timeout)
            with smtp:
                if server.security == "starttls":
                    smtp.starttls(context=context)
                    deadline.attach(smtp.sock)  # the TLS socket took the plain one's place
                if server.username:
                    smtp.login(server.username, server.password)
                refused: dict[str, object] = dict(smtp.send_message(message))
        except (OSError, smtplib.SMTPException) as exc:
            if bound.fired:
                raise TimeoutError(f"timed out: no whole exchange within {timeout:g}s") from exc
            raise
        if bound.fired:
            raise TimeoutError(f"timed out: no whole exchange within {timeout:g}s")
        return refused


def smtp_failure(exc: smtplib.SMTPException, secrets: list[str]) -> Outcome:
    """4xx replies and dropped connections are temporary; 5xx replies, refused logins and a
    server without STARTTLS are not."""
    text = bounded(f"SMTP: {exc}", secrets)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Outcome(ok=False, error=text, retryable=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return Outcome(ok=False, error=text, retryable=all(400 <= c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return Outcome(ok=False, error=text, retryable=400 <= exc.smtp_code < 500)
    return Outcome(ok=False, error=text)
