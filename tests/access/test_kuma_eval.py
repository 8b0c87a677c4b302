"""The Kuma evaluator allows what the golden MeshTrafficPermissions allow, and nothing else."""

from __future__ import annotations

from typing import Any

import yaml

from smi2mesh.model import Identity
from tests.access import HttpRequest, Request, smi_allows
from tests.access.kuma import allows
from tests.golden import GOLDEN, Case

KUMA = GOLDEN / "kuma"


def _objects(case: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KUMA / case / "output.yaml").read_text()) if d]


def _mtp(namespace: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "kuma.io/v1alpha1", "kind": "MeshTrafficPermission",
            "metadata": {"name": "p", "namespace": namespace, "labels": labels or {}}, "spec": spec}


def _allow(*ids: str, key: str = "allow") -> dict[str, Any]:
    return {"rules": [{"default": {key: [{"spiffeID": {"type": "Exact", "value": i}} for i in ids]}}]}


def test_all_port_tcp_grant_allows_sources_on_every_port() -> None:
    case = "kuma-access-l4"
    objects = _objects(case)
    inputs = Case("kuma", KUMA / case).inputs()
    labels = {"app": "postgres"}

    def req(src: Identity, port: int, proto: str = "TCP", dest_sa: str = "postgres",
            dest_ns: str = "db") -> Request:
        return Request(src, dest_ns, dest_sa, labels, proto, port)

    orders, backup = Identity("orders", "shop"), Identity("backup", "db")
    metrics = Identity("metrics", "monitoring")
    allowed = [req(orders, 5432), req(orders, 1), req(backup, 8080), req(metrics, 5432)]
    for r in allowed:
        assert allows(objects, r)
        assert smi_allows(inputs, r)
    # L4 allows cover HTTP requests too.
    http = Request(orders, "db", "postgres", labels, "TCP", 8080, HttpRequest("DELETE", "/x"))
    assert allows(objects, http)
    assert smi_allows(inputs, http)
    denied = [
        req(Identity("orders", "other"), 5432),  # same name, other namespace
        req(Identity("reporting", "bi"), 5432),  # port-scoped grant failed closed
        req(orders, 5432, dest_sa="replica"),  # another ServiceAccount's dataplane
        req(orders, 5432, dest_ns="shop"),  # the policy only selects its own namespace
    ]
    for r in denied:
        assert not allows(objects, r)
    # SMI allows these, Kuma cannot: the UDP and the port-scoped grant fail closed.
    for r in (req(metrics, 8125, "UDP"), req(Identity("reporting", "bi"), 5432)):
        assert smi_allows(inputs, r)
        assert not allows(objects, r)


def test_http_grants_are_never_allowed() -> None:
    for case in ("access-v1alpha1-port", "access-v1alpha2-http", "access-v1alpha3-l7-scoped",
                 "access-unresolved"):
        # Only the deny-by-default policies: they deny the bare trust-domain ID, no workload.
        for obj in _objects(case):
            assert obj["metadata"]["name"].endswith("-smi-default-deny")
            assert obj["spec"]["rules"] == [{"default": {"deny": [
                {"spiffeID": {"type": "Exact", "value": "spiffe://cluster.local"}}]}}]
    # An HTTP-only TrafficTarget yields no allow, even for a request SMI allows.
    inputs = Case("kuma", KUMA / "access-v1alpha2-http").inputs()
    r = Request(Identity("frontend", "web"), "store", "catalog", {"app": "catalog"}, "TCP", 80,
                HttpRequest("GET", "/products", {"accept": "application/json"}))
    assert smi_allows(inputs, r)
    assert not allows(_objects("access-v1alpha2-http"), r)


def test_l4_case_allows_only_the_all_port_target() -> None:
    objects = _objects("access-v1alpha3-l4")
    inputs = Case("kuma", KUMA / "access-v1alpha3-l4").inputs()
    shipper, client = Identity("log-shipper", "infra"), Identity("default", "apps")
    labels = {"app": "dns-cache"}
    ok = Request(shipper, "infra", "dns-cache", labels, "TCP", 1234)
    assert allows(objects, ok)
    assert smi_allows(inputs, ok)
    assert not allows(objects, Request(shipper, "infra", "dns-cache", labels, "UDP", 53))
    assert not allows(objects, Request(client, "infra", "dns-cache", labels, "TCP", 53))


def test_trust_domain_and_prefix_matching() -> None:
    src = Identity("a", "ns1")
    r = Request(src, "ns2", "b", {}, "TCP", 80)
    spec = {"targetRef": {"kind": "Dataplane", "labels": {"k8s.kuma.io/service-account": "b"}},
            **_allow("spiffe://cluster.local/ns/ns1/sa/a")}
    assert allows([_mtp("ns2", spec)], r)
    assert not allows([_mtp("ns2", spec)], r, trust_domain="default.zone.mesh.local")
    prefix = {"rules": [{"default": {"allow": [{"spiffeID": {"type": "Prefix",
                                                             "value": "spiffe://cluster.local/ns/ns1/"}}]}}]}
    assert allows([_mtp("ns2", prefix)], r)
    assert not allows([_mtp("ns2", prefix)], Request(Identity("a", "ns10"), "ns2", "b", {}, "TCP", 80))


def test_selection_deny_and_mesh() -> None:
    src = Identity("a", "ns1")
    sid = "spiffe://cluster.local/ns/ns1/sa/a"
    r = Request(src, "ns2", "b", {"app": "b"}, "TCP", 80)
    by_label = {"targetRef": {"kind": "Dataplane", "labels": {"app": "b"}}, **_allow(sid)}
    assert allows([_mtp("ns2", by_label)], r)
    assert not allows([_mtp("ns2", by_label, {"kuma.io/mesh": "other"})], r)
    # A system-namespace policy selects across namespaces.
    assert allows([_mtp("kuma-system", {**_allow(sid)})], r)
    # sectionName narrows to one inbound: its container port's name, else its number.
    section = {"targetRef": {"kind": "Dataplane", "sectionName": "8080"}, **_allow(sid)}
    assert not allows([_mtp("ns2", section)], r)
    on_8080 = Request(src, "ns2", "b", {}, "TCP", 8080)
    assert allows([_mtp("ns2", section)], on_8080)
    assert not allows([_mtp("ns2", section)], on_8080, inbound_names={8080: "http"})
    named = {"targetRef": {"kind": "Dataplane", "sectionName": "http"}, **_allow(sid)}
    assert allows([_mtp("ns2", named)], on_8080, inbound_names={8080: "http"})
    assert not allows([_mtp("ns2", named)], on_8080)
    deny = {"rules": [{"default": {"deny": [{"spiffeID": {"type": "Exact", "value": sid}}]}}]}
    assert not allows([_mtp("ns2", by_label), _mtp("ns2", deny)], r)
    shadow = {"targetRef": {"kind": "Mesh"}, **_allow(sid, key="allowWithShadowDeny")}
    assert allows([_mtp("ns2", shadow)], r)
    legacy = {"targetRef": {"kind": "Mesh"},
              "from": [{"targetRef": {"kind": "MeshSubset", "tags": {"k8s.kuma.io/namespace": "ns1"}},
                        "default": {"action": "Allow"}}]}
    assert allows([_mtp("ns2", legacy)], r)
    assert not allows([_mtp("ns2", legacy)], Request(Identity("a", "ns3"), "ns2", "b", {}, "TCP", 80))
    # Routes and other kinds never allow anything.
    assert not allows(_objects("split-v1alpha2-canary"), r)


def test_port_inbounds_case_grants_exactly_the_restricted_inbounds() -> None:
    case = "kuma-port-inbounds"
    objects = _objects(case)
    inputs = Case("kuma", KUMA / case).inputs()
    names = {8080: "http"}  # api's container ports: http=8080, 9090 unnamed
    app, prom, web = Identity("app", "shop"), Identity("prometheus", "monitoring"), Identity("web", "shop")

    def req(src: Identity, sa: str, port: int) -> Request:
        return Request(src, "db", sa, {"app": sa}, "TCP", port)

    for r in (req(app, "postgres", 5432), req(prom, "api", 9090), req(web, "api", 8080)):
        assert allows(objects, r, inbound_names=names), r
        assert smi_allows(inputs, r), r
    for r in (req(prom, "api", 8080), req(web, "api", 9090), req(app, "api", 5432),
              req(Identity("app", "other"), "postgres", 5432)):
        assert not allows(objects, r, inbound_names=names), r
        assert not smi_allows(inputs, r), r
    # SMI grants 7777 too, but it is no inbound: Kuma's mesh never carries it.
    assert smi_allows(inputs, req(prom, "api", 7777))
    assert not allows(objects, req(prom, "api", 7777), inbound_names=names)


def test_widened_case_is_broader_than_smi_and_says_so() -> None:
    case = "kuma-widen"
    objects = _objects(case)
    inputs = Case("kuma", KUMA / case).inputs()
    names = {8080: "http", 8081: "admin"}
    frontend = Identity("frontend", "web")
    post = Request(frontend, "store", "catalog", {"app": "catalog"}, "TCP", 8080,
                   HttpRequest("POST", "/admin"))
    assert allows(objects, post, inbound_names=names)
    assert not smi_allows(inputs, post)  # the price of --widen-l7-to-l4
    # still limited to the TCPRoute's port
    assert not allows(objects, Request(frontend, "store", "catalog", {}, "TCP", 8081), inbound_names=names)
    widened = [f for f in yaml.safe_load((KUMA / case / "findings.yaml").read_text())
               if f["reason"] == "Widened"]
    assert [(f["object"], f["field"]) for f in widened] == [
        ("store/TrafficTarget/frontend-reads", "spec.rules[1]"),
        ("store/TrafficTarget/ops-anything", "spec.rules[0]")]
