"""The operator end to end, against the real kube-apiserver (envtest tier).

Each test runs the real operator in-process, scoped to a fresh namespace.
Expected objects come from the same translate() the CLI uses, so these tests
check the operator's plumbing (apply, prune, drift, status), not translation.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from smi2mesh.inputs import parse_documents
from smi2mesh.operator.reconcile import drift
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from tests.operator.conftest import Cluster, OperatorFactory
from tests.operator.harness import wait_for

pytestmark = pytest.mark.envtest

APP = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: app, image: example/web:1}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes}
spec:
  matches:
  - {name: read, pathRegex: /api, methods: [GET]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: port}
spec:
  matches: {ports: [8080]}
"""
SPLIT = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-split}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: routes}]
  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
"""
TARGET = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-access}
spec:
  destination: {kind: ServiceAccount, name: web}
  sources: [{kind: ServiceAccount, name: client}]
  rules:
  - {kind: TCPRoute, name: port}
  - {kind: HTTPRouteGroup, name: routes}
"""
SPLIT_API = "split.smi-spec.io/v1alpha4"
TARGET_API = "access.smi-spec.io/v1alpha3"


def expected(mesh: str, namespace: str, *texts: str) -> list[dict[str, Any]]:
    docs = [d for t in texts for d in yaml.safe_load_all(t) if d]
    for d in docs:
        d["metadata"]["namespace"] = namespace
    inputs = parse_documents((f"t:{i}", d) for i, d in enumerate(docs))
    return list(translate(inputs, mesh).objects)


def wait_condition(cluster: Cluster, api_version: str, kind: str, namespace: str, name: str,
                   type_: str, test: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the condition *type_* satisfies *test*; return it."""
    def check() -> dict[str, Any] | None:
        cond = cluster.condition(api_version, kind, namespace, name, type_)
        return cond if cond is not None and test(cond) else None

    return wait_for(check, timeout, f"{kind} {name} condition {type_}")


def wait_object(cluster: Cluster, api_version: str, kind: str, namespace: str, name: str,
                test: Any, timeout: float = 20.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = cluster.get(api_version, kind, namespace, name)
        return obj if obj is not None and test(obj) else None

    return wait_for(check, timeout, f"{kind} {name}")


def up_to_date(cluster: Cluster, objects: list[dict[str, Any]]) -> bool:
    for obj in objects:
        meta = obj["metadata"]
        live = cluster.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if live is None or drift({k: v for k, v in obj.items() if k != "metadata"}, live):
            return False
    return True


def absent(cluster: Cluster, objects: list[dict[str, Any]]) -> bool:
    return all(cluster.get(o["apiVersion"], o["kind"], o["metadata"]["namespace"],
                           o["metadata"]["name"]) is None for o in objects)


@pytest.mark.parametrize("mesh", [m for m in TRANSLATORS if m != "smi"])
def test_create_update_delete_for_each_target(mesh: str, cluster: Cluster, namespace: str,
                                              run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh=mesh):
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        want = expected(mesh, namespace, APP, SPLIT, TARGET)
        assert want, f"{mesh} translates the fixture to nothing"
        wait_for(lambda: up_to_date(cluster, want), 30, f"{mesh} objects")
        for obj in want:
            live = cluster.get(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])
            assert live is not None
            assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "smi2mesh"
            assert live["metadata"]["labels"]["smi2mesh.io/mesh"] == mesh
            owners = live["metadata"]["ownerReferences"]
            assert [o for o in owners if o["controller"]], "a controller ownerReference"
        updated = SPLIT.replace("weight: 90", "weight: 70").replace("weight: 10", "weight: 30")
        cluster.apply(updated, namespace)
        want2 = expected(mesh, namespace, APP, updated, TARGET)
        wait_for(lambda: up_to_date(cluster, want2), 30, f"{mesh} update")
        cluster.delete(SPLIT_API, "TrafficSplit", namespace, "web-split")
        cluster.delete(TARGET_API, "TrafficTarget", namespace, "web-access")
        wait_for(lambda: absent(cluster, want2), 30, f"{mesh} prune after delete")


def test_references_that_appear_later(cluster: Cluster, namespace: str,
                                      run_operator: OperatorFactory) -> None:
    service, deployment, group, tcp = list(yaml.safe_load_all(APP))
    with run_operator(mesh="istio"):
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        wait_for(lambda: (cluster.condition(SPLIT_API, "TrafficSplit", namespace, "web-split",
                                            "ResolvedRefs") or {}).get("status") == "False",
                 20, "ResolvedRefs False while the HTTPRouteGroup is missing")
        assert cluster.objects("networking.istio.io/v1", "VirtualService", namespace) == []
        cluster.apply(yaml.safe_dump_all([service, group, tcp]), namespace)
        want = expected("istio", namespace, yaml.safe_dump_all([service, group, tcp]), SPLIT)
        wait_for(lambda: up_to_date(cluster, want), 20, "VirtualService once the group exists")
        assert cluster.objects("security.istio.io/v1", "AuthorizationPolicy", namespace) == []
        cluster.apply(yaml.safe_dump(deployment), namespace)
        wait_for(lambda: cluster.objects("security.istio.io/v1", "AuthorizationPolicy", namespace),
                 20, "AuthorizationPolicy once the ServiceAccount's workload exists")
        wait_for(lambda: (cluster.condition(TARGET_API, "TrafficTarget", namespace, "web-access",
                                            "ResolvedRefs") or {}).get("status") == "True",
                 20, "ResolvedRefs True")


def test_drift_is_repaired(cluster: Cluster, namespace: str, run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh="istio"):
        cluster.apply(SPLIT, namespace)
        want = expected("istio", namespace, APP, SPLIT)
        wait_for(lambda: up_to_date(cluster, want), 20, "VirtualService")
        vs = want[0]
        cluster.patch(vs["apiVersion"], vs["kind"], namespace, "web-split",
                      {"spec": {"hosts": ["evil.example.com"]}})
        wait_for(lambda: up_to_date(cluster, want), 10, "edit reverted")
        cluster.delete(vs["apiVersion"], vs["kind"], namespace, "web-split")
        wait_for(lambda: up_to_date(cluster, want), 10, "deleted object recreated")


def test_foreign_object_is_a_conflict_and_left_alone(cluster: Cluster, namespace: str,
                                                     run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    foreign = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "web-split", "labels": {"team": "payments"}},
               "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}]}}
    cluster.apply(foreign, namespace, manager="someone-else")
    before = cluster.get("networking.istio.io/v1", "VirtualService", namespace, "web-split")
    assert before is not None
    with run_operator(mesh="istio"):
        cluster.apply(SPLIT, namespace)
        cond = wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Conflict",
                              lambda c: c["status"] == "True")
        assert "not managed by smi2mesh" in cond["message"]
        wait_for(lambda: any(e["reason"] == "ForeignObject"
                             for e in cluster.events(namespace, "web-split")), 10, "an Event")
        after = cluster.get("networking.istio.io/v1", "VirtualService", namespace, "web-split")
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_ignore_annotation_prunes_the_outputs_and_removing_it_restores_them(
        cluster: Cluster, namespace: str, run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    split_out = expected("istio", namespace, APP, SPLIT)
    target_out = expected("istio", namespace, APP, TARGET)
    assert split_out
    assert target_out
    with run_operator(mesh="istio"):
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        wait_for(lambda: up_to_date(cluster, split_out + target_out), 30, "outputs")
        cluster.patch(SPLIT_API, "TrafficSplit", namespace, "web-split",
                      {"metadata": {"annotations": {"smi2mesh.io/ignore": "true"}}})
        wait_for(lambda: absent(cluster, split_out), 30, "the ignored split's outputs pruned")
        ready = wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Ready",
                               lambda c: c["reason"] == "Ignored")
        assert ready["status"] == "False"
        status = cluster.get(SPLIT_API, "TrafficSplit", namespace, "web-split")["status"]  # type: ignore[index]
        assert ([c["type"] for c in status["conditions"]], status.get("generated", []),
                status["mesh"]) == (["Ready"], [], "")
        assert up_to_date(cluster, target_out), "the other object's outputs stay"
        assert not [e for e in cluster.events(namespace, "web-split") if e["reason"] == "Ignored"]
        cluster.patch(SPLIT_API, "TrafficSplit", namespace, "web-split",
                      {"metadata": {"annotations": {"smi2mesh.io/ignore": None}}})
        wait_for(lambda: up_to_date(cluster, split_out), 30, "outputs restored")
        wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Ready",
                       lambda c: c["status"] == "True")


def test_mesh_swap_by_namespace_label_never_leaves_a_gap(cluster: Cluster, namespace: str,
                                                         run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh="istio", enable=("cilium",)):
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        istio = expected("istio", namespace, APP, SPLIT, TARGET)
        cilium = expected("cilium", namespace, APP, SPLIT, TARGET)
        wait_for(lambda: up_to_date(cluster, istio), 20, "istio objects")
        cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": namespace, "labels": {"smi2mesh.io/mesh": "cilium"}}},
                      namespace)

        def swapped() -> bool:
            aps = cluster.objects("security.istio.io/v1", "AuthorizationPolicy", namespace)
            cnps = cluster.objects("cilium.io/v2", "CiliumNetworkPolicy", namespace)
            assert aps or cnps, "a moment with no access policy for the TrafficTarget"
            return not aps and up_to_date(cluster, cilium)

        wait_for(swapped, 30, "cilium objects replace istio's", interval=0.01)
        assert absent(cluster, istio)
        target = cluster.get(TARGET_API, "TrafficTarget", namespace, "web-access")
        assert target is not None
        status = target["status"]
        assert status["mesh"] == "cilium"


def test_every_version_is_reconciled(cluster: Cluster, namespace: str,
                                     run_operator: OperatorFactory) -> None:
    """Objects written as v1alpha1..v1alpha3 are read in the version they were written in."""
    cluster.apply(APP, namespace)
    old = """
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: quantity}
spec:
  service: web
  backends: [{service: web-v1, weight: "1"}, {service: web-v2, weight: 500m}]
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: integer}
spec:
  service: web-b
  backends: [{service: web-v1, weight: 3}, {service: web-v2, weight: 1}]
---
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: legacy}
destination: {kind: ServiceAccount, name: web, port: "9091"}
sources: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]
specs: [{kind: HTTPRouteGroup, name: metrics}]
---
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: metrics}
matches: [{name: scrape, pathRegex: /metrics, methods: [GET], headers: {x-scraper: prom}}]
"""
    with run_operator(mesh="istio"):
        cluster.apply(old, namespace)
        want = expected("istio", namespace, APP, old)
        assert {o["metadata"]["name"] for o in want} == {"quantity", "integer", "legacy"}
        wait_for(lambda: up_to_date(cluster, want), 30, "every version reconciled")
        vs = cluster.get("networking.istio.io/v1", "VirtualService", namespace, "quantity")
        assert vs is not None
        weights = [d["weight"] for d in vs["spec"]["http"][0]["route"]]
        assert weights == [67, 33]  # 1 : 500m, not 1 : 500
        ap = cluster.get("security.istio.io/v1", "AuthorizationPolicy", namespace, "legacy")
        assert ap is not None
        assert ap["spec"]["rules"][0]["to"][0]["operation"]["ports"] == ["9091"]


def test_status_conditions_and_invalid_input(cluster: Cluster, namespace: str,
                                             run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh="istio"):
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        want = expected("istio", namespace, APP, SPLIT, TARGET)
        wait_for(lambda: up_to_date(cluster, want), 20, "objects")
        ts = wait_object(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split",
                         lambda o: (o.get("status") or {}).get("generated"))
        conds = {c["type"]: c for c in ts["status"]["conditions"]}
        assert conds["Ready"]["status"] == "True"
        assert conds["Ready"]["observedGeneration"] == ts["metadata"]["generation"]
        assert {c["type"] for c in conds.values()} == {"Ready", "ResolvedRefs", "NotExpressible",
                                                         "Conflict"}
        assert ts["status"]["generated"] == [{"apiVersion": "networking.istio.io/v1",
                                              "kind": "VirtualService", "name": "web-split",
                                              "namespace": namespace}]
        bad = SPLIT.replace("weight: 90", "weight: 0").replace("weight: 10", "weight: 0")
        cluster.apply(bad, namespace)
        cond = wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Ready",
                              lambda c: c["reason"] == "InvalidSpec")
        assert "weights are zero" in cond["message"]
        wait_for(lambda: any(e["reason"] == "InvalidSpec"
                             for e in cluster.events(namespace, "web-split")), 10, "an Event")
        # The last good output stays while the object is invalid.
        assert up_to_date(cluster, [o for o in want if o["kind"] == "VirtualService"])


def test_restart_with_nothing_changed_makes_no_writes(cluster: Cluster, namespace: str,
                                                      run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh="linkerd") as first:
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        want = expected("linkerd", namespace, APP, SPLIT, TARGET)
        wait_for(lambda: up_to_date(cluster, want), 20, "objects")
        wait_for(lambda: (cluster.condition(TARGET_API, "TrafficTarget", namespace, "web-access",
                                            "Ready") or {}).get("status") == "True", 10, "status")
        assert first.writes > 0
    with run_operator(mesh="linkerd") as second:
        # Let it settle: several passes over the namespace must not write.
        wait_for(lambda: second.operator.metrics.reconciles.labels("ok")._value.get() >= 1, 10,
                 "a reconcile")
        import time
        time.sleep(2)
        assert list(second.kube.recent_writes) == []


def test_missing_mesh_crds_are_reported_then_picked_up(cluster: Cluster, namespace: str,
                                                       run_operator: OperatorFactory) -> None:
    crd_api = "apiextensions.k8s.io/v1"
    names = ["meshhttproutes.kuma.io", "meshtcproutes.kuma.io", "meshtrafficpermissions.kuma.io"]
    saved = [cluster.get(crd_api, "CustomResourceDefinition", "", n) for n in names]
    for n in names:
        cluster.delete(crd_api, "CustomResourceDefinition", "", n)
    # A CRD goes only after its instances are cleaned up, which can take a while.
    wait_for(lambda: all(cluster.get(crd_api, "CustomResourceDefinition", "", n) is None
                         for n in names), 120, "kuma CRDs gone", interval=0.5)
    cluster.apply(APP, namespace)
    try:
        with run_operator(mesh="kuma") as op:
            cluster.apply(SPLIT, namespace)
            cond = wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Ready",
                                  lambda c: c["reason"] == "MeshCRDsMissing")
            assert "MeshHTTPRoute.kuma.io" in cond["message"]
            for crd in saved:
                assert crd is not None
                body = {k: v for k, v in crd.items() if k != "status"}
                body["metadata"] = {"name": crd["metadata"]["name"]}
                cluster.apply(body, namespace)
            want = expected("kuma", namespace, APP, SPLIT)
            wait_for(lambda: up_to_date(cluster, want), 60, "outputs once the CRDs are back")
            assert not any(t.done() for t in op.operator._tasks)
    finally:
        for crd in saved:
            if crd is not None and cluster.get(crd_api, "CustomResourceDefinition", "",
                                               crd["metadata"]["name"]) is None:
                body = {k: v for k, v in crd.items() if k != "status"}
                body["metadata"] = {"name": crd["metadata"]["name"]}
                cluster.apply(body, namespace)


def test_metrics_and_health_endpoints(cluster: Cluster, namespace: str,
                                      run_operator: OperatorFactory) -> None:
    cluster.apply(APP, namespace)
    with run_operator(mesh="istio") as op:
        cluster.apply(SPLIT + "---" + TARGET, namespace)
        want = expected("istio", namespace, APP, SPLIT, TARGET)
        wait_for(lambda: up_to_date(cluster, want), 30, "istio objects")
        wait_for(lambda: _samples(op.config.metrics_port).get(
            ("smi2mesh_api_writes_total", (("verb", "status"),)), 0) >= 2, 10, "statuses counted")
        samples = _samples(op.config.metrics_port)
        kinds = {o["kind"] for o in want}
        for kind in kinds:
            assert samples[("smi2mesh_managed_objects", (("kind", kind),))] == \
                sum(o["kind"] == kind for o in want)
        assert samples[("smi2mesh_api_writes_total", (("verb", "create"),))] >= len(want)
        assert samples[("smi2mesh_reconciles_total", (("result", "ok"),))] >= 1
        assert samples[("smi2mesh_reconcile_duration_seconds_count", ())] >= 1
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{op.config.health_port}{path}") as resp:
                assert resp.status == 200


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
