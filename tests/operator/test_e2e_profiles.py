"""The operator picks its profile from the cluster, with no flag (envtest tier).

A control plane of its own carries the Gateway API 1.5.1 experimental CRDs
(TCPRoute served only as ``v1alpha2``), the Linkerd CRDs and the SMI CRDs: the
operator reads the CRDs' bundle-version annotation and writes a TCP split as a
TCPRoute ``v1alpha2``, which this cluster serves, with no Prerequisite finding
(the channel is known to be experimental).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import Kube
from smi2mesh.translators.profiles import Channel, GatewayApi
from tests.envtest import envtest as lib
from tests.operator import harness

pytestmark = pytest.mark.envtest

GW = "gateway.networking.k8s.io"
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
           "spec": {"selector": {"app": "db"}, "ports": [{"name": "tcp-pg", "port": 5432}]}}
SPLIT = {"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
         "metadata": {"name": "db-migration"},
         "spec": {"service": "db", "backends": [{"service": "db-old", "weight": 3},
                                                {"service": "db-new", "weight": 1}]}}


def _apply(kube: Kube, api_path: str, namespace: str, body: dict[str, Any]) -> None:
    doc = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    kube.request("PATCH", f"{api_path}/namespaces/{namespace}/{body['kind'].lower()}s/"
                          f"{body['metadata']['name']}",
                 query=[("fieldManager", "tests"), ("force", "true")], body=doc,
                 content_type="application/apply-patch+yaml")


def test_linkerd_on_gateway_api_1_5_1_gets_tcproute_v1alpha2_with_no_flag(
        gateway_api_servers: Callable[[str], lib.Environment]) -> None:
    env = gateway_api_servers("gateway-api-v1.5.1")
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call,unused-ignore]
        config_file=str(env.kubeconfig))
    kube = Kube(client)
    # TCPRoute v1 does not exist on this cluster: a profile writing it could not work.
    assert "TCPRoute" not in (kube.served(f"{GW}/v1") or {})
    assert "TCPRoute" in (kube.served(f"{GW}/v1alpha2") or {})
    ns = f"test-{secrets.token_hex(4)}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    _apply(kube, "/api/v1", ns, SERVICE)
    config = OperatorConfig(mesh="linkerd", namespaces=(ns,))
    try:
        with harness.operator(config, api_client=client) as op:
            profile = op.operator.discovery.profiles["linkerd"]
            assert profile.gateway == GatewayApi((1, 5, 1), Channel.EXPERIMENTAL)
            _apply(kube, "/apis/split.smi-spec.io/v1alpha4", ns, SPLIT)
            path = f"/apis/{GW}/v1alpha2/namespaces/{ns}/tcproutes/db-migration"

            def written() -> dict[str, Any] | None:
                status, body = kube.request("GET", path)
                return body if status == 200 else None

            route = harness.wait_for(written, 30, "TCPRoute v1alpha2 db-migration")
            assert route["apiVersion"] == f"{GW}/v1alpha2"
            assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "db",
                                                    "port": 5432}]
            assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [
                ("db-old", 3), ("db-new", 1)]

            def ready() -> dict[str, Any] | None:
                _, split = kube.request(
                    "GET", f"/apis/split.smi-spec.io/v1alpha4/namespaces/{ns}/trafficsplits/db-migration")
                conds = {c["type"]: c for c in ((split or {}).get("status") or {}).get("conditions") or []}
                return conds if conds.get("Ready", {}).get("status") == "True" else None

            conditions = harness.wait_for(ready, 30, "TrafficSplit Ready")
            # The experimental channel is installed, so no Prerequisite finding is left.
            assert conditions.get("NotExpressible", {}).get("status") != "True", conditions
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{ns}")
        client.close()  # type: ignore[no-untyped-call,unused-ignore]
