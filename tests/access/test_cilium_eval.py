"""The Cilium evaluator allows what the golden policies allow, and nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from smi2mesh.model import Identity
from smi2mesh.translate import translate
from tests import golden
from tests.access import HttpRequest, Request, smi_allows
from tests.access.cilium import allows, http_rule_matches, policy_allows

CASES = {c.path.name: c for c in golden.cases("cilium")}


def _objects(case: str) -> list[dict[str, Any]]:
    return CASES[case].expected_objects()


def _http(src: Identity, ns: str, sa: str, port: int, method: str, path: str,
          headers: dict[str, str] | None = None) -> Request:
    return Request(src, ns, sa, {}, "TCP", port, HttpRequest(method, path, headers or {}))


def test_v1alpha1_port_and_path() -> None:
    objs = _objects("access-v1alpha1-port")
    prom = Identity("prometheus", "monitoring")
    assert allows(objs, _http(prom, "default", "service-b", 9091, "GET", "/metrics"))
    assert allows(objs, _http(prom, "default", "service-b", 9091, "GET", "/metrics/x"))
    assert not allows(objs, _http(prom, "default", "service-b", 8080, "GET", "/metrics"))
    assert not allows(objs, _http(prom, "default", "service-b", 9091, "POST", "/metrics"))
    assert not allows(objs, _http(prom, "default", "service-b", 9091, "GET", "/x/metrics"))
    other = Identity("prometheus", "default")  # same name, other namespace
    assert not allows(objs, _http(other, "default", "service-b", 9091, "GET", "/metrics"))
    # Not HTTP on an L7 port: the proxy cannot parse it, so it is dropped.
    assert not allows(objs, Request(prom, "default", "service-b", {}, "TCP", 9091))


def test_l4_protocols_are_kept_apart() -> None:
    objs = _objects("access-v1alpha3-l4")
    client, shipper = Identity("default", "apps"), Identity("log-shipper", "infra")
    assert allows(objs, Request(client, "infra", "dns-cache", {}, "UDP", 53))
    assert not allows(objs, Request(client, "infra", "dns-cache", {}, "UDP", 5353))
    assert allows(objs, Request(client, "infra", "dns-cache", {}, "TCP", 5353))
    assert allows(objs, Request(shipper, "infra", "dns-cache", {}, "TCP", 1234))
    assert not allows(objs, Request(shipper, "infra", "dns-cache", {}, "UDP", 53))
    assert not allows(objs, Request(shipper, "infra", "other", {}, "TCP", 1234))


def test_headers_presence_exact_and_fail_closed() -> None:
    objs = _objects("cilium-headers")
    web = Identity("frontend", "web")
    ok = {"x-tenant": "acme", "x-request-id": "1"}
    assert allows(objs, _http(web, "shop", "orders", 8080, "GET", "/v1/orders/7", ok))
    assert not allows(objs, _http(web, "shop", "orders", 8080, "GET", "/v1/orders/7",
                                  {"x-tenant": "acme2", "x-request-id": "1"}))
    assert not allows(objs, _http(web, "shop", "orders", 8080, "GET", "/v1/orders",
                                  {"x-tenant": "acme"}))
    # The prefix-header match failed closed: SMI allows it, Cilium does not.
    bearer = _http(web, "shop", "orders", 8080, "PUT", "/v1/carts", {"authorization": "Bearer x"})
    assert smi_allows(CASES["cilium-headers"].inputs(), bearer)
    assert not allows(objs, bearer)
    # "/healthz$" is exact.
    assert allows(objs, _http(web, "shop", "orders", 8080, "GET", "/healthz"))
    assert not allows(objs, _http(web, "shop", "orders", 8080, "GET", "/healthz/x"))
    # Everything failed closed for carts, which is still selected, allowing nothing.
    assert not allows(objs, _http(web, "shop", "carts", 8080, "GET", "/v1/carts",
                                  {"authorization": "Bearer x"}))


def test_http_on_every_port_and_deny_only_policies() -> None:
    objs = _objects("cilium-http-all-ports")
    front, admin, batch = (Identity("frontend", "apps"), Identity("admin", "ops"),
                           Identity("batch", "apps"))
    assert allows(objs, _http(front, "apps", "backend", 31337, "GET", "/items/abc/details/1"))
    assert not allows(objs, _http(front, "apps", "backend", 31337, "GET", "/items/ABC/details"))
    assert not allows(objs, Request(front, "apps", "backend", {}, "TCP", 31337))
    assert not allows(objs, Request(front, "apps", "backend", {}, "UDP", 31337))
    assert allows(objs, _http(admin, "apps", "backend", 1, "DELETE", "/anything"))
    assert not allows(objs, _http(batch, "apps", "backend", 80, "GET", "/items/a/details"))


def test_all_golden_policies_are_no_broader_than_smi() -> None:
    """Sweep requests over every access case: each Cilium allow is an SMI allow."""
    methods = ("GET", "HEAD", "POST", "DELETE")
    paths = ("/", "/metrics", "/orders/1", "/products", "/ratings/12", "/health", "/healthz",
             "/cache/x", "/v1/orders/1", "/items/ab/details")
    headers: tuple[dict[str, str], ...] = (
        {}, {"accept": "application/json", "x-tenant": "acme", "x-request-id": "7"})
    for case in CASES.values():
        inputs = case.inputs()
        objs = case.expected_objects()
        for tt in inputs.targets:
            srcs = [*tt.sources, Identity("stranger", tt.meta.namespace)]
            for src in srcs:
                for port in (53, 80, 514, 5353, 6379, 7041, 8080, 9080, 9091, 40000):
                    for proto in ("TCP", "UDP"):
                        base = Request(src, tt.destination.namespace, tt.destination.name,
                                       {}, proto, port)
                        assert not allows(objs, base) or smi_allows(inputs, base), base
                    for m in methods:
                        for p in paths:
                            for h in headers:
                                req = Request(src, tt.destination.namespace, tt.destination.name,
                                              {}, "TCP", port, HttpRequest(m, p, h))
                                assert not allows(objs, req) or smi_allows(inputs, req), req


def test_golden_outputs_are_current() -> None:
    for case in CASES.values():
        result = translate(case.inputs(), "cilium")
        assert [dict(o) for o in result.objects] == case.expected_objects()


def _policy(ingress: list[dict[str, Any]], ns: str = "a",
            selector: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": ns},
            "spec": {"endpointSelector": selector or {}, "ingress": ingress}}


SRC = Identity("client", "a")


def _req(src: Identity = SRC, proto: str = "TCP", port: int = 80,
         http: HttpRequest | None = None, ns: str = "a") -> Request:
    return Request(src, ns, "server", {"app": "server"}, proto, port, http)


def test_peer_selector_semantics() -> None:
    # Without a namespace requirement a selector only picks the policy's namespace.
    sel = {"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "client"}}
    pol = _policy([{"fromEndpoints": [sel]}])
    assert policy_allows(pol, _req())
    assert not policy_allows(pol, _req(Identity("client", "b")))
    # An empty rule and an empty peer list allow nothing.
    assert not policy_allows(_policy([{}]), _req())
    assert not policy_allows(_policy([{"fromEndpoints": [], "toPorts": [
        {"ports": [{"port": "80", "protocol": "TCP"}]}]}]), _req())
    # A missing peer list with toPorts is a wildcard, from any namespace.
    wild = _policy([{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}])
    assert policy_allows(wild, _req(Identity("x", "elsewhere")))
    # A policy only applies in its own namespace and to the endpoints it selects.
    assert not policy_allows(_policy([{"fromEndpoints": [{}]}], ns="b"), _req())
    only_db = _policy([{"fromEndpoints": [{}]}], selector={"matchLabels": {"app": "db"}})
    assert not policy_allows(only_db, _req())
    expr = {"matchExpressions": [{"key": "k8s:app", "operator": "In", "values": ["server"]}]}
    assert policy_allows(_policy([{"fromEndpoints": [{}]}], selector=expr), _req())


def test_port_semantics() -> None:
    def pol(*ports: dict[str, Any]) -> dict[str, Any]:
        return _policy([{"fromEndpoints": [{}], "toPorts": [{"ports": list(ports)}]}])

    assert policy_allows(pol({"port": "0", "protocol": "UDP"}), _req(proto="UDP", port=9))
    assert not policy_allows(pol({"port": "0", "protocol": "UDP"}), _req(proto="TCP", port=9))
    assert policy_allows(pol({"port": "80"}), _req(proto="UDP"))  # protocol omitted: ANY
    assert policy_allows(pol({"port": "1", "endPort": 100, "protocol": "TCP"}), _req(port=100))
    assert not policy_allows(pol({"port": "1", "endPort": 99, "protocol": "TCP"}), _req(port=100))
    assert policy_allows(_policy([{"fromEndpoints": [{}]}]), _req(proto="UDP", port=1))
    with pytest.raises(NotImplementedError):
        policy_allows(pol({"port": "http", "protocol": "TCP"}), _req())


def test_http_rule_semantics() -> None:
    get = HttpRequest("GET", "/a/b", {"x-id": "1", "x-tenant": "acme"})
    assert http_rule_matches({}, get)
    assert http_rule_matches({"method": "GET|HEAD", "path": "/a/.*"}, get)
    assert not http_rule_matches({"path": "/a"}, get)  # full match, not prefix
    assert not http_rule_matches({"method": "GE"}, get)
    assert http_rule_matches({"headers": ["X-Id"]}, get)
    assert http_rule_matches({"headers": ["x-tenant acme"]}, get)
    assert not http_rule_matches({"headers": ["x-tenant acme2"]}, get)
    assert not http_rule_matches({"headers": ["x-other"]}, get)
    assert http_rule_matches({"headerMatches": [{"name": "x-tenant", "value": "acme"}]}, get)
    assert not http_rule_matches({"headerMatches": [{"name": "x-tenant", "value": "ac"}]}, get)
    assert http_rule_matches({"headerMatches": [{"name": "x-id", "value": ""}]}, get)
    assert http_rule_matches(
        {"headerMatches": [{"name": "x-tenant", "value": "no", "mismatch": "LOG"}]}, get)


def test_l7_rules_take_the_port_over_for_that_peer() -> None:
    """An L4 grant on a port that an HTTP rule range also covers no longer passes raw TCP.

    Cilium's policy repository redirects the peer's traffic on that port to the
    proxy (tests/meshcheck/test_cilium_differential.py asks it): only HTTP gets
    through, and the L4 grant then allows any request.
    """
    sel = {"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "client"}}
    l4 = _policy([{"fromEndpoints": [sel], "toPorts": [{"ports": [{"port": "6379", "protocol": "TCP"}]}]}])
    l7 = _policy([{"fromEndpoints": [sel], "toPorts": [{
        "ports": [{"port": "1", "endPort": 65535, "protocol": "TCP"}],
        "rules": {"http": [{"method": "GET", "path": "/cache/.*"}]}}]}])
    raw = _req(port=6379)
    assert policy_allows(l4, raw)
    assert not allows([l4, l7], raw)
    assert allows([l4, l7], _req(port=6379, http=HttpRequest("POST", "/anything")))
    assert not allows([l4, l7], _req(port=80, http=HttpRequest("POST", "/anything")))
    assert allows([l4, l7], _req(port=80, http=HttpRequest("GET", "/cache/x")))
    # Another peer's L7 rules do not redirect this peer's traffic.
    other = {"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "other"}}
    l7_other = _policy([{"fromEndpoints": [other], "toPorts": [{
        "ports": [{"port": "6379", "protocol": "TCP"}], "rules": {"http": [{}]}}]}])
    assert allows([l4, l7_other], raw)
