"""The Kubernetes objects of one job: its Pod and its Secret, as plain API bodies."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multiflexi_web.executors.base import AppInfo, JobSpec
from multiflexi_web.executors.container_env import container_env
from multiflexi_web.executors.container_labels import LABEL_INSTALLATION, LABEL_JOB, LABEL_WORKER

MAIN, KEEPER, MOUNT = "job", "keeper", "/work"
LABEL = LABEL_JOB  # the containers' label: one name for a job's objects on every engine


def attempt_selector(job_id: int, installation: str) -> str:
    """The label selector of one job's Pod and Secret of one installation."""
    return f"{LABEL}={job_id},{LABEL_INSTALLATION}={installation}"


DAY = 86400
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
RESOURCE_KEYS = frozenset({"requests", "limits"})
# Tenant code: no setuid gains, the runtime's default seccomp filter (root images still run).
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False}
POD_SECURITY = {"seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class Hints:
    """What the module takes from the app's `kubernetes` block (no helm binary is used)."""

    image: str | None = None
    namespace: str | None = None
    resources: dict[str, Any] | None = None
    chart: str | None = None  # helm.chart of an enabled helm block: reported, not deployed


def hints_of(app: AppInfo) -> Hints:
    """Read the block; a malformed hint raises ValueError naming it."""
    block: Mapping[str, Any] = app.kubernetes or {}
    helm: Mapping[str, Any] = block.get("helm") or {}
    if not isinstance(helm, Mapping):
        raise ValueError("kubernetes.helm must be an object")
    namespace = block.get("namespace") or helm.get("namespace") or None
    if namespace is not None and not (isinstance(namespace, str) and DNS_LABEL.match(namespace)):
        raise ValueError(f"kubernetes.namespace {namespace!r} is not a DNS-1123 label")
    resources = block.get("resources")
    if resources is not None and not (
        isinstance(resources, dict) and set(resources) <= RESOURCE_KEYS
    ):
        raise ValueError("kubernetes.resources must be an object with requests and/or limits")
    image = block.get("image")
    if image is not None and not (isinstance(image, str) and image.strip()):
        raise ValueError("kubernetes.image must be an image reference")
    chart = helm.get("chart") if helm.get("enabled") else None
    return Hints(image, namespace, resources, str(chart) if chart else None)


@dataclass(frozen=True)
class PodPlan:
    name: str
    namespace: str
    pod: dict[str, Any]
    secret: dict[str, Any] | None  # None when the job has no secret values


@dataclass(frozen=True)
class PodSettings:
    """What the daemon's configuration adds to a job's Pod."""

    namespace: str
    helper_image: str | None
    start_timeout: float


def plan(
    spec: JobSpec, hints: Hints, cfg: PodSettings, inputs: Mapping[str, bytes] | None = None
) -> PodPlan:
    """The Pod (main container + a `sleep` keeper holding /work readable) and its Secret, which
    carries the secret values and the uploaded input files."""
    name = f"mf-job-{spec.job_id}-{secrets.token_hex(3)}"
    labels = {
        LABEL: str(spec.job_id),
        LABEL_WORKER: str(spec.worker_id or ""),
        LABEL_INSTALLATION: spec.installation,
        "app.kubernetes.io/managed-by": "multiflexi",
    }
    meta = {"name": name, "labels": labels}
    env, stored = _env(spec, name)
    input_mounts = _inputs(inputs or {}, stored)
    # The Pod ends itself even if the daemon never comes back to delete it.
    bound = int((spec.timeout or DAY) + cfg.start_timeout + 600)
    main, keeper = _containers(spec, hints, cfg.helper_image, bound)
    main.update(env=env, volumeMounts=main["volumeMounts"] + input_mounts)
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {}}]
    if input_mounts:
        volumes.append({"name": "inputs", "secret": {"secretName": name, "defaultMode": 0o444}})
    pod_spec = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": bound,
        "terminationGracePeriodSeconds": max(1, int(spec.kill_grace)),
        "automountServiceAccountToken": False,  # a job gets no credentials for the cluster
        "enableServiceLinks": False,  # nor the namespace's service addresses as env
        "volumes": volumes,
        "securityContext": POD_SECURITY,
        "containers": [main, keeper],
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
    return PodPlan(name, hints.namespace or cfg.namespace, pod, _secret(meta, stored))


def _containers(
    spec: JobSpec, hints: Hints, helper: str | None, bound: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's container and the keeper, both with /work mounted."""
    image = hints.image or spec.app.ociimage or ""
    common = {"securityContext": CONTAINER_SECURITY}
    work = [{"name": "work", "mountPath": MOUNT}]
    main: dict[str, Any] = {"name": MAIN, "image": image, "command": list(spec.argv), **common}
    main.update(workingDir=MOUNT, volumeMounts=work)
    if hints.resources:
        main["resources"] = hints.resources
    sleep = ["sleep", str(bound)]
    keeper: dict[str, Any] = {"name": KEEPER, "image": helper or image, "command": sleep}
    keeper.update(common, volumeMounts=work)
    return main, keeper


def _secret(meta: dict[str, Any], stored: dict[str, bytes]) -> dict[str, Any] | None:
    if not stored:
        return None
    data = {k: base64.b64encode(v).decode() for k, v in stored.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def _inputs(inputs: Mapping[str, bytes], stored: dict[str, bytes]) -> list[dict[str, Any]]:
    """Each input file into the Secret, mounted read-only at its place under /work."""
    mounts = []
    for i, (rel, content) in enumerate(sorted(inputs.items())):
        key = f"multiflexi-input-{i}"
        stored[key] = content
        path = f"{MOUNT}/{rel}"
        mounts.append({"name": "inputs", "mountPath": path, "subPath": key, "readOnly": True})
    return mounts


def _env(spec: JobSpec, secret_name: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Env entries for the main container; secret values only as references into the Secret."""
    entries: list[dict[str, Any]] = []
    stored: dict[str, bytes] = {}
    for i, (key, value) in enumerate(sorted(container_env(spec, MOUNT).items())):
        if key not in spec.secret_keys:
            entries.append({"name": key, "value": value})
            continue
        data_key = key if SECRET_KEY.match(key) else f"multiflexi-value-{i}"
        stored[data_key] = value.encode()
        ref = {"secretKeyRef": {"name": secret_name, "key": data_key}}
        entries.append({"name": key, "valueFrom": ref})
    return entries, stored
