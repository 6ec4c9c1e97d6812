"""Click options for a RunTemplate's misfire, overlap and retry policies (create and update)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from multiflexi_web.cli.common import in_range
from multiflexi_web.models import MisfirePolicy, OverlapPolicy, RetryBackoff
from multiflexi_web.models.bounds import MAX_ATTEMPTS, RETRY_MIN_GAP
from multiflexi_web.services.scheduling.times import Policies

F = TypeVar("F", bound=Callable[..., Any])
POLICY_KEYS = ("misfire", "overlap", "max_attempts", "retry_backoff", "retry_min_gap")


def policy_options(*, update: bool = False) -> Callable[[F], F]:
    """The five policy options; on update they default to None (= keep the stored value)."""
    base = Policies()

    def default(value: object) -> object:
        return None if update else value

    def choice(enum: Any) -> click.Choice[str]:
        return click.Choice([m.value for m in enum])

    opts = [
        click.option(
            "--misfire",
            type=choice(MisfirePolicy),
            default=default(base.misfire),
            help="Missed slots: latest (run the last once), skip (record), all (run each).",
        ),
        click.option(
            "--overlap",
            type=choice(OverlapPolicy),
            default=default(base.overlap),
            help="A slot while the previous job runs: wait, allow or skip.",
        ),
        click.option(
            "--max-attempts",
            type=in_range(MAX_ATTEMPTS),
            default=default(base.max_attempts),
            help="Attempts per job including retries.",
        ),
        click.option(
            "--retry-backoff",
            type=choice(RetryBackoff),
            default=default(base.retry_backoff),
            help="Growth of the wait between tries.",
        ),
        click.option(
            "--retry-min-gap",
            type=in_range(RETRY_MIN_GAP),
            default=default(base.retry_min_gap),
            help="Seconds of the first wait before a retry.",
        ),
    ]

    def decorate(fn: F) -> F:
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def policies_from(values: dict[str, Any], current: Policies | None = None) -> Policies:
    """Policies from the options' values; None keeps the value in `current`."""
    out = current or Policies()
    changes = {k: values[k] for k in POLICY_KEYS if values.get(k) is not None}
    return Policies(**{**out.__dict__, **changes})
