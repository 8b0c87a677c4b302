"""The Linkerd evaluator allows what the golden Linkerd policy allows, and nothing else."""

from __future__ import annotations

import itertools
from typing import Any

import yaml

from smi2mesh.model import Identity
from tests.access import HttpRequest, Request, smi_allows
from tests.access.linkerd import allows, default_denies, path_match, request_match
from tests.golden import GOLDEN, Case

LINKERD = GOLDEN / "linkerd"


def _objects(case: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((LINKERD / case / "output.yaml").read_text()) if d]


def _check(case: str, allowed: list[Request], denied: list[Request]) -> None:
    objects = _objects(case)
    inputs = Case("linkerd", LINKERD / case).inputs()
    for r in allowed:
        assert allows(objects, r), r
        assert smi_allows(inputs, r), r
    for r in denied:
        assert not allows(objects, r), r


def test_l7_scoped_routes() -> None:
    src = Identity("reviews", "books")

    def req(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            source: Identity = src) -> Request:
        return Request(source, "books", "ratings", {"app": "ratings"}, "TCP", port,
                       HttpRequest(method, path, headers or {}))

    _check("access-v1alpha3-l7-scoped",
           allowed=[req(9080, "GET", "/ratings/7"), req(9080, "GET", "/ratings/7/x"),
                    req(9080, "GET", "/health"),
                    req(9080, "PUT", "/internal/x", {"x-caller": "svc-products"})],
           denied=[req(9081, "GET", "/ratings/7"), req(9080, "GET", "/ratings/x"),
                   req(9080, "POST", "/ratings/7"), req(9080, "GET", "/healthz"),
                   req(9080, "PUT", "/internal/x", {"x-caller": "svc-other"}),
                   req(9080, "PUT", "/internal/x"),
                   req(9080, "GET", "/ratings/7", source=Identity("reviews", "other")),
                   # Plain TCP to a Server with only route policies is refused.
                   Request(src, "books", "ratings", {"app": "ratings"}, "TCP", 9080)])


def test_shared_server_l4_and_http_grants_do_not_widen_each_other() -> None:
    prom = Identity("prometheus", "monitoring")
    frontend = Identity("frontend", "web")
    admin = Identity("admin", "ops")

    def req(src: Identity, method: str | None, path: str = "/", labels: str = "api",
            port: int = 8080) -> Request:
        http = HttpRequest(method, path) if method else None
        return Request(src, "shop", "api", {"app": labels}, "TCP", port, http)

    _check("linkerd-shared-server",
           allowed=[req(prom, None), req(prom, "GET", "/anything"), req(prom, "PUT", "/items/3"),
                    req(frontend, "GET", "/items"), req(frontend, "HEAD", "/items/3", "api-worker"),
                    req(admin, "DELETE", "/items/3"), req(admin, "PUT", "/items/3", "api-worker")],
           denied=[req(frontend, None), req(frontend, "PUT", "/items/3"),
                   req(frontend, "GET", "/other"), req(admin, "GET", "/items"),
                   req(admin, "PUT", "/items/x"), req(prom, None, port=9090),
                   req(prom, "GET", "/", labels="other"),
                   req(Identity("prometheus", "other"), "GET", "/items")])


def test_l4_ports_udp_and_all_ports_on_known_ports() -> None:
    client = Identity("default", "apps")
    shipper = Identity("log-shipper", "infra")
    labels = {"app": "dns-cache"}

    def req(src: Identity, proto: str, port: int) -> Request:
        return Request(src, "infra", "dns-cache", labels, proto, port)

    # The all-ports grant holds on the ports known for the pods (the other
    # target's route ports); UDP is not proxied.
    _check("access-v1alpha3-l4",
           allowed=[req(client, "TCP", 53), req(client, "TCP", 5353), req(shipper, "TCP", 53),
                    req(shipper, "TCP", 5353)],
           denied=[req(client, "UDP", 53), req(client, "TCP", 54), req(shipper, "TCP", 1234)])
    objects = _objects("access-v1alpha3-l4")
    assert default_denies(objects, req(client, "TCP", 5353))
    # A port with no Server follows Linkerd's default, as the finding says.
    assert not default_denies(objects, req(shipper, "TCP", 1234))


def test_allows_implies_smi_allows_on_every_golden_case() -> None:
    """A small exhaustive grid per case: the evaluator never allows what SMI denies."""
    methods = ["GET", "PUT", "DELETE"]
    paths = ["/", "/items", "/items/3", "/items/audit", "/itemsx", "/status", "/status/x",
             "/metrics", "/ratings/1", "/health", "/internal/a", "/v1", "/v1beta", "/reports/a",
             "/debug", "/cache/k", "/orders"]
    headers: list[dict[str, str]] = [{}, {"x-caller": "svc-reviews"}, {"x-debug": ""},
                                     {"x-tenant": "acme-eu"}, {"accept": "application/json"}]
    for case in sorted(p.name for p in LINKERD.iterdir()):
        objects = _objects(case)
        inputs = Case("linkerd", LINKERD / case).inputs()
        checked = allowed = 0
        for tt in inputs.targets:
            labels_of = [w.pod_labels for w in inputs.workloads_of(tt.destination.namespace,
                                                                  tt.destination.name)]
            ports = sorted({o["spec"]["port"] for o in objects if o["kind"] == "Server"} | {1, 53})
            for src, labels, port in itertools.product(tt.sources, labels_of, ports):
                base = (src, tt.destination.namespace, tt.destination.name, labels)
                reqs = [Request(*base, "TCP", port), Request(*base, "UDP", port)]
                reqs += [Request(*base, "TCP", port, HttpRequest(m, p, h))
                         for m, p, h in itertools.product(methods, paths, headers)]
                for r in reqs:
                    checked += 1
                    if allows(objects, r):
                        allowed += 1
                        assert smi_allows(inputs, r), (case, r)
        assert checked or not inputs.targets
        # The grid reaches the policies: every case with a policy allows something.
        assert allowed or not any(o["kind"] == "AuthorizationPolicy" for o in objects), case


def test_path_and_header_semantics_are_linkerd_s() -> None:
    # PathPrefix matches whole segments, Exact the whole path.
    assert path_match({"type": "PathPrefix", "value": "/api"}, "/api/v1") == 4
    assert path_match({"type": "PathPrefix", "value": "/api"}, "/apiv2") is None
    assert path_match({"type": "PathPrefix", "value": "/"}, "/anything") == 1
    assert path_match({"type": "Exact", "value": "/a"}, "/a/") is None
    # Regexes: a leftmost-first search must span the whole value, so an
    # unanchored alternation can miss a value it full-matches.
    assert path_match({"type": "RegularExpression", "value": "/a|/ab"}, "/ab") is None
    assert path_match({"type": "RegularExpression", "value": "^(?:/a|/ab)$"}, "/ab") == 3
    header = {"headers": [{"type": "RegularExpression", "name": "x-v", "value": "a|ab"}]}
    assert request_match(header, HttpRequest("GET", "/", {"x-v": "ab"})) is None
    assert request_match(header, HttpRequest("GET", "/", {"x-v": "a"})) == (1, False, 1, 0)


def _policy_objects(access_policy: str = "deny", authn: bool = True) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
         "metadata": {"name": "s", "namespace": "n"},
         "spec": {"podSelector": {"matchLabels": {"app": "a"}}, "port": 80,
                  "accessPolicy": access_policy}},
        {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "p", "namespace": "n"},
         "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "s"},
                  "requiredAuthenticationRefs": [
                      {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "m"}]}},
    ]
    if authn:
        objs.append({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
                     "metadata": {"name": "m", "namespace": "n"},
                     "spec": {"identityRefs": [{"kind": "ServiceAccount", "name": "c"}]}})
    return objs


def test_policies_authentications_and_access_policy() -> None:
    def req(src: Identity, labels: dict[str, str] | None = None) -> Request:
        return Request(src, "n", "a", labels or {"app": "a"}, "TCP", 80)

    objects = _policy_objects()
    assert allows(objects, req(Identity("c", "n")))  # identityRef namespace defaults to the authn's
    assert not allows(objects, req(Identity("c", "other")))
    assert not allows(objects, req(Identity("c", "n"), {"app": "b"}))
    # A policy whose authentication does not exist is ignored.
    assert not allows(_policy_objects(authn=False), req(Identity("c", "n")))
    # A Server that is not deny-by-default allows everyone.
    assert allows(_policy_objects("all-unauthenticated"), req(Identity("x", "y")))
    assert not allows([], req(Identity("c", "n")))
