"""Pausing and resuming a RunTemplate, an application, a company or the whole platform.

A pause is a row in `pause`; the claim and the scheduler leave the RunTemplates it covers
alone (paused.py). Jobs already scheduled stay scheduled and run after the resume; slots that
come due meanwhile are left to the misfire policy when the scheduler next sees the template.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.exc import OperationalError

from multiflexi_web.extensions import db
from multiflexi_web.models import (
    PLATFORM_TARGET,
    Application,
    Company,
    Pause,
    PauseScope,
    RunTemplate,
)
from multiflexi_web.services.jobs.transitions import NOTIFY_CHANNEL

# How long a pause waits for the claims in flight. Claims queue behind a waiting pause, so a
# transaction that read `pause` and stays open (a stuck request) must not stall every executor.
FENCE_TIMEOUT_MS = 5000
LOCK_NOT_AVAILABLE = "55P03"


class PauseBusy(ValueError):
    """The claims in flight did not end in time: nothing was paused; try again."""


_TARGETS: dict[PauseScope, type[RunTemplate] | type[Application] | type[Company]] = {
    PauseScope.RUNTEMPLATE: RunTemplate,
    PauseScope.APPLICATION: Application,
    PauseScope.COMPANY: Company,
}


@dataclass(frozen=True)
class Target:
    """What a pause names: a scope and, except for the platform, one object's id."""

    scope: PauseScope
    id: int = PLATFORM_TARGET

    @property
    def label(self) -> str:
        return "platform" if self.scope is PauseScope.PLATFORM else f"{self.scope} {self.id}"


def check_target(target: Target) -> None:
    """ValueError when the object a pause would name does not exist."""
    model = _TARGETS.get(target.scope)
    if model is not None and db.session.get(model, target.id) is None:
        raise ValueError(f"{target.scope}: no {target.scope} {target.id}")


def pause(target: Target, *, actor: str, user_id: int | None, reason: str | None = None) -> bool:
    """Pause a scope (False: it already was). Once the caller commits, nothing it covers is
    claimed by any executor."""
    check_target(target)
    _fence_claims()
    if find(target) is not None:
        return False
    db.session.add(
        Pause(
            scope=target.scope.value,
            target_id=target.id,
            actor=actor,
            user_id=user_id,
            reason=(reason or None) and reason[:500],
        )
    )
    db.session.flush()
    return True


def resume(target: Target) -> bool:
    """Lift a pause (False: there was none). Executors are woken: the jobs are due now."""
    res = db.session.execute(
        delete(Pause).where(Pause.scope == target.scope.value, Pause.target_id == target.id)
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        return False
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))  # transactional: heard at commit
    return True


def _fence_claims() -> None:
    """PostgreSQL: wait for the claims in flight, and hold new ones until this commits.

    Every claim reads `pause` and so holds ACCESS SHARE on it until its transaction ends; an
    ACCESS EXCLUSIVE lock waits for those, and claims that start meanwhile wait for it. A READ
    COMMITTED statement takes its snapshot after its table locks are granted, so those then see
    the pause. A claim that committed before this one did was made before the pause. SQLite
    needs nothing: writers are serialised and the claim reads `pause` under its write lock.
    The wait is bounded (FENCE_TIMEOUT_MS): past it the pause is refused (PauseBusy).
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.execute(text(f"SET LOCAL lock_timeout = {int(FENCE_TIMEOUT_MS)}"))
    try:
        db.session.execute(text("LOCK TABLE pause IN ACCESS EXCLUSIVE MODE"))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise PauseBusy(
            "pause: another transaction that reads the pauses did not end in time; try again"
        ) from None


def find(target: Target) -> Pause | None:
    """The pause on exactly this scope, if any."""
    return db.session.scalar(
        select(Pause).where(Pause.scope == target.scope.value, Pause.target_id == target.id)
    )


def all_pauses() -> list[Pause]:
    return list(db.session.scalars(select(Pause).order_by(Pause.created_at, Pause.id)))


def covering(rt: RunTemplate) -> list[Pause]:
    """The pauses that hold a RunTemplate's jobs (for its page)."""
    return [p for p in all_pauses() if _covers(p, rt)]


def _covers(p: Pause, rt: RunTemplate) -> bool:
    return (p.scope, p.target_id) in {
        (PauseScope.PLATFORM.value, PLATFORM_TARGET),
        (PauseScope.RUNTEMPLATE.value, rt.id),
        (PauseScope.APPLICATION.value, rt.application_id),
        (PauseScope.COMPANY.value, rt.company_id),
    }
