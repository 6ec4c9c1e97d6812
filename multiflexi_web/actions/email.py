"""Email: mail the job's result, output tail and produced files over SMTP."""

from __future__ import annotations

import mimetypes
import re
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from multiflexi_web.actions.base import ActionContext, AppRef, ConfigField, Outcome
from multiflexi_web.actions.delivery import (
    DELIVERY_HEADER,
    bounded,
    missing,
    secret_values,
    settings,
)
from multiflexi_web.actions.render import render
from multiflexi_web.actions.smtp import MailConfigError, deliver, server_from

DEFAULT_BODY = (
    "Job ${job_id} of ${runtemplate} (${app}, ${company}) ${status}.\n"
    "Exit code: ${exit_code} ${exit_meaning}\n${job_url}\n"
)
ATTACHMENT_LIMIT = 5 * 1024 * 1024


class Email:
    name = "Email"
    description = "Send an e-mail with the job's result, output tail and produced files"
    fields: tuple[ConfigField, ...] = (
        ConfigField("to", "string", "Recipients, comma-separated", True),
        ConfigField("from", "email", "Sender address", True),
        ConfigField(
            "subject", "string", "Subject template", default="${app}: job ${job_id} ${status}"
        ),
        ConfigField(
            "body", "text", "Body template (the stdout tail is appended)", default=DEFAULT_BODY
        ),
        ConfigField(
            "credential",
            "credential",
            "Mail credential of the company (its MAILER_DSN or SMTP_* values are the login)",
            destination=True,
        ),
        ConfigField(
            "MAILER_DSN",
            "password",
            "Or a DSN here: smtp://user:pass@host:port",
            secret=True,
            destination=True,
        ),
        ConfigField(
            "smtp_host", "string", "SMTP server (when there is no MAILER_DSN)", destination=True
        ),
        ConfigField(
            "smtp_port",
            "integer",
            "SMTP port (default 25, 587 or 465 by security)",
            destination=True,
        ),
        ConfigField(
            "security",
            "set",
            "Connection security",
            default="starttls",
            options=("none", "starttls", "tls"),
            destination=True,  # the password would cross the network in the clear
        ),
        ConfigField("username", "string", "SMTP login"),
        ConfigField("password", "password", "SMTP password", secret=True),
        ConfigField(
            "ca_file",
            "string",
            "CA bundle to verify the server with (default: system)",
            destination=True,
        ),
        ConfigField(
            "attachment_limit",
            "integer",
            "Total bytes of attached files",
            default=str(ATTACHMENT_LIMIT),
        ),
    )

    def usable_for(self, app: AppRef) -> str | None:
        return None

    def perform(self, ctx: ActionContext) -> Outcome:
        values = with_login(settings(self.fields, ctx), ctx.credential)
        secrets = [*secret_values(self.fields, values), *ctx.credential_secrets]
        if problem := missing(self.fields, values, self.name):
            return problem
        try:
            server = server_from(values)
            limit = int(values["attachment_limit"])
        except (MailConfigError, ValueError) as exc:
            return Outcome(ok=False, error=bounded(f"Email: {exc}", secrets))
        return deliver(server, compose(ctx, values, limit), ctx.timeout, secrets)


# A mail credential's keywords -> this action's own keys (the Mail prototype has MAILER_DSN).
CREDENTIAL_KEYS = {
    "MAILER_DSN": "MAILER_DSN",
    "SMTP_HOST": "smtp_host",
    "SMTP_PORT": "smtp_port",
    "SMTP_SECURITY": "security",
    "SMTP_USERNAME": "username",
    "SMTP_USER": "username",
    "SMTP_PASSWORD": "password",
}


def with_login(values: dict[str, str], credential: dict[str, str]) -> dict[str, str]:
    """The chosen mail credential is the login: its server and login replace the config's
    (a DSN typed into the config included, so the two can never mix)."""
    if not credential:
        return values
    own = {k: v for k, v in values.items() if k != "MAILER_DSN"}
    return own | {
        CREDENTIAL_KEYS[k]: v for k, v in credential.items() if k in CREDENTIAL_KEYS and v
    }


def compose(ctx: ActionContext, values: dict[str, str], limit: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = values["from"]
    message["To"] = ", ".join(a.strip() for a in values["to"].split(",") if a.strip())
    message["Subject"] = render(values["subject"], ctx).replace("\n", " ")
    message["Date"] = formatdate(localtime=True)
    # Stable per action run, so a retried delivery is recognisable as the same message.
    message["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9.-]', '-', ctx.idempotency_key)}@multiflexi>"
    message[DELIVERY_HEADER] = ctx.idempotency_key
    attached, skipped = pick_attachments(ctx.produced_files, limit)
    message.set_content(body_text(ctx, values["body"], skipped, limit))
    for name, path in attached:
        filename = attachment_name(name, path)
        kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=filename
        )
    return message


def attachment_name(name: str, path: Path) -> str:
    """The produced name, given the file's extension when it has none ("invoices" -> .csv)."""
    return name if Path(name).suffix or not path.suffix else f"{name}{path.suffix}"


def pick_attachments(
    files: dict[str, Path], limit: int
) -> tuple[list[tuple[str, Path]], list[tuple[str, int]]]:
    """Files in name order while their total stays within the limit; the rest with sizes."""
    attached: list[tuple[str, Path]] = []
    skipped: list[tuple[str, int]] = []
    total = 0
    for name, path in sorted(files.items()):
        size = path.stat().st_size
        if total + size <= limit:
            attached.append((name, path))
            total += size
        else:
            skipped.append((name, size))
    return attached, skipped


def body_text(ctx: ActionContext, template: str, skipped: list[tuple[str, int]], limit: int) -> str:
    parts = [render(template, ctx).rstrip(), "", "--- stdout (tail) ---", ctx.stdout_tail.rstrip()]
    if skipped:
        parts += ["", f"Not attached (over the {limit} byte limit):"]
        parts += [
            f"- {name} ({size} bytes) {ctx.artifact_urls.get(name, '')}".rstrip()
            for name, size in skipped
        ]
    return "\n".join(parts) + "\n"
