"""deploy/k8s builds offline with `kubectl kustomize`, and every document is a valid object of
the kubernetes client's models: Deployments for the daemons, a Service for the portal."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
COMMANDS = {"portal", "scheduler", "executor", "eventor", "migrate"}  # deploy/entrypoint.sh


def _model(doc: dict[str, Any]) -> Any:
    kind = f"V1{doc['kind']}"
    assert hasattr(client, kind), f"no model for {doc['apiVersion']} {doc['kind']}"
    obj = client.ApiClient().deserialize(json.dumps(doc), kind, "application/json")
    # The model drops what it does not know: a misspelt field shows as a difference.
    assert _clean(client.ApiClient().sanitize_for_serialization(obj)) == _clean(doc)
    return obj


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], Any]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its `kustomize` builds the manifests offline)")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): _model(d) for d in docs}


def test_every_daemon_is_a_deployment_of_the_one_image(objects: dict[tuple[str, str], Any]) -> None:
    replicas = {}
    for (kind, _name), obj in objects.items():
        if kind != "Deployment":
            continue
        spec = obj.spec
        assert spec.selector.match_labels.items() <= spec.template.metadata.labels.items()
        pod = spec.template.spec
        assert pod.security_context.run_as_non_root is True
        (container,) = pod.containers
        assert container.image == "multiflexi:latest" and container.args[0] in COMMANDS
        assert container.security_context.allow_privilege_escalation is False
        sources = {(e.config_map_ref or e.secret_ref).name for e in container.env_from}
        assert sources == {"multiflexi-config", "multiflexi-keys"}
        mounts = {m.mount_path for m in container.volume_mounts}
        assert "/var/lib/multiflexi/artifacts" in mounts
        replicas[container.args[0]] = spec.replicas
        assert obj.metadata.namespace == "multiflexi"
    assert replicas == {"portal": 2, "scheduler": 2, "executor": 2, "eventor": 1}


def test_the_portal_service_selects_the_portal_pods(objects: dict[tuple[str, str], Any]) -> None:
    service = objects[("Service", "multiflexi-portal")]
    portal = objects[("Deployment", "multiflexi-portal")]
    assert service.spec.selector.items() <= portal.spec.template.metadata.labels.items()
    (port,) = service.spec.ports
    (container,) = portal.spec.template.spec.containers
    assert port.target_port in {p.name for p in container.ports}
    assert container.readiness_probe.http_get.path == "/healthz"


def test_migrations_and_shared_storage(objects: dict[tuple[str, str], Any]) -> None:
    job = objects[("Job", "multiflexi-migrate")]
    assert job.spec.template.spec.containers[0].args == ["migrate"]
    pvc = objects[("PersistentVolumeClaim", "multiflexi-artifacts")]
    assert pvc.spec.access_modes == ["ReadWriteMany"]
    assert ("Secret", "multiflexi-keys") not in objects  # the operator makes it: no key in git
