"""The kubernetes module against a real cluster, when KUBECONFIG points at one (skipped otherwise).

Image: MULTIFLEXI_K8S_TEST_IMAGE (default busybox:1.36; it needs sh, sleep and tar), namespace:
MULTIFLEXI_K8S_NAMESPACE (default "default"). The Pod and Secret must be gone afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from multiflexi_web.executors.base import AppInfo, JobSpec, RunResult
from multiflexi_web.executors.k8s_config import K8sSettings, api_client
from multiflexi_web.executors.kubernetes import KubernetesExecutor
from tests.test_native import RecordingIO


def _cluster() -> tuple[Any, str]:
    """A CoreV1Api for the cluster KUBECONFIG names, or why there is none."""
    if not os.environ.get("KUBECONFIG"):
        return None, "KUBECONFIG is not set: no real cluster to run against"
    try:
        from kubernetes.client import CoreV1Api

        core = CoreV1Api(api_client(K8sSettings.load()))
        core.list_namespaced_pod(K8sSettings.load().namespace, limit=1, _request_timeout=10)
    except Exception as exc:  # any failure (ConfigError too) means: no cluster here
        return None, f"the cluster in KUBECONFIG does not answer: {exc}"
    return core, ""


def test_a_pod_runs_on_a_real_cluster(tmp_path: Path) -> None:
    core, why = _cluster()
    if core is None:
        pytest.skip(why)
    image = os.environ.get("MULTIFLEXI_K8S_TEST_IMAGE", "busybox:1.36")
    workdir = tmp_path / "job"
    workdir.mkdir()
    script = 'echo "token=$TOKEN"; echo data > "$MULTIFLEXI_TMP/out.txt"; exit 3'
    spec = JobSpec(
        job_id=990001,
        argv=("sh", "-c", script),
        env={"TOKEN": "real-secret", "MULTIFLEXI_TMP": str(workdir)},
        workdir=workdir,
        app=AppInfo("cluster-test", "sh", image),
        timeout=300,
        kill_grace=2,
        secret_keys=frozenset({"TOKEN"}),
    )
    rec = RecordingIO()
    result = KubernetesExecutor().run(spec, rec)
    assert result == RunResult(3), rec.text("stderr")
    assert rec.text() == b"token=real-secret\n"
    assert (workdir / "out.txt").read_text() == "data\n"
    selector = "multiflexi.job=990001"
    namespace = K8sSettings.load().namespace
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    secrets = core.list_namespaced_secret(namespace, label_selector=selector).items
    assert [p for p in pods if not p.metadata.deletion_timestamp] == []
    assert secrets == []
