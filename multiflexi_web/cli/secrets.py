"""`multiflexi secrets rotate-key`"""

from __future__ import annotations

from dataclasses import asdict

import click

from multiflexi_web.cli.common import domain_errors, emit, format_option, writer
from multiflexi_web.extensions import db
from multiflexi_web.security.rotation import rotate_all
from multiflexi_web.security.secrets import SecretError, cipher, generate_key
from multiflexi_web.services import audit


@click.group("secrets")
def secrets_group() -> None:
    """Encryption of secrets at rest."""


@secrets_group.command("rotate-key")
@click.option(
    "--new-key",
    help="The new ENCRYPTION_MASTER_KEY; a fresh one is generated and printed when omitted.",
)
@format_option
@domain_errors(SecretError)
@writer
def rotate_key(new_key: str | None, fmt: str) -> None:
    """Re-encrypt every secret under a new key. Then set ENCRYPTION_MASTER_KEY to it everywhere."""
    key = new_key or generate_key()
    report = rotate_all(cipher(), key)
    audit.record("rotate_key", "secrets", None, "secrets re-encrypted under a new key", actor="cli")
    db.session.commit()
    row: dict[str, object] = dict(asdict(report))
    if new_key is None:
        row["new_key"] = key
    emit(row, fmt, list(row))
    if fmt == "text":
        click.echo(
            "Now set ENCRYPTION_MASTER_KEY to the new key in every host's multiflexi.env "
            "(keep the old one in ENCRYPTION_OLD_KEYS until all daemons restarted).",
            err=True,
        )
