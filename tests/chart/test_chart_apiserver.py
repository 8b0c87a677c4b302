"""The rendered chart is accepted by a real kube-apiserver, and its pod by Pod Security.

Every object the chart renders is server-side applied with
``fieldValidation=Strict``: CRDs and workloads as dry runs (so the session's
SMI CRDs and namespaces stay as they are), RBAC objects for real (the
apiserver then also runs its escalation check on them).  The Deployment and
a Pod made from its template are created for real in a namespace that
enforces, warns and audits Pod Security *restricted*; no kubelet runs, so
the pod is only admitted, never started.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import kubernetes
import pytest

from tests.chart.chart import Rendered, load_chart, render
from tests.envtest.envtest import KubeHTTP
from tests.envtest.fixtures import (
    ApplyError,
    describe,
    http_for,
    resource_for,
    server_side_apply,
)

pytestmark = pytest.mark.envtest

FIELD_MANAGER = "smi2mesh-chart-tests"
# Applied for real: cluster-wide, cheap to clean up, and the escalation check only runs on a real write.
REAL_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
PSS_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    """The chart, loaded once per module."""
    with load_chart() as loaded:
        yield loaded


@pytest.fixture
def http(kube_api: kubernetes.client.ApiClient) -> KubeHTTP:
    """Raw apiserver client (exposes Warning headers)."""
    return http_for(kube_api)


@pytest.fixture
def make_namespace(kube_api: kubernetes.client.ApiClient) -> Iterator[Any]:
    """Factory for extra namespaces (optionally labelled), deleted after the test."""
    core = kubernetes.client.CoreV1Api(kube_api)
    created: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"chart-{secrets.token_hex(4)}"
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name, labels=labels))
        )
        created.append(name)
        return name

    yield make
    for name in created:
        core.delete_namespace(name)


def release_name() -> str:
    """A unique release name, so cluster-scoped RBAC objects of different tests never collide."""
    return f"smi2mesh-{secrets.token_hex(3)}"


def delete_cluster_objects(http: KubeHTTP, rendered: Rendered) -> None:
    """Remove the cluster-scoped RBAC objects a test created for real."""
    for obj in rendered.objects:
        if obj["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
            kind = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
            http.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/{kind}/{obj['metadata']['name']}")


def apply_all(http: KubeHTTP, rendered: Rendered, *, skip_kinds: frozenset[str] = frozenset()) -> None:
    """Apply every rendered object (CRDs first); report every rejection and warning at once."""
    problems: list[str] = []
    ordered = sorted(rendered.objects, key=lambda obj: obj["kind"] != "CustomResourceDefinition")
    for obj in ordered:
        if obj["kind"] in skip_kinds:
            continue
        try:
            warnings = server_side_apply(
                http, obj, field_manager=FIELD_MANAGER, dry_run=obj["kind"] not in REAL_KINDS
            )
        except ApplyError as error:
            problems.append(f"{describe(obj)}: rejected (HTTP {error.status}): {error.body}")
            continue
        problems.extend(f"{describe(obj)}: warning: {warning}" for warning in warnings)
    assert not problems, "the apiserver did not accept the chart cleanly:\n" + "\n".join(problems)


def test_defaults_accepted(chart: helm.Chart, http: KubeHTTP, namespace: str) -> None:
    """All-namespaces mode with default values: every object accepted without warnings."""
    rendered = render(chart, namespace=namespace, release=release_name())
    try:
        apply_all(http, rendered)
    finally:
        delete_cluster_objects(http, rendered)


def test_watch_namespaces_accepted(
    chart: helm.Chart, http: KubeHTTP, namespace: str, make_namespace: Any
) -> None:
    """watchNamespaces mode with every mesh enabled: Roles in each namespace, small ClusterRole."""
    watched = [make_namespace(), make_namespace()]
    values = {
        "mesh": "istio",
        "enabledMeshes": ["linkerd", "consul", "kuma", "cilium", "gamma"],
        "watchNamespaces": watched,
    }
    rendered = render(chart, values, namespace=namespace, release=release_name())
    assert {role["metadata"]["namespace"] for role in rendered.of_kind("Role")} == {*watched, namespace}
    (lease_role,) = [r for r in rendered.of_kind("Role") if r["metadata"]["namespace"] == namespace]
    assert lease_role["rules"][0]["resources"] == ["leases"]
    try:
        apply_all(http, rendered)
    finally:
        delete_cluster_objects(http, rendered)


def test_one_replica_without_election_accepted(chart: helm.Chart, http: KubeHTTP, namespace: str) -> None:
    """replicas 1 without leader election: Recreate, no PDB and no Lease Role, accepted as well."""
    values = {"replicas": 1, "leaderElection": {"enabled": False, "leaseDuration": 15, "renewDeadline": 10,
                                                "retryPeriod": 2}}
    rendered = render(chart, values, namespace=namespace, release=release_name())
    assert rendered.of_kind("PodDisruptionBudget") == []
    try:
        apply_all(http, rendered)
    finally:
        delete_cluster_objects(http, rendered)


def test_service_monitor_accepted(chart: helm.Chart, http: KubeHTTP, namespace: str) -> None:
    """The optional ServiceMonitor, when the Prometheus operator's CRD is installed."""
    values = {"metrics": {"enabled": True, "port": 8080, "serviceMonitor": {"enabled": True}}}
    rendered = render(chart, values, namespace=namespace, release=release_name())
    monitor = rendered.one("ServiceMonitor")
    if resource_for(http, monitor["apiVersion"], "ServiceMonitor", wait=0) is None:
        pytest.skip(
            "monitoring.coreos.com/v1 ServiceMonitor is not served: the Prometheus operator CRD is not in "
            "$MESH_CRDS_DIR, so only the rest of this render is checked (see test_defaults_accepted)"
        )
    try:
        apply_all(http, rendered)
    finally:
        delete_cluster_objects(http, rendered)


def pod_from(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    """The Pod the Deployment's ReplicaSet would create (no controller runs here to do it)."""
    template = copy.deepcopy(deployment["spec"]["template"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": name, "namespace": deployment["metadata"]["namespace"]},
        "spec": template["spec"],
    }


def test_pod_security_restricted_admits_operator(
    chart: helm.Chart, http: KubeHTTP, make_namespace: Any
) -> None:
    """The Deployment and its pod are admitted, with no warning, where PSS restricted is enforced."""
    restricted = make_namespace(PSS_LABELS)
    rendered = render(chart, namespace=restricted, release=release_name())
    deployment = rendered.one("Deployment")
    # Real writes, not dry runs: nothing can start without a kubelet, and a stored object proves admission.
    warnings = server_side_apply(http, deployment, field_manager=FIELD_MANAGER)
    assert warnings == [], f"Deployment admitted with warnings: {warnings}"
    pod = pod_from(deployment, "smi2mesh-pss-check")
    warnings = server_side_apply(http, pod, field_manager=FIELD_MANAGER)
    assert warnings == [], f"Pod admitted with warnings: {warnings}"

    # Control: the same pod without its hardening is refused, so the check above is not vacuous.
    weak = pod_from(deployment, "smi2mesh-pss-weak")
    del weak["spec"]["securityContext"]
    for container in weak["spec"]["containers"]:
        del container["securityContext"]
    with pytest.raises(ApplyError) as refused:
        server_side_apply(http, weak, field_manager=FIELD_MANAGER)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted' in str(refused.value.body)
