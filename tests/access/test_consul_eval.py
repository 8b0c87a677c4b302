"""The Consul evaluator must both allow and deny, on golden outputs and hand-made intentions."""

from __future__ import annotations

from typing import Any

import yaml

from smi2mesh.model import Identity
from tests.access import HttpRequest, Request, smi_allows
from tests.access.consul import allows, http_matches
from tests.golden import GOLDEN, Case

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
        # same name, other namespace: must not match the web/frontend source
        _http(Identity("frontend", "evil"), "store", "catalog", "GET", "/products",
              {"accept": "application/json"}),
        # same destination name in another namespace
        _http(frontend, "other", "catalog", "GET", "/products", {"accept": "application/json"}),
    ]
    for req in denied:
        assert not allows(objects, req), req
        assert not smi_allows(inputs, req), req


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
    assert port_scoped == []  # port-scoped grants fail closed: nothing to allow with
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
