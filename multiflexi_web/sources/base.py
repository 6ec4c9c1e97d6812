"""Shared by all source kinds: the spec, the Sink and Consumer Protocols, decoding, reconnecting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from multiflexi_web.services.events.store import Incoming

BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
# After a Declined: the eventor's sync (every few seconds) stops a disabled source's consumer
# within this; one enabled again in between resumes after it.
DECLINED_WAIT = 5.0


@dataclass(frozen=True)
class SourceSpec:
    """A plain copy of an enabled source for a consumer thread (secret decrypted)."""

    id: int
    name: str
    kind: str
    config: Mapping[str, Any]
    secret: str | None = None


class Sink(Protocol):
    """Where a consumer hands what it received; store() returns once the event is committed,
    or None when the source was disabled meanwhile (see `taken`)."""

    stop: threading.Event

    def store(self, item: Incoming, cursor: int | None = None) -> int | None: ...

    def cursor(self) -> int: ...

    def failed(self, message: str) -> None: ...

    def healthy(self) -> None: ...


class Consumer(Protocol):
    def __call__(self, spec: SourceSpec, sink: Sink) -> None: ...


@dataclass(frozen=True)
class KindInfo:
    """What a kind needs in its config and how it is consumed (webhook: by the portal)."""

    label: str
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    consumer: Consumer | None = None
    poll_once: Consumer | None = None
    # Raises SourceConfigError for a value that cannot work (checked when the source is saved).
    check: Callable[[Mapping[str, Any]], None] | None = None
    # Why only a global administrator may set this kind up or change its config (None: any
    # company admin may): the platform's daemon reads the host or connects from it, with
    # reach no company should choose for it (SPEC §15).
    admin_only: str | None = None


# Why a queue kind is a global administrator's to set up: the connection leaves from the
# platform's host (its network, its loopback), and a queue or topic is not a company's own.
BROKER_REACH = (
    "the eventor connects from the platform's host to the server you name, and takes messages "
    "from a queue or topic that other companies' sources may share"
)


class SourceConfigError(ValueError):
    """A source's config is missing a key or has a wrong value."""


class Declined(Exception):
    """The sink did not take a message: its source was disabled after the consumer started."""


def taken(event_id: int | None) -> int:
    """The stored event's id; Declined when the sink did not store the message, which ends the
    session before the message is acknowledged, so the broker keeps it for when the source is
    enabled again (the eventor stops the consumer at its next sync)."""
    if event_id is None:
        raise Declined
    return event_id


def keep_running(
    sink: Sink, session: Callable[[], None], recoverable: tuple[type[BaseException], ...], what: str
) -> None:
    """Run a connect-and-consume session until stop; on a broker error, back off and reconnect."""
    delay = BACKOFF_MIN
    while not sink.stop.is_set():
        started = time.monotonic()
        try:
            session()
        except Declined:
            # Not an error to show on the source; ask again later in case it is enabled again.
            if sink.stop.wait(DECLINED_WAIT):
                return
            continue
        except recoverable as exc:
            if time.monotonic() - started > BACKOFF_MAX:
                delay = BACKOFF_MIN  # it had been working: start the backoff afresh
            sink.failed(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
            if sink.stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)
