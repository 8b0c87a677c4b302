"""Ownership, scoping and a competing writer, against the real API server.

The operator must never delete or overwrite what it did not create, never
act outside the namespaces it watches, never write into another namespace,
and never fight another writer in a hot loop.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.operator.conftest import Cluster, OperatorFactory
from tests.operator.harness import wait_for
from tests.operator.test_e2e import APP, SPLIT, SPLIT_API, TARGET_API, expected, up_to_date, wait_condition

pytestmark = pytest.mark.envtest
VS_API = "networking.istio.io/v1"


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"other-{uuid.uuid4().hex[:8]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, name)
    yield name
    cluster.kube.request("DELETE", f"/api/v1/namespaces/{name}")


def test_look_alike_label_on_a_foreign_object_is_never_touched(
        cluster: Cluster, namespace: str, run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    lookalike = {"apiVersion": VS_API, "kind": "VirtualService",
                 "metadata": {"name": "decoy", "labels": {"app.kubernetes.io/managed-by": "smi2mesh",
                                                          "smi2mesh.io/mesh": "istio"},
                              "annotations": {"smi2mesh.io/source": "TrafficSplit/x/web-split"}},
                 "spec": {"hosts": ["decoy"]}}
    cluster.apply(lookalike, namespace, manager="someone-else")
    before = cluster.get(VS_API, "VirtualService", namespace, "decoy")
    assert before is not None
    with run_operator(mesh="istio") as op:
        cluster.apply(SPLIT, namespace)
        wait_for(lambda: up_to_date(cluster, expected("istio", namespace, APP, SPLIT)), 30, "outputs")
        cluster.delete(SPLIT_API, "TrafficSplit", namespace, "web-split")
        wait_for(lambda: cluster.get(VS_API, "VirtualService", namespace, "web-split") is None, 30,
                 "our own output pruned")
        time.sleep(1)
        after = cluster.get(VS_API, "VirtualService", namespace, "decoy")
        assert after is not None, "a look-alike object was deleted"
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert not [w for w in op.kube.recent_writes if "/decoy" in w]


def test_cross_namespace_destination_is_refused(cluster: Cluster, namespace: str,
                                                other_namespace: str,
                                                run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    sneaky = f"""
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: sneaky}}
spec:
  destination: {{kind: ServiceAccount, name: web, namespace: {other_namespace}}}
  sources: [{{kind: ServiceAccount, name: client}}]
  rules: [{{kind: TCPRoute, name: port}}]
"""
    with run_operator(mesh="istio", namespaces=(namespace, other_namespace)):
        cluster.apply(sneaky, namespace)
        cond = wait_condition(cluster, TARGET_API, "TrafficTarget", namespace, "sneaky", "Ready",
                              lambda c: c["reason"] == "InvalidSpec")
        assert "destination.namespace" in cond["message"]
        for ns in (namespace, other_namespace):
            assert cluster.objects("security.istio.io/v1", "AuthorizationPolicy", ns) == []


def test_namespaces_outside_the_watch_are_ignored(cluster: Cluster, namespace: str,
                                                  other_namespace: str,
                                                  run_operator: OperatorFactory) -> None:
    for ns in (namespace, other_namespace):
        cluster.apply(APP, ns)
    with run_operator(mesh="istio", namespaces=(namespace,)):
        cluster.apply(SPLIT, other_namespace)
        cluster.apply(SPLIT, namespace)
        wait_for(lambda: up_to_date(cluster, expected("istio", namespace, APP, SPLIT)), 30, "outputs")
        time.sleep(1)
        assert cluster.objects(VS_API, "VirtualService", other_namespace) == []
        ignored = cluster.get(SPLIT_API, "TrafficSplit", other_namespace, "web-split")
        assert ignored is not None
        assert not ignored.get("status")


def test_competing_writer_does_not_cause_a_hot_loop(cluster: Cluster, namespace: str,
                                                    run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh="istio") as op:
        cluster.apply(SPLIT, namespace)
        want = expected("istio", namespace, APP, SPLIT)
        wait_for(lambda: up_to_date(cluster, want), 30, "outputs")
        stop = threading.Event()

        def fight() -> None:
            while not stop.is_set():
                cluster.patch(VS_API, "VirtualService", namespace, "web-split",
                              {"spec": {"hosts": ["rival.example.com"]}})
                time.sleep(0.1)

        writes_before = op.writes
        rival = threading.Thread(target=fight, daemon=True)
        rival.start()
        time.sleep(12)
        stop.set()
        rival.join()
        repairs = op.writes - writes_before
        # About 100 rival edits in 12 s; repairs stay bounded (5 per minute plus
        # status updates), instead of one per edit.
        assert 1 <= repairs <= 12, f"{repairs} writes while fighting another writer"
        assert op.operator.metrics.throttled._value.get() > 0
        # Once the rival stops, drift repair wins.
        wait_for(lambda: up_to_date(cluster, want), 90, "repair after the rival stopped")
