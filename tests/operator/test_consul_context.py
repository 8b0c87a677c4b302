"""The operator's cluster-wide names for Consul CE, its Consul options, and the pod context it keeps."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest
import yaml

from smi2mesh.findings import FindingReason
from smi2mesh.model import Workload
from smi2mesh.operator import reconcile
from smi2mesh.operator.config import ConfigError, OperatorConfig, add_run_arguments, from_args
from smi2mesh.operator.kube import Resource
from smi2mesh.operator.store import SMI_KINDS, Store, slim
from smi2mesh.translators.base import ConsulNamespaces

SA = ("", "serviceaccounts")
SVC = ("", "services")
CONSUL = OperatorConfig(mesh="consul")
ROUTE = yaml.safe_load("""
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: shop, uid: r-uid, resourceVersion: "1"}
spec: {}
""")
TARGET = yaml.safe_load("""
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-db, namespace: shop, uid: tt-uid, resourceVersion: "2"}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: shop}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: TCPRoute, name: all}]
""")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_consul_options_from_flags_and_environment() -> None:
    default = from_args(_args("--mesh", "consul"), {})
    assert (default.consul_namespaces, default.widen_l7_to_l4) == (ConsulNamespaces.OFF, False)
    env = from_args(_args("--mesh", "consul"), {"SMI2MESH_CONSUL_NAMESPACES": "mirror",
                                                "SMI2MESH_WIDEN_L7_TO_L4": "true"})
    assert (env.consul_namespaces, env.widen_l7_to_l4) == (ConsulNamespaces.MIRROR, True)
    flags = from_args(_args("--mesh", "consul", "--consul-namespaces", "off", "--widen-l7-to-l4"),
                      {"SMI2MESH_CONSUL_NAMESPACES": "mirror"})
    assert (flags.consul_namespaces, flags.widen_l7_to_l4) == (ConsulNamespaces.OFF, True)
    options = env.options()
    assert (options.consul_namespaces, options.widen_l7_to_l4) == (ConsulNamespaces.MIRROR, True)


@pytest.mark.parametrize(("env", "message"), [
    ({"SMI2MESH_CONSUL_NAMESPACES": "prefix"}, "SMI2MESH_CONSUL_NAMESPACES: 'prefix'"),
    ({"SMI2MESH_WIDEN_L7_TO_L4": "yes"}, "SMI2MESH_WIDEN_L7_TO_L4: 'yes'"),
])
def test_bad_consul_options_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_args(_args("--mesh", "consul"), env)


def _body(kind: str, name: str, namespace: str, uid: str = "") -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": "1", "uid": uid or f"{namespace}-{name}"}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta}


def test_identity_index_counts_service_accounts_and_services() -> None:
    store = Store()
    store.upsert(SA, _body("ServiceAccount", "web", "a"))
    store.upsert(SVC, _body("Service", "web", "a", "svc-uid"))
    store.upsert(SA, _body("ServiceAccount", "web", "b"))
    assert store.names == {"web": {"a": 2, "b": 1}}
    store.remove(SA, _body("ServiceAccount", "web", "a"))
    assert store.names == {"web": {"a": 1, "b": 1}}
    store.remove(SVC, _body("Service", "web", "a", "svc-uid"))
    store.replace(SA, [], listed_at=5)  # b's was deleted while the watch was down
    assert store.names == {}


def _plan(store: Store, config: OperatorConfig = CONSUL) -> reconcile.Plan:
    def served(api_version: str, kind: str) -> Resource:
        return Resource(api_version.split("/", 1)[0], "v1alpha1", kind.lower() + "s", kind)

    return reconcile.plan_namespace("shop", store, config, reconcile.Parser(), served)


def _sources(plan: reconcile.Plan) -> list[dict[str, Any]]:
    [write] = [w for w in plan.writes if w.obj["kind"] == "ServiceIntentions"]
    sources: list[dict[str, Any]] = write.obj["spec"]["sources"]
    return sources


def test_a_same_named_service_account_elsewhere_replans_and_closes_the_source() -> None:
    store = Store()
    for body in (ROUTE, TARGET):
        key = next(k for k, kind in SMI_KINDS.items() if kind == body["kind"])
        store.upsert(key, copy.deepcopy(body))
    store.take_dirty()
    assert _sources(_plan(store)) == [{"name": "web", "action": "allow"}, {"name": "*", "action": "deny"}]
    # The plan read "web" and "db": a ServiceAccount "web" in another namespace re-plans shop.
    store.upsert(SA, _body("ServiceAccount", "web", "staging"))
    assert store.take_dirty() == ["shop", "staging"]
    plan = _plan(store)
    assert _sources(plan) == [{"name": "*", "action": "deny"}]
    findings = plan.outcomes["TrafficTarget/shop/web-to-db"].findings
    assert any(f.reason is FindingReason.ACCESS_FAIL_CLOSED and "staging" in f.message for f in findings)
    # A name nobody read changes nothing elsewhere.
    store.upsert(SA, _body("ServiceAccount", "unrelated", "staging"))
    assert store.take_dirty() == ["staging"]
    # Gone again: shop is re-planned and the source comes back.
    store.remove(SA, _body("ServiceAccount", "web", "staging"))
    assert "shop" in store.take_dirty()
    assert _sources(_plan(store))[0] == {"name": "web", "action": "allow"}
    # Mirror mode tells namespaces apart, so it reads no names.
    store.upsert(SA, _body("ServiceAccount", "web", "staging"))
    mirror = OperatorConfig(mesh="consul", consul_namespaces=ConsulNamespaces.MIRROR)
    assert _sources(_plan(store, mirror))[0] == {"name": "web", "namespace": "shop", "action": "allow"}
    assert store.reads.get("shop") is None


def test_slim_keeps_what_consul_and_kuma_read_of_pods() -> None:
    deployment = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop, annotations: {big: x}}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {consul.hashicorp.com/connect-service-port: pg, prometheus.io/scrape: "true"}
    spec:
      serviceAccountName: db
      containers:
      - {name: db, image: postgres, env: [{name: A, value: b}],
         ports: [{name: pg, containerPort: 5432, protocol: TCP}]}
      - {name: exporter, image: e, ports: [{containerPort: 9187}]}
""")
    body = slim(("apps", "deployments"), deployment)
    template = body["spec"]["template"]
    assert template["metadata"]["annotations"] == {"consul.hashicorp.com/connect-service-port": "pg"}
    assert template["spec"]["containers"] == [
        {"ports": [{"name": "pg", "containerPort": 5432, "protocol": "TCP"}]},
        {"ports": [{"containerPort": 9187}]}]
    sa = slim(SA, {"apiVersion": "v1", "kind": "ServiceAccount", "secrets": [{"name": "t"}],
                   "metadata": {"name": "db", "namespace": "shop", "annotations": {"a": "b"}}})
    assert sa == {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": "db", "namespace": "shop"}}
    # and the parser reads the ports back, so the operator's Consul port is exact too
    obj, problems = reconcile.Parser().parse(body)
    assert problems == []
    assert isinstance(obj, Workload)
    assert [(p.port, p.name, p.container) for p in obj.container_ports] == [(5432, "pg", 0), (9187, "", 1)]
