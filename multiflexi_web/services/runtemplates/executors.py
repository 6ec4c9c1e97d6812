"""Which executor modules can run an application, checked when a RunTemplate is saved.

A module that drives an engine is usable when the application suits it and the engine answers
here, or a live executor reports on its worker row that it can run the module (the portal may
sit on a host without the engine the executors use). The app and RunTemplate pages warn when
no live executor can run them, from the same worker rows (modules, missing executables).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from multiflexi_web.executors import registry
from multiflexi_web.executors.base import AppInfo, EngineModule, ExecutorModule
from multiflexi_web.extensions import db
from multiflexi_web.models import Application, Worker, utcnow
from multiflexi_web.models.worker import MISSING_KEY, MODULES_KEY
from multiflexi_web.services import settings


@dataclass(frozen=True)
class Choice:
    name: str
    description: str
    problem: str | None  # why it cannot run this application; None when it can


def choices(app: Application) -> list[Choice]:
    """Every module with the reason it cannot run `app` (what the portal offers, greyed)."""
    info = AppInfo.of(app)
    return [
        Choice(name, (m := registry.get(name)).description, problem(m, info))
        for name in registry.names()
    ]


def problem(module: ExecutorModule, app: AppInfo) -> str | None:
    found = module.unusable_reason(app)
    if found is None or not isinstance(module, EngineModule):
        return found
    if found == module.engine_problem() and module.name in reported_usable():
        return None  # not reachable from here, but a live executor runs it
    return found


def options_problem(
    module: ExecutorModule, options: Mapping[str, Any], *, explicit: bool = True
) -> str | None:
    """What is wrong with the options (a module that takes options has `options_problem`);
    options kept from another module are no one's problem unless given anew."""
    check = getattr(module, "options_problem", None)
    if check is None:
        if explicit and options:
            return f"takes no executor options (got {', '.join(sorted(options))})"
        return None
    result: str | None = check(options)
    return result


def live_executors() -> list[Worker]:
    fresh = utcnow() - timedelta(seconds=settings().lost_after)
    return list(
        db.session.scalars(
            select(Worker).where(
                Worker.kind == "executor",
                Worker.stopped_at.is_(None),
                Worker.heartbeat_at >= fresh,
            )
        )
    )


def reported_usable() -> set[str]:
    """Modules some live executor says it can run."""
    return {
        name
        for w in live_executors()
        for name, why in ((w.info or {}).get(MODULES_KEY) or {}).items()
        if why is None
    }


def unrunnable(app: Application, module: str = "native") -> str | None:
    """Why no live executor can run `app` with `module` now (a page's warning); None when one
    can, or when the executors have not said (an older executor reports no executables)."""
    workers = live_executors()
    if not workers:
        return "No executor is running (none sent a heartbeat lately): jobs wait until one starts."
    modules = [(w, (w.info or {}).get(MODULES_KEY) or {}) for w in workers]
    able = [w for w, known in modules if known.get(module) is None]
    if not able:
        why = sorted({str(known[module]) for _, known in modules if known.get(module)})
        return f"No live executor can use the {module} executor: {'; '.join(why)}."
    if module != "native" or not app.executable:
        return None
    if any(app.executable not in ((w.info or {}).get(MISSING_KEY) or ()) for w in able):
        return None
    hosts = ", ".join(sorted({w.hostname for w in able}))
    return (
        f"{app.executable!r} is not installed on any live executor's host ({hosts}): its jobs "
        "would fail to start. Install it there, or correct the application's executable."
    )
