"""The docker and podman executor modules: one Docker-API implementation, two engines.

Podman is driven through its Docker-compatible API socket (`podman system service`), which
the docker SDK speaks (TESTING.md), so both engines share every line of the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from multiflexi_web.executors import container_options, container_user, engine
from multiflexi_web.executors.active import ActiveRuns
from multiflexi_web.executors.base import (
    AppInfo,
    AttemptGone,
    Cleared,
    JobIO,
    JobSpec,
    Leftover,
    RunResult,
    previous_ended,
)
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION, LABEL_JOB, LABEL_WORKER

if TYPE_CHECKING:  # the docker SDK is imported on first use (container_run imports it)
    from multiflexi_web.executors.container_run import ContainerRun


class ContainerExecutor:
    def __init__(self, kind: engine.EngineKind) -> None:
        self.kind = kind
        self.name = kind.name
        self.description = f"Runs the application's OCI image in a {kind.title} container"
        self._active: ActiveRuns[ContainerRun] = ActiveRuns()

    def unusable_reason(self, app: AppInfo) -> str | None:
        if not app.ociimage:
            return "the application has no OCI image (ociimage)"
        return self.engine_problem()

    def options_problem(self, options: Mapping[str, Any]) -> str | None:
        return container_options.problem(options)

    def engine_problem(self) -> str | None:
        try:
            container_user.configured()
        except ValueError as exc:
            return str(exc)
        return engine.problem(self.kind)

    def run(self, spec: JobSpec, io: JobIO) -> RunResult:
        from docker.errors import DockerException

        from multiflexi_web.executors.container_run import ContainerRun

        address = self.kind.address()
        if address is None:
            return RunResult(None, error=self.kind.not_configured())
        try:
            opts = container_options.parse(spec.options)
            user = container_user.for_job(spec.run_as)
            client = engine.client(self.kind, address)
        except (ValueError, DockerException) as exc:
            return RunResult(None, error=str(exc))
        with self._active.running(ContainerRun(client, spec, io, opts, user, address)) as run:
            return run.run()

    def kill_all(self) -> None:
        self._active.kill_all()

    def leftovers(self, installation: str) -> list[Leftover]:
        """Every container this installation started on the engine (by label), if it answers.
        Another installation's, on a shared engine, are theirs: never listed."""
        address = self.kind.address()
        if address is None or engine.problem(self.kind):
            return []
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        api = engine.client(self.kind, address).api
        mine = [LABEL_JOB, f"{LABEL_INSTALLATION}={installation}"]
        try:
            found = api.containers(all=True, filters={"label": mine})
            leftovers = [lo for c in found if (lo := _leftover(c)) is not None]
            # An ended one's exit code: its job may have ended as its executor died, before
            # the exit was journaled (runner/engines.py records it from this).
            ended = {str(c["Id"]) for c in found if c.get("State") == "exited"}
        except (DockerException, RequestException):
            return []
        return [replace(lo, exit_code=_exit_code(api, lo.ref)) if lo.ref in ended else lo
                for lo in leftovers]  # fmt: skip

    def remove_leftover(self, ref: str) -> None:
        address = self.kind.address()
        if address is not None:
            from multiflexi_web.executors.container_run import remove

            remove(engine.client(self.kind, address).api, ref)

    def clear_attempt(self, spec: JobSpec, io: JobIO) -> Cleared:
        """A retry's previous attempt: its containers on this host's engine, killed and removed
        (a container of a killed executor keeps running until someone removes it), and the
        exit code of one that had ended."""
        address = self.kind.address()
        if address is None or spec.previous_attempt is None:
            return Cleared()  # no engine here: nothing of ours can run on it from this host
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        from multiflexi_web.executors.container_run import remove

        labels = [
            f"{LABEL_JOB}={spec.previous_attempt}",
            f"{LABEL_INSTALLATION}={spec.installation}",
        ]
        try:
            api = engine.client(self.kind, address).api
            listed = api.containers(all=True, filters={"label": labels})
            found = [str(c["Id"]) for c in listed]
            ended = [str(c["Id"]) for c in listed if c.get("State") == "exited"]
            code = _exit_code(api, ended[0]) if ended else None
            if code is not None:
                previous_ended(io, spec.previous_attempt, code)
            for ref in found:
                remove(api, ref)
            if api.containers(all=True, filters={"label": labels}):
                raise AttemptGone(
                    f"{self.kind.title} did not remove job {spec.previous_attempt}'s container"
                )
        except (DockerException, RequestException) as exc:
            raise AttemptGone(
                f"{self.kind.title} cannot list job {spec.previous_attempt}'s containers: {exc}"
            ) from None
        return Cleared(tuple(f"container {ref[:12]}" for ref in found), code)


def _exit_code(api: Any, ref: str) -> int | None:
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        return int(api.inspect_container(ref)["State"]["ExitCode"])
    except (DockerException, RequestException, KeyError, TypeError, ValueError):
        return None  # removed meanwhile, or an answer without it: not known


def _leftover(c: Mapping[str, Any]) -> Leftover | None:
    labels = c.get("Labels") or {}
    job, worker = str(labels.get(LABEL_JOB, "")), str(labels.get(LABEL_WORKER, ""))
    if not job.isdigit():
        return None
    return Leftover(str(c["Id"]), int(job), int(worker) if worker.isdigit() else None)
