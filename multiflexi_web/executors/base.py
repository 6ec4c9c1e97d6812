"""The executor-module interface. Modules take and return plain frozen dataclasses and never
touch the database; the executor daemon translates between them and the job rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from multiflexi_web.models import Application


@dataclass(frozen=True)
class AppInfo:
    """What a module needs to know to say whether it can run an application."""

    name: str
    executable: str
    ociimage: str | None
    kubernetes: Mapping[str, Any] | None = None  # the app JSON's `kubernetes` block

    @classmethod
    def of(cls, app: Application) -> AppInfo:
        return cls(
            name=app.name,
            executable=app.executable,
            ociimage=app.ociimage or None,
            kubernetes=app.kubernetes or None,
        )


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user a job runs as when the daemon can switch users."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class JobSpec:
    """A job, fully resolved: what to run, with which environment, where."""

    job_id: int
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: Path
    app: AppInfo
    timeout: float | None = None
    kill_grace: float = 10.0
    secret_keys: frozenset[str] = frozenset()
    options: dict[str, Any] = field(default_factory=dict)
    run_as: RunAs | None = None  # None: the daemon's own user (see docs/security.md)
    worker_id: int | None = None  # the executor running it (container modules label with it)
    installation: str = ""  # whose job it is (models/installation.py; labelled with it too)
    previous_attempt: int | None = None  # a retry: the job id of the attempt it replaces


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None


class JobIO(Protocol):
    """The daemon's side of a running job, handed to the module."""

    def started(self, pid: int | None = None, container_id: str | None = None) -> None: ...

    def output(self, stream: str, data: bytes) -> None: ...

    def should_stop(self) -> bool:
        """True once the job was cancelled or the daemon must stop it."""
        ...

    def ended(self, result: RunResult) -> None:
        """The job's process ended and its output is drained; called before the module reaps
        it (the daemon journals the exit first: see runner/guard.py). Optional for a module:
        the daemon does the same after run() returns."""
        ...


class ExecutorModule(Protocol):
    name: str
    description: str

    def unusable_reason(self, app: AppInfo) -> str | None:
        """Why it cannot run the app (None when it can); checked when a template is saved."""
        ...

    def run(self, spec: JobSpec, io: JobIO) -> RunResult: ...


@dataclass(frozen=True)
class Leftover:
    """Something a module left on its engine for a job (e.g. a container), found by label."""

    ref: str
    job_id: int
    worker_id: int | None
    exit_code: int | None = None  # it ended with this (None: still running, or not known)
    # Reads the exit code when the listing has none (a request per object: asked only for a
    # leftover about to be removed); None: exit_code is all there is to know.
    read_exit: Callable[[], int | None] | None = field(default=None, compare=False)


@runtime_checkable
class EngineModule(Protocol):
    """Optional: a module driving an engine that may be absent and may keep leftovers after a
    crash. The executor reports engine_problem() on its worker row, removes the leftovers of
    jobs that are not running (runner/engines.py) and calls kill_all() on a hard stop."""

    def engine_problem(self) -> str | None:
        """Why this host cannot run the module at all (not configured, unreachable), or None."""
        ...

    def leftovers(self, installation: str) -> list[Leftover]: ...

    def remove_leftover(self, ref: str) -> None: ...

    def kill_all(self) -> None:
        """The daemon's second SIGTERM: kill every job this module runs, without grace."""
        ...


class AttemptGone(RuntimeError):
    """A retry's previous attempt could not be shown to be gone: the retry must not start."""


@dataclass(frozen=True)
class Cleared:
    """What a module removed of a retry's previous attempt."""

    removed: tuple[str, ...] = ()  # what was removed, named for the job's stderr and the log
    # The previous attempt's job container had ended with this exit code (None: it was still
    # running, or never ran): its work was done, so the retry records it instead of running.
    exit_code: int | None = None


@runtime_checkable
class AttemptFence(Protocol):
    """Optional: a module whose jobs run outside the executor's process tree (an engine, a
    cluster, a cloud), where they can outlive a killed executor. Before a retry starts, the
    executor has the module stop and remove what still runs of the attempt it replaces
    (SPEC §16: never start a job whose previous attempt may still be running)."""

    def clear_attempt(self, spec: JobSpec, io: JobIO) -> Cleared:
        """Remove every object of `spec.previous_attempt` of `spec.installation` and return
        once they are gone; raise AttemptGone when that cannot be known. If the previous
        attempt's job container had ended, call `previous_ended(io, ...)` before removing
        anything: the object is the only record of that exit until the retry journals it."""
        ...


def previous_ended(io: JobIO, previous: int, code: int) -> None:
    """The previous attempt's job container had ended (its executor died before recording
    it): its exit is the retry's result, handed over (journaled) before the object goes, so an
    executor killed during the removal leaves the journal entry and no job runs the work again."""
    note = (
        f"multiflexi: job {previous}'s container had ended with exit code {code} as its"
        " executor died: recorded here, not run again\n"
    )
    io.output("stderr", note.encode())
    io.ended(RunResult(code))
