"""The Consul evaluator must both allow and deny, on golden outputs and hand-made intentions."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Identity, Inputs
from smi2mesh.translate import translate
from smi2mesh.translators.base import ConsulNamespaces, Options
from tests.access import HttpRequest, Request, smi_allows
from tests.access.consul import allows, http_matches
from tests.golden import GOLDEN, Case
from tests.test_properties import IDENTITIES

CONSUL = GOLDEN / "consul"


def _objects(case: str) -> list[dict[str, Any]]:
    text = (CONSUL / case / "output.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def _http(src: Identity, ns: str, sa: str, method: str, path: str,
          headers: dict[str, str] | None = None, port: int = 8080) -> Request:
    return Request(src, ns, sa, {}, "TCP", port, HttpRequest(method, path, headers or {}))


def test_http_permissions_of_the_catalog_case() -> None:
    objects = _objects("access-v1alpha2-http")
    inputs = Case("consul", CONSUL / "access-v1alpha2-http").inputs()
    frontend = Identity("frontend", "web")
    ok = _http(frontend, "store", "catalog", "GET", "/products/1", {"accept": "application/json"})
    assert allows(objects, ok)
    assert smi_allows(inputs, ok)
    denied = [
        _http(frontend, "store", "catalog", "POST", "/products/1", {"accept": "application/json"}),
        _http(frontend, "store", "catalog", "GET", "/admin", {"accept": "application/json"}),
        _http(frontend, "store", "catalog", "GET", "/products/1", {"accept": "text/html"}),
        _http(frontend, "store", "catalog", "GET", "/products/1"),
    ]
    for req in denied:
        assert not allows(objects, req), req
        assert not smi_allows(inputs, req), req
    # Consul CE (the default) names sources without a namespace: a frontend of another
    # namespace would match, which is why a name two namespaces have fails closed there.
    evil = _http(Identity("frontend", "evil"), "store", "catalog", "GET", "/products",
                 {"accept": "application/json"})
    assert allows(objects, evil)
    assert "evil" not in inputs.namespaces_with_identity("frontend")


def test_mirror_mode_tells_namespaces_apart() -> None:
    objects = _objects("consul-merged-intentions")  # translated with --consul-namespaces mirror
    prober = Identity("prober", "monitoring")
    assert allows(objects, _http(prober, "shop", "orders", "GET", "/healthz"), namespaces="mirror")
    for req in [
        _http(Identity("prober", "evil"), "shop", "orders", "GET", "/healthz"),
        _http(prober, "other", "orders", "GET", "/healthz"),  # same destination name elsewhere
    ]:
        assert not allows(objects, req, namespaces="mirror"), req


def test_deny_by_default_wins_only_where_nothing_more_precise_applies() -> None:
    objects = _objects("consul-single-port")
    app, other = Identity("app", "shop"), Identity("intruder", "shop")
    assert allows(objects, Request(app, "data", "postgres", {}, "TCP", 5432), service_ports={5432})
    assert not allows(objects, Request(other, "data", "postgres", {}, "TCP", 5432))
    # the grant for 9187 failed closed: the '*' deny decides for prometheus
    scraper = Identity("prometheus", "monitoring")
    assert not allows(objects, Request(scraper, "data", "postgres", {}, "TCP", 9187))


def test_l4_allow_and_fail_closed_ports() -> None:
    objects = _objects("access-v1alpha3-l4")
    shipper = Identity("log-shipper", "infra")
    assert allows(objects, Request(shipper, "infra", "dns-cache", {}, "TCP", 1234))
    assert allows(objects, _http(shipper, "infra", "dns-cache", "DELETE", "/anything"))
    assert not allows(objects, Request(shipper, "infra", "dns-cache", {}, "UDP", 53))
    # port-scoped grant: SMI allows it, Consul gets nothing (narrower, reported)
    client = Identity("default", "apps")
    assert not allows(objects, Request(client, "infra", "dns-cache", {}, "TCP", 53))


def test_merged_intentions() -> None:
    objects = _objects("consul-merged-intentions")
    inputs = Case("consul", CONSUL / "consul-merged-intentions").inputs()
    batch = Identity("batch", "shop")
    frontend = Identity("frontend", "web")
    prober = Identity("prober", "monitoring")
    for req in [
        Request(batch, "shop", "orders", {}, "TCP", 5432),
        _http(prober, "shop", "orders", "GET", "/healthz"),
        _http(prober, "shop", "orders", "POST", "/anything"),  # the catch-all match
        _http(frontend, "shop", "orders", "GET", "/orders/12"),
    ]:
        assert allows(objects, req), req
        assert smi_allows(inputs, req), req
    for req in [
        Request(prober, "shop", "orders", {}, "TCP", 5432),  # HTTP-only source, raw TCP
        Request(Identity("batch", "web"), "shop", "orders", {}, "TCP", 5432),
        _http(Identity("prober", "shop"), "shop", "orders", "GET", "/healthz"),
    ]:
        assert not allows(objects, req), req
        assert not smi_allows(inputs, req), req


def test_no_objects_no_access() -> None:
    req = Request(Identity("a", "x"), "y", "b", {}, "TCP", 80)
    assert not allows([], req)
    port_scoped = _objects("access-v1alpha1-port")
    # port-scoped grants without known ports fail closed: only the deny-by-default is left
    assert [s for o in port_scoped for s in o["spec"]["sources"]] == [{"name": "*", "action": "deny"}]
    prom = Identity("prometheus", "monitoring")
    assert not allows(port_scoped, _http(prom, "default", "service-b", "GET", "/metrics", port=9091))


def _intention(sources: list[dict[str, Any]], dest: str = "api", ns: str = "app") -> dict[str, Any]:
    return {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceIntentions",
            "metadata": {"name": dest, "namespace": ns},
            "spec": {"destination": {"name": dest}, "sources": sources}}


def test_precedence_and_first_matching_permission() -> None:
    src = Identity("web", "app")
    objs = [_intention([
        {"name": "*", "namespace": "app", "action": "allow"},
        {"name": "web", "namespace": "app", "permissions": [
            {"action": "deny", "http": {"pathPrefix": "/admin"}},
            {"action": "allow", "http": {"pathPrefix": "/"}},
        ]},
    ])]
    assert allows(objs, _http(src, "app", "api", "GET", "/x"))
    # the exact source wins over the wildcard, and its first matching permission denies
    assert not allows(objs, _http(src, "app", "api", "GET", "/admin/x"))
    # the wildcard applies to other sources of that namespace
    assert allows(objs, Request(Identity("other", "app"), "app", "api", {}, "TCP", 1))
    assert not allows(objs, Request(Identity("other", "else"), "app", "api", {}, "TCP", 1))


def test_source_without_namespace_is_read_broadly() -> None:
    objs = [_intention([{"name": "web", "action": "allow"}])]
    assert allows(objs, Request(Identity("web", "anywhere"), "app", "api", {}, "TCP", 1))


def test_http_match_forms() -> None:
    req = HttpRequest("GET", "/v1/items?x=1", {"x-a": "Acme", "x-b": "v2"})
    assert http_matches({"pathExact": "/v1/items"}, req)  # query is not part of the path
    assert http_matches({"pathPrefix": "/v1/it"}, req)
    assert not http_matches({"pathRegex": "/v1"}, req)  # full match
    assert http_matches({"pathRegex": "/v1/.*"}, req)
    assert not http_matches({"methods": ["POST"]}, req)
    assert http_matches({"header": [{"name": "x-a", "exact": "acme", "ignoreCase": True},
                                    {"name": "x-b", "regex": "v[0-9]"}]}, req)
    assert not http_matches({"header": [{"name": "x-b", "regex": "v"}]}, req)
    assert not http_matches({"header": [{"name": "x-c", "present": True}]}, req)
    assert http_matches({"header": [{"name": "x-c", "present": True, "invert": True}]}, req)
    assert not http_matches({"header": [{"name": "x-a", "suffix": "me", "invert": True}]}, req)


@st.composite
def _ce_worlds(draw: st.DrawFn) -> tuple[Inputs, list[Request]]:
    """TrafficTargets with all-port and HTTP grants between same-named identities of two
    namespaces, a random part of the cluster's ServiceAccounts known, and requests."""
    docs = ["""
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: ns}
spec: {}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec: {matches: [{name: m, methods: [GET]}]}
"""]
    for i in range(draw(st.integers(1, 3))):
        sources = draw(st.lists(st.sampled_from(IDENTITIES), min_size=1, max_size=3, unique=True))
        rule = draw(st.sampled_from(["TCPRoute, name: all", "HTTPRouteGroup, name: g"]))
        docs.append(f"""
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: t{i}, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: {draw(st.sampled_from(["a", "b"]))}, namespace: ns}}
  sources: [{", ".join(f"{{kind: ServiceAccount, name: {s.name}, namespace: {s.namespace}}}"
                        for s in sources)}]
  rules: [{{kind: {rule}}}]
""")
    for ident in draw(st.lists(st.sampled_from(IDENTITIES), unique=True)):
        docs.append(f"apiVersion: v1\nkind: ServiceAccount\n"
                    f"metadata: {{name: {ident.name}, namespace: {ident.namespace}}}\n")
    inputs = parse_documents(yamlio.load_documents("w.yaml", "\n---\n".join(docs)))
    reqs = [Request(src, "ns", dest, {}, "TCP", 80, http)
            for src in IDENTITIES for dest in ("a", "b")
            for http in (None, HttpRequest("GET", "/"), HttpRequest("POST", "/"))]
    return inputs, reqs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=_ce_worlds(), mode=st.sampled_from(list(ConsulNamespaces)))
def test_consul_never_allows_more_than_smi_in_either_namespace_mode(
        world: tuple[Inputs, list[Request]], mode: ConsulNamespaces) -> None:
    """Same-named identities in two namespaces, a random part of them known.

    In CE mode only requests from identities the input knows can be judged:
    Consul cannot tell an unknown same-named one apart, which is why known
    clashes fail closed.
    """
    inputs, reqs = world
    objects = list(translate(inputs, "consul", Options(consul_namespaces=mode)).objects)
    for req in reqs:
        if mode is ConsulNamespaces.OFF and \
                req.source.namespace not in inputs.namespaces_with_identity(req.source.name):
            continue
        if allows(objects, req, namespaces=mode.value):
            assert smi_allows(inputs, req), f"consul ({mode}) allows {req} but SMI does not"
