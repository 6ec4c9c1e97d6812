"""Azure executor module: one Azure Container Instances container group per job."""

# See docs/executors.md. The Azure SDK is imported only where a job or a check needs it.

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import time
from typing import Any

from multiflexi_web.config import ConfigError
from multiflexi_web.executors import sdk
from multiflexi_web.executors.active import ActiveRuns
from multiflexi_web.executors.azure_auth import AzureSettings, credential
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
from multiflexi_web.executors.container_env import container_env, input_files
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION, LABEL_JOB, LABEL_WORKER

log = logging.getLogger("multiflexi.executor.azure")
CONTAINER = "job"
MOUNT = "/tmp"  # noqa: S108 - MULTIFLEXI_TMP inside the container: ACI mounts nothing of the daemon's
DELETE_WAIT = 10.0  # seconds a finished job waits for its group's deletion to complete
GONE_WAIT = 120.0  # seconds a retry waits for its previous attempt's group to be deleted
ENDED = frozenset({"Succeeded", "Failed", "Stopped"})  # a group's instance-view states


class AzureExecutor:
    name = "azure"
    description = "Runs the application's OCI image in Azure Container Instances"

    def __init__(self) -> None:
        self._active: ActiveRuns[GroupRun] = ActiveRuns()
        # The engine watch's client, kept: a new one per pass would sign in again each time.
        self._sweeper: tuple[AzureSettings, Any] | None = None

    def unusable_reason(self, app: AppInfo) -> str | None:
        if not app.ociimage:
            return "the application has no OCI image (ociimage)"
        try:
            AzureSettings.load()
            credential()
        except ConfigError as exc:
            return str(exc)
        return None

    def run(self, spec: JobSpec, io: JobIO) -> RunResult:
        refusal = _refusal(spec)
        if refusal:
            return RunResult(None, error=f"azure: {refusal}")
        try:
            cfg = AzureSettings.load()
            client = _client(cfg)
        except ConfigError as exc:
            return RunResult(None, error=f"azure: {exc}")
        with client, self._active.running(GroupRun(client, cfg, spec, io)) as run:
            return run.run()

    # -- EngineModule: availability, leftovers (runner/engines.py), hard stop ----------------------
    def engine_problem(self) -> str | None:
        """Not configured here (the subscription and resource group); credentials are checked
        by their first use."""
        try:
            AzureSettings.load()
        except ConfigError as exc:
            return str(exc)
        return None

    def leftovers(self, installation: str) -> list[Leftover]:
        """This installation's container groups in the resource group, one list request; the
        exit code of one about to be removed is read then (a list omits instance views)."""
        if self.engine_problem() is not None:
            return []  # first: a host without Azure never loads its SDK
        sdk.load(sdk.AZURE)
        from azure.core.exceptions import AzureError

        try:
            cfg, client = self._sweep_client()
            groups = list(
                client.container_groups.list_by_resource_group(
                    cfg.resource_group, **cfg.call_options
                )
            )
        except (AzureError, ConfigError) as exc:
            log.warning("action=aci_leftovers_failed error=%s", _message(exc))
            return []
        found = []
        for g in groups:
            tags = g.tags or {}
            job, worker = str(tags.get(LABEL_JOB, "")), str(tags.get(LABEL_WORKER, ""))
            if tags.get(LABEL_INSTALLATION) != installation or not job.isdigit():
                continue
            found.append(Leftover(
                g.name, int(job), int(worker) if worker.isdigit() else None,
                read_exit=functools.partial(self._exit_code, g.name),
            ))  # fmt: skip
        return found

    def _exit_code(self, name: str) -> int | None:
        sdk.load(sdk.AZURE)
        from azure.core.exceptions import AzureError

        try:
            cfg, client = self._sweep_client()
            group = client.container_groups.get(cfg.resource_group, name, **cfg.call_options)
        except (AzureError, ConfigError):
            return None
        state = _current_state(group)
        if state is None or state.state != "Terminated" or state.exit_code is None:
            return None
        return int(state.exit_code)

    def remove_leftover(self, ref: str) -> None:
        sdk.load(sdk.AZURE)
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            cfg, client = self._sweep_client()
            poller = client.container_groups.begin_delete(
                cfg.resource_group, ref, **cfg.call_options
            )
            poller.wait(DELETE_WAIT)
        except ResourceNotFoundError:
            pass
        except (AzureError, ConfigError) as exc:
            log.warning("action=aci_delete_failed group=%s error=%s", ref, _message(exc))

    def kill_all(self) -> None:
        """The daemon's second SIGTERM: every group this executor runs deleted at once."""
        self._active.kill_all()

    def _sweep_client(self) -> tuple[AzureSettings, Any]:
        cfg = AzureSettings.load()
        if self._sweeper is None or self._sweeper[0] != cfg:
            self._sweeper = (cfg, _client(cfg))
        return self._sweeper

    def clear_attempt(self, spec: JobSpec, io: JobIO) -> Cleared:
        """A retry's previous attempt: its container group (a killed executor leaves it
        running) deleted, and the deletion waited for, since that is how ACI stops it; with
        the exit code of its container if that had terminated."""
        sdk.load(sdk.AZURE)
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        if spec.previous_attempt is None:
            return Cleared()
        try:
            cfg = AzureSettings.load()
            client = _client(cfg)
        except ConfigError as exc:
            raise AttemptGone(f"azure: {exc}") from None
        tags = {LABEL_JOB: str(spec.previous_attempt), LABEL_INSTALLATION: spec.installation}
        groups: list[str] = []
        code: int | None = None
        with client:
            try:
                found = client.container_groups.list_by_resource_group(
                    cfg.resource_group, **cfg.call_options
                )
                groups = [g.name for g in found if tags.items() <= (g.tags or {}).items()]
                for name in groups:
                    # A list omits instance views: the group's own read has its container's.
                    group = client.container_groups.get(
                        cfg.resource_group, name, **cfg.call_options
                    )
                    state = _current_state(group)
                    if code is None and state is not None and state.state == "Terminated":
                        code = None if state.exit_code is None else int(state.exit_code)
                        if code is not None:
                            previous_ended(io, spec.previous_attempt, code)
                    poller = client.container_groups.begin_delete(
                        cfg.resource_group, name, **cfg.call_options
                    )
                    poller.wait(GONE_WAIT)
                    if not poller.done():
                        raise AttemptGone(
                            f"azure: job {spec.previous_attempt}'s container group {name} was"
                            f" not deleted within {GONE_WAIT:.0f} s"
                        )
                    with contextlib.suppress(ResourceNotFoundError):  # deleted meanwhile
                        poller.result()
            except AzureError as exc:
                raise AttemptGone(f"azure API: {_message(exc)}") from None
        return Cleared(tuple(f"container group {name}" for name in groups), code)


def _refusal(spec: JobSpec) -> str | None:
    if "RESULT_FILE" in spec.env:
        return "RESULT_FILE is not supported: Azure Container Instances cannot copy files out"
    inputs = input_files(spec.workdir)
    return f"input files are not supported: {inputs}" if inputs else None


def _client(cfg: AzureSettings) -> Any:
    sdk.load(sdk.AZURE)
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

    return ContainerInstanceManagementClient(
        credential(), cfg.subscription, base_url=cfg.base_url, polling_interval=cfg.poll
    )


def group_body(spec: JobSpec, cfg: AzureSettings) -> Any:
    """The container group: restart policy Never, secret values only as secure values."""
    sdk.load(sdk.AZURE)
    from azure.mgmt.containerinstance import models as m

    env = [
        m.EnvironmentVariable(name=k, secure_value=v)
        if k in spec.secret_keys
        else m.EnvironmentVariable(name=k, value=v)
        for k, v in sorted(container_env(spec, MOUNT).items())
    ]
    resources = m.ResourceRequirements(
        requests=m.ResourceRequests(memory_in_gb=cfg.memory_gb, cpu=cfg.cpu)
    )
    container = m.Container(
        name=CONTAINER,
        image=spec.app.ociimage or "",
        command=list(spec.argv),
        environment_variables=env,
        resources=resources,
    )
    tags = {
        LABEL_JOB: str(spec.job_id),
        LABEL_WORKER: str(spec.worker_id or ""),
        LABEL_INSTALLATION: spec.installation,
    }
    return m.ContainerGroup(
        location=cfg.location,
        containers=[container],
        os_type="Linux",
        restart_policy="Never",
        tags=tags,
    )


class GroupRun:
    """One container group from creation to deletion; it is deleted whatever happens."""

    def __init__(self, client: Any, cfg: AzureSettings, spec: JobSpec, io: JobIO) -> None:
        self.client, self.cfg, self.spec, self.io = client, cfg, spec, io
        self.name = f"mf-job-{spec.job_id}-{secrets.token_hex(3)}"
        self.opts = cfg.call_options
        self.t0 = time.monotonic()
        self.logged = ""
        self.deleted = False

    def run(self) -> RunResult:
        sdk.load(sdk.AZURE)
        from azure.core.exceptions import AzureError

        try:
            try:
                result = self._provision() or self._supervise()
            except AzureError as exc:
                result = RunResult(None, error=f"azure API: {_message(exc)}")
            # Journaled before the group, ACI's record of the exit, is deleted: a kill in
            # between leaves one or the other (a retry's fence reads the container's exit code).
            self.io.ended(result)
            return result
        finally:
            self._delete()

    def _provision(self) -> RunResult | None:
        """Create the group and wait for its provisioning (ACI pulls the image meanwhile, which
        may take minutes): stop requests are heard, and so the job's heartbeat goes on."""
        groups = self.client.container_groups
        body = group_body(self.spec, self.cfg)
        rg = self.cfg.resource_group
        poller = groups.begin_create_or_update(rg, self.name, body, **self.opts)
        self.io.started(container_id=self.name)
        while not poller.done():
            if (stop := self._stop_requested()) is not None:
                return stop
            if (waited := time.monotonic() - self.t0) >= self.cfg.start_timeout:
                return RunResult(None, error=f"the group was not provisioned within {waited:.0f} s")
            poller.wait(self.cfg.poll)
        poller.result()  # a failed provisioning raises, with ARM's message
        return None

    def _supervise(self) -> RunResult:
        while True:
            stop = self._stop_requested()
            if stop is not None:
                return stop
            group = self.client.container_groups.get(
                self.cfg.resource_group, self.name, **self.opts
            )
            result = self._step(group)
            if result is not None:
                return result
            time.sleep(self.cfg.poll)

    def _step(self, group: Any) -> RunResult | None:
        """What one read of the group says: the result, or None while the job goes on."""
        state = _current_state(group)
        if state is not None and state.state == "Terminated":
            self._logs()
            return _exit_of(state)
        if (problem := _ended_without_exit(group)) is not None:
            self._logs()
            return RunResult(None, error=problem)
        if state is not None and state.state == "Running":
            self._logs()
        elif (waited := time.monotonic() - self.t0) >= self.cfg.start_timeout:
            why = _last_event(group) or "still waiting"
            error = f"the container did not start within {waited:.0f} s: {why}"
            return RunResult(None, error=error)
        return None

    def _stop_requested(self) -> RunResult | None:
        timeout = self.spec.timeout
        timed_out = timeout is not None and time.monotonic() - self.t0 >= timeout
        if not timed_out and not self.io.should_stop():
            return None
        self._delete()
        return RunResult(None, timed_out=timed_out, cancelled=not timed_out)

    def _logs(self) -> None:
        """ACI serves the whole log so far (stdout and stderr merged): hand on what is new."""
        logs = self.client.containers.list_logs(
            self.cfg.resource_group, self.name, CONTAINER, **self.opts
        )
        content = logs.content or ""
        # ACI keeps only the log's tail: once it moved beyond what was handed on, hand on all.
        new = content[len(self.logged) :] if content.startswith(self.logged) else content
        if new:
            self.io.output("stdout", new.encode())
        self.logged = content

    def kill(self) -> None:
        """No grace (the daemon's second SIGTERM): deleting the group is how ACI stops it."""
        self._delete()

    def _delete(self) -> None:
        sdk.load(sdk.AZURE)
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        if self.deleted:
            return
        self.deleted = True
        try:
            groups = self.client.container_groups
            poller = groups.begin_delete(self.cfg.resource_group, self.name, **self.opts)
            # Accepted is enough: ARM finishes on its own, and the job's finish (its heartbeat
            # paused meanwhile) must not wait long for that.
            poller.wait(DELETE_WAIT)
            if poller.done():
                poller.result()  # a failed deletion raises
        except ResourceNotFoundError:
            pass
        except AzureError as exc:  # a leftover: tagged multiflexi.job=<id> for a sweep
            log.warning("action=aci_delete_failed group=%s error=%s", self.name, _message(exc))


def _current_state(group: Any) -> Any:
    view = group.containers[0].instance_view if group.containers else None
    return view.current_state if view is not None else None


def _exit_of(state: Any) -> RunResult:
    """Upstream returned the exit code of its last `az` command; this is the container's own."""
    if state.exit_code is None:
        return RunResult(None, error="the container terminated without an exit code")
    return RunResult(int(state.exit_code))


def _last_event(group: Any) -> str | None:
    """The newest event message of the group or its container (e.g. a failed image pull)."""
    views = [group.instance_view] + [c.instance_view for c in group.containers or []]
    messages = [e.message for v in views if v is not None for e in v.events or [] if e.message]
    return messages[-1] if messages else None


def _ended_without_exit(group: Any) -> str | None:
    """The group is over (or failed to provision) but its container never reported an exit."""
    view = group.instance_view
    state = view.state if view is not None else None
    if state not in ENDED and group.provisioning_state != "Failed":
        return None
    event = _last_event(group)
    detail = f": {event}" if event else ""
    return (
        f"the container group ended ({state or group.provisioning_state}) without an exit{detail}"
    )


def _message(exc: Any) -> str:
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", "") or exc).splitlines()[0]
    return f"{status} {text}" if status else text
