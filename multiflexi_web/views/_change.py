"""The one shape of a portal change: call a service, audit, commit, answer; refused: roll back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import flash, redirect, url_for
from werkzeug.wrappers import Response

from multiflexi_web.extensions import db
from multiflexi_web.services.audit import record

T = TypeVar("T")
Page = str | tuple[str, int] | Response


@dataclass(frozen=True)
class Audit:
    """The audit row a change writes in its own unit of work."""

    action: str
    entity_type: str
    entity_id: object
    summary: str
    details: dict[str, Any] | None = None


def commit_change(
    change: Callable[[], T],
    audit: Callable[[T], Audit],
    done: Callable[[T], Page],
    refused: Callable[[ValueError], Page] | None = None,
    errors: tuple[type[ValueError], ...] = (),
) -> Page:
    """Run `change`, audit it and commit, then answer `done(result)`.

    A service refusing with one of `errors` rolls the whole unit of work back (nothing half
    written, no audit row) and the answer is `refused(error)`: the form again, the error named.
    """
    try:
        result = change()
    except errors as exc:
        db.session.rollback()
        if refused is None:
            raise
        return refused(exc)
    entry = audit(result)
    record(entry.action, entry.entity_type, entry.entity_id, entry.summary, entry.details)
    db.session.commit()
    return done(result)


def flash_redirect(message: str, endpoint: str, **values: Any) -> Response:
    """Say what happened on the next page, and go there."""
    flash(message, "info")
    return redirect(url_for(endpoint, **values))


def flash_error_redirect(error: ValueError, endpoint: str, **values: Any) -> Response:
    """A refusal shown on the page the user came from."""
    flash(str(error), "error")
    return redirect(url_for(endpoint, **values))


def discard_changes() -> None:
    """A request that only tries something (the rule tester) throws its unit of work away."""
    db.session.rollback()
