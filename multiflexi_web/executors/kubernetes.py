"""Kubernetes executor module: a bare one-shot Pod per job (docs/executors.md)."""

# The kubernetes client is imported only where a job or a check needs it: the executor daemon
# of a native-only installation never loads it.

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from multiflexi_web.config import ConfigError
from multiflexi_web.executors import k8s_files, sdk
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
from multiflexi_web.executors.container_env import input_files
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION, LABEL_WORKER
from multiflexi_web.executors.k8s_config import K8sSettings, api_client, not_configured
from multiflexi_web.executors.k8s_objects import (
    LABEL,
    MAIN,
    PodPlan,
    PodSettings,
    attempt_selector,
    hints_of,
    plan,
)

log = logging.getLogger("multiflexi.executor.kubernetes")
# Waiting reasons that never resolve by waiting; the others get MULTIFLEXI_K8S_START_TIMEOUT.
HOPELESS = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})
LOG_GRACE = 30.0  # after the container ended, how long its log stream may take to close
INPUT_MAX = 512 * 1024  # uploaded files travel in the job's Secret (1 MiB, base64 inside)
OUTAGE_GRACE = 60.0  # how long status reads may fail (5xx, no connection) before the job does
GONE_WAIT = 60.0  # after the grace, how long a retry waits for its previous attempt's Pod to go


class KubernetesExecutor:
    name = "kubernetes"
    description = "Runs the application's OCI image as a one-shot Kubernetes Pod"

    def __init__(self) -> None:
        self._active: ActiveRuns[PodRun] = ActiveRuns()

    def unusable_reason(self, app: AppInfo) -> str | None:
        try:
            hints = hints_of(app)
            if not (hints.image or app.ociimage):
                return "the application has no OCI image (ociimage)"
            api_client(K8sSettings.load()).close()
        except (ValueError, ConfigError) as exc:
            return str(exc)
        return None

    def run(self, spec: JobSpec, io: JobIO) -> RunResult:
        try:
            inputs = _read_inputs(spec)
            cfg = K8sSettings.load()
            hints = hints_of(spec.app)
            client = api_client(cfg)
        except (ValueError, ConfigError, OSError) as exc:
            return RunResult(None, error=f"kubernetes: {exc}")
        settings = PodSettings(cfg.namespace, cfg.helper_image, cfg.start_timeout)
        pod = plan(spec, hints, settings, inputs)
        if hints.chart:
            note = f"multiflexi: helm chart {hints.chart} is not deployed by this module\n"
            io.output("stderr", note.encode())
        # One client per job: the exec stream API swaps the client's call_api meanwhile.
        with client, self._active.running(PodRun(client, cfg, spec, io, pod)) as run:
            return run.run()

    # -- EngineModule: availability, leftovers (runner/engines.py), hard stop ----------------------
    def engine_problem(self) -> str | None:
        try:
            return not_configured(K8sSettings.load())
        except ConfigError as exc:
            return str(exc)

    def leftovers(self, installation: str) -> list[Leftover]:
        """This installation's Pods in the configured namespace (a Pod in an app's own namespace
        is found by its retry's fence only), with the job container's exit code if it ended. A
        killed executor leaves them, and their Secrets, running or completed: nothing in
        Kubernetes deletes a bare Pod."""
        if self.engine_problem() is not None:
            return []  # first: a host without a cluster never loads the client (~30 MiB)
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            cfg = K8sSettings.load()
            with api_client(cfg) as client:
                core: Any = CoreV1Api(client)  # its answers as plain attributes, as in PodRun
                selector = f"{LABEL_INSTALLATION}={installation}"
                pods = core.list_namespaced_pod(cfg.namespace, label_selector=selector).items
        except (ApiException, HTTPError, ConfigError) as exc:
            log.warning("action=k8s_leftovers_failed error=%s", exc)
            return []
        found = []
        for pod in pods:
            labels = pod.metadata.labels or {}
            job, worker = str(labels.get(LABEL, "")), str(labels.get(LABEL_WORKER, ""))
            if not job.isdigit():
                continue
            state = _main_state(pod)
            ended = state.terminated if state is not None else None
            found.append(Leftover(
                f"{pod.metadata.namespace or cfg.namespace}/{pod.metadata.name}",
                int(job),
                int(worker) if worker.isdigit() else None,
                int(ended.exit_code) if ended is not None else None,
            ))  # fmt: skip
        return found

    def remove_leftover(self, ref: str) -> None:
        """Delete a leftover Pod (`namespace/name`) and its Secret, which has its name."""
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        namespace, _, name = ref.partition("/")
        try:
            with api_client(K8sSettings.load()) as client:
                core: Any = CoreV1Api(client)
                _delete_gone_ok(core.delete_namespaced_pod, name, namespace, 1)
                _delete_gone_ok(core.delete_namespaced_secret, name, namespace, 0)
        except (ApiException, HTTPError, ConfigError) as exc:
            log.warning("action=k8s_delete_failed pod=%s error=%s", ref, exc)

    def kill_all(self) -> None:
        """The daemon's second SIGTERM: every Pod this executor runs deleted at once."""
        self._active.kill_all()

    def clear_attempt(self, spec: JobSpec, io: JobIO) -> Cleared:
        """A retry's previous attempt: its Pod (which a killed executor leaves running: nothing
        in Kubernetes ends a Pod when its creator dies) deleted with the kill grace, waited for
        until the API no longer has it (the kubelet stopped its containers), and its Secret;
        with the exit code of its job container if that had ended."""
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if spec.previous_attempt is None:
            return Cleared()
        try:
            cfg = K8sSettings.load()
            namespace = hints_of(spec.app).namespace or cfg.namespace
            client = api_client(cfg)
        except (ValueError, ConfigError) as exc:
            raise AttemptGone(f"kubernetes: {exc}") from None
        selector = attempt_selector(spec.previous_attempt, spec.installation)
        grace = max(1, int(spec.kill_grace))
        with client:
            core: Any = CoreV1Api(client)
            try:
                listed = core.list_namespaced_pod(namespace, label_selector=selector).items
                pods = [p.metadata.name for p in listed]
                ended = [s.terminated for p in listed if (s := _main_state(p)) and s.terminated]
                code = int(ended[0].exit_code) if ended else None
                if code is not None:
                    previous_ended(io, spec.previous_attempt, code)
                for name in pods:
                    _delete_gone_ok(core.delete_namespaced_pod, name, namespace, grace)
                deadline = time.monotonic() + grace + GONE_WAIT
                while core.list_namespaced_pod(namespace, label_selector=selector).items:
                    if time.monotonic() >= deadline:
                        raise AttemptGone(
                            f"kubernetes: job {spec.previous_attempt}'s Pod is still there"
                            f" {grace + GONE_WAIT:.0f} s after its delete"
                        )
                    time.sleep(cfg.poll)
                for s in core.list_namespaced_secret(namespace, label_selector=selector).items:
                    _delete_gone_ok(core.delete_namespaced_secret, s.metadata.name, namespace, 0)
            except ApiException as exc:
                raise AttemptGone(f"kubernetes API: {_api_error(exc)}") from None
            except HTTPError as exc:
                raise AttemptGone(f"kubernetes API unreachable: {exc}") from None
        return Cleared(tuple(f"pod {namespace}/{name}" for name in pods), code)


def _delete_gone_ok(method: Any, name: str, namespace: str, grace: int) -> None:
    sdk.load(sdk.KUBERNETES)
    from kubernetes.client.exceptions import ApiException

    try:
        method(name, namespace, grace_period_seconds=grace)
    except ApiException as exc:
        if exc.status != 404:  # deleted meanwhile: gone is what we want
            raise


def _read_inputs(spec: JobSpec) -> dict[str, bytes]:
    """The uploaded input files, for the job's Secret (which Kubernetes caps at 1 MiB)."""
    names = input_files(spec.workdir)
    sizes = sum((spec.workdir / n).stat().st_size for n in names)
    if sizes > INPUT_MAX:
        kib = f"{sizes // 1024} KiB"
        raise ValueError(f"input files of {kib} pass the {INPUT_MAX // 1024} KiB a Secret holds")
    return {n: (spec.workdir / n).read_bytes() for n in names}


class PodRun:
    """One Pod from creation to deletion; the objects are deleted whatever happens."""

    def __init__(self, client: Any, cfg: K8sSettings, spec: JobSpec, io: JobIO, p: PodPlan):
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client import CoreV1Api

        self.core: Any = CoreV1Api(client)  # bodies go as plain dicts, which the client takes
        self.cfg, self.spec, self.io, self.p = cfg, spec, io, p
        self.t0 = time.monotonic()
        self.logs: k8s_files.LogFollower | None = None
        self.pod_deleted = False
        self.failing_since: float | None = None

    def run(self) -> RunResult:
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            try:
                self._create()
                result = self._supervise()
            except ApiException as exc:
                result = RunResult(None, error=f"kubernetes API: {_api_error(exc)}")
            except HTTPError as exc:
                result = RunResult(None, error=f"kubernetes API unreachable: {exc}")
            self._drain(0)
            # Journaled before the Pod, the cluster's record of the exit, is deleted: a kill
            # in between leaves one or the other (a retry's fence reads the Pod's exit code).
            self.io.ended(result)
            return result
        finally:
            self._drain(0)
            self._delete()

    def _create(self) -> None:
        if self.p.secret is not None:
            self.core.create_namespaced_secret(self.p.namespace, self.p.secret)
        self.core.create_namespaced_pod(self.p.namespace, self.p.pod)
        self.io.started(container_id=f"{self.p.namespace}/{self.p.name}")

    def _supervise(self) -> RunResult:
        while True:
            stop = self._stop_requested()
            if stop is not None:
                return stop
            pod = self._read_pod()
            if pod is None:
                self._drain(self.cfg.poll)
                continue
            state = _main_state(pod)
            if state is not None and state.terminated is not None:
                return self._finish(state.terminated)
            if state is not None and state.running is not None:
                self._follow()
            elif (problem := self._start_problem(pod)) is not None:
                return RunResult(None, error=problem)
            self._drain(self.cfg.poll)

    def _read_pod(self) -> Any:
        """The Pod, or None while the API is briefly away (a blip must not fail a long job)."""
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            pod = self.core.read_namespaced_pod(self.p.name, self.p.namespace)
        except (ApiException, HTTPError) as exc:
            if isinstance(exc, ApiException) and 0 < (exc.status or 0) < 500:
                raise
            now = time.monotonic()
            self.failing_since = self.failing_since or now
            if now - self.failing_since >= OUTAGE_GRACE:
                raise
            log.warning("action=k8s_read_failed pod=%s error=%s", self.p.name, exc)
            return None
        self.failing_since = None
        return pod

    def _timed_out(self) -> bool:
        timeout = self.spec.timeout
        return timeout is not None and time.monotonic() - self.t0 >= timeout

    def _stopping(self) -> bool:
        """Asked often: it is also what beats the job's heartbeat (JobIO.should_stop)."""
        return self.io.should_stop() or self._timed_out()

    def _stop_requested(self) -> RunResult | None:
        timed_out = self._timed_out()
        if not timed_out and not self.io.should_stop():
            return None
        self._delete_pod()
        return RunResult(None, timed_out=timed_out, cancelled=not timed_out)

    def _start_problem(self, pod: Any) -> str | None:
        """Why the main container is not running (None: keep waiting)."""
        status = pod.status
        if status is not None and status.phase in ("Failed", "Succeeded"):
            return f"the pod ended without running the job: {status.reason}: {status.message}"
        reason, hopeless = _waiting_reason(pod)
        waited = time.monotonic() - self.t0
        if hopeless or waited >= self.cfg.start_timeout:
            return f"the pod did not start within {waited:.0f} s: {reason or 'still Pending'}"
        return None

    def _follow(self) -> k8s_files.LogFollower:
        if self.logs is None:
            self.logs = k8s_files.LogFollower(self.core, self.p.name, self.p.namespace)
        return self.logs

    def _drain(self, wait: float) -> None:
        """Hand streamed log chunks to the job (stdout: the log API merges both streams)."""
        if self.logs is None:
            time.sleep(wait)  # nothing to wait on before the container runs: poll the Pod
            return
        for chunk in self.logs.drain(wait):
            self.io.output("stdout", chunk)

    def _finish(self, terminated: Any) -> RunResult:
        logs = self.logs or self._follow()  # a job that ended between two polls: whole log
        deadline = time.monotonic() + LOG_GRACE
        while not logs.done.is_set() and time.monotonic() < deadline:
            if (stop := self._stop_requested()) is not None:
                return stop
            self._drain(min(self.cfg.poll, 1.0))
        code = int(terminated.exit_code)
        for note in (logs.error, _unusual(terminated.reason)):
            if note:
                self.io.output("stderr", f"multiflexi: {note}\n".encode())
        try:
            k8s_files.copy_out(
                self.core, self.p.name, self.p.namespace, self.spec.workdir,
                self.cfg.copy_max_mb, self._stopping,
            )  # fmt: skip
        except k8s_files.CopyStopped:
            return self._stop_requested() or RunResult(code, cancelled=True)
        except Exception as exc:  # the job's result files are lost: say why
            return RunResult(code, error=f"result files could not be copied out: {exc}")
        return RunResult(code)

    def _delete_pod(self, grace: int | None = None) -> None:
        if not self.pod_deleted:
            self.pod_deleted = True
            grace = max(1, int(self.spec.kill_grace)) if grace is None else grace
            self._delete_quietly(self.core.delete_namespaced_pod, grace)

    def kill(self) -> None:
        """No grace (the daemon's second SIGTERM); the job's thread then finds it stopping."""
        self._delete_pod(grace=1)

    def _delete(self) -> None:
        self._delete_pod()
        if self.p.secret is not None:
            self._delete_quietly(self.core.delete_namespaced_secret, 0)

    def _delete_quietly(self, method: Any, grace: int) -> None:
        sdk.load(sdk.KUBERNETES)
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            method(self.p.name, self.p.namespace, grace_period_seconds=grace)
        except (ApiException, HTTPError) as exc:
            if getattr(exc, "status", None) != 404:  # a leftover, labelled for a sweep
                log.warning("action=k8s_delete_failed pod=%s error=%s", self.p.name, exc)


def _unusual(reason: str | None) -> str | None:
    return None if reason in (None, "Completed", "Error") else f"the container ended: {reason}"


def _main_state(pod: Any) -> Any:
    for cs in (pod.status and pod.status.container_statuses) or []:
        if cs.name == MAIN:
            return cs.state
    return None


def _waiting_reason(pod: Any) -> tuple[str | None, bool]:
    """The scheduler's or the kubelet's reason a Pod is stuck, and whether it is hopeless."""
    for cond in (pod.status and pod.status.conditions) or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"unschedulable: {cond.message or cond.reason}", False
    for cs in (pod.status and pod.status.container_statuses) or []:
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason not in (None, "ContainerCreating"):
            text = f"container {cs.name}: {waiting.reason}: {waiting.message or ''}".rstrip(": ")
            return text, waiting.reason in HOPELESS
    return None, False


def _api_error(exc: Any) -> str:
    with contextlib.suppress(ValueError, TypeError):
        return f"{exc.status} {json.loads(exc.body).get('message', exc.reason)}"
    return f"{exc.status} {exc.reason}"
