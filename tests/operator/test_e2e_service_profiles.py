"""Linkerd ServiceProfiles in a cluster the operator writes HTTPRoutes to (envtest tier).

A ServiceProfile named after a split's root Service (as linkerd-smi left them)
makes Linkerd ignore the HTTPRoutes for that Service. The operator watches
ServiceProfiles read-only: the split gets ``Conflict=True`` and an Event naming
the ServiceProfile, the route is still written, the ServiceProfile is never
changed or deleted, and the conflict clears once someone deletes it.

With ``--mesh-version linkerd=2.13`` (before GAMMA) the operator writes the
split as a ServiceProfile itself, and one of that name it does not manage is a
Conflict, left unchanged.
"""

from __future__ import annotations

import pytest

from smi2mesh.operator.config import OperatorConfig
from tests.envtest import envtest as lib
from tests.operator import harness
from tests.operator.conftest import Cluster, OperatorFactory
from tests.operator.harness import wait_for
from tests.operator.test_e2e import wait_condition, wait_object

pytestmark = pytest.mark.envtest

SPLIT_API = "split.smi-spec.io/v1alpha4"
SP_API = "linkerd.io/v1alpha2"
APP = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-split}
spec:
  service: web
  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
"""


def test_a_service_profile_shadowing_the_routes_is_a_conflict(cluster: Cluster, namespace: str,
                                                              run_operator: OperatorFactory) -> None:
    name = f"web.{namespace}.svc.cluster.local"
    profile = {"apiVersion": SP_API, "kind": "ServiceProfile", "metadata": {"name": name},
               "spec": {"dstOverrides": [{"authority": f"web-v1.{namespace}.svc.cluster.local",
                                          "weight": 1}]}}
    cluster.apply(profile, namespace, manager="linkerd-smi")
    before = cluster.get(SP_API, "ServiceProfile", namespace, name)
    assert before is not None
    with run_operator(mesh="linkerd"):
        cluster.apply(APP, namespace)
        cond = wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Conflict",
                              lambda c: c["status"] == "True")
        assert f"ServiceProfile {namespace}/{name}" in cond["message"]
        assert "ignores the HTTPRoutes" in cond["message"]
        wait_for(lambda: any(name in e["message"] for e in cluster.events(namespace, "web-split")),
                 10, "an Event naming the ServiceProfile")
        # The route is written all the same: it takes over once the profile is gone.
        wait_object(cluster, "gateway.networking.k8s.io/v1", "HTTPRoute", namespace, "web-split",
                    lambda o: True)
        after = cluster.get(SP_API, "ServiceProfile", namespace, name)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        cluster.delete(SP_API, "ServiceProfile", namespace, name)
        wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "web-split", "Conflict",
                       lambda c: c["status"] == "False")


def test_linkerd_2_13_writes_service_profiles_and_never_overwrites_a_foreign_one(
        cluster: Cluster, namespace: str, envtest: lib.Environment) -> None:
    foreign = f"api.{namespace}.svc.cluster.local"
    cluster.apply({"apiVersion": SP_API, "kind": "ServiceProfile", "metadata": {"name": foreign},
                   "spec": {"dstOverrides": [{"authority": "elsewhere:80", "weight": 1}]}},
                  namespace, manager="linkerd-smi")
    before = cluster.get(SP_API, "ServiceProfile", namespace, foreign)
    assert before is not None
    config = OperatorConfig(mesh="linkerd", namespaces=(namespace,), mesh_versions={"linkerd": "2.13"})
    with harness.operator(config, str(envtest.kubeconfig)):
        cluster.apply(APP + "---" + APP.replace("web", "api"), namespace)
        ours = wait_object(cluster, SP_API, "ServiceProfile", namespace, f"web.{namespace}.svc.cluster.local",
                           lambda o: True)
        assert ours["spec"]["dstOverrides"] == [
            {"authority": f"web-v1.{namespace}.svc.cluster.local:8080", "weight": 90},
            {"authority": f"web-v2.{namespace}.svc.cluster.local:8080", "weight": 10}]
        cond = wait_condition(cluster, SPLIT_API, "TrafficSplit", namespace, "api-split", "Conflict",
                              lambda c: c["status"] == "True")
        assert f"ServiceProfile {namespace}/{foreign} exists and is not managed" in cond["message"]
        after = cluster.get(SP_API, "ServiceProfile", namespace, foreign)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        # Linkerd 2.13 has no GAMMA: no Gateway API route is written.
        assert cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, "web-split") is None
