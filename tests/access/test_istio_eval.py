"""The Istio evaluator allows what the golden AuthorizationPolicies allow, and nothing else."""

from __future__ import annotations

from typing import Any

import yaml

from smi2mesh.model import Identity
from tests.access import HttpRequest, Request, smi_allows
from tests.access.istio import allows, path_matches, value_matches
from tests.golden import GOLDEN, Case

ISTIO = GOLDEN / "istio"


def _objects(case: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ISTIO / case / "output.yaml").read_text()) if d]


def test_http_rules_of_v1alpha1_port_case() -> None:
    objects = _objects("access-v1alpha1-port")
    inputs = Case("istio", ISTIO / "access-v1alpha1-port").inputs()
    prom = Identity("prometheus", "monitoring")
    labels = {"app": "service-b", "version": "v1"}

    def req(port: int, method: str, path: str, src: Identity = prom) -> Request:
        return Request(src, "default", "service-b", labels, "TCP", port, HttpRequest(method, path))

    allowed = [req(9091, "GET", "/metrics"), req(9091, "GET", "/metrics/x?y=1")]
    denied = [req(8080, "GET", "/metrics"), req(9091, "POST", "/metrics"),
              req(9091, "GET", "/x/metrics"), req(9091, "GET", "/metrics", Identity("o", "monitoring"))]
    for r in allowed:
        assert allows(objects, r)
        assert smi_allows(inputs, r)
    for r in denied:
        assert not allows(objects, r)
        assert not smi_allows(inputs, r)
    # An HTTP allow never lets plain TCP through (Istio skips rules with HTTP-only fields).
    assert not allows(objects, Request(prom, "default", "service-b", labels, "TCP", 9091))
    # Other pods in the namespace are not selected.
    assert not allows(objects, Request(prom, "default", "other", {"app": "other"}, "TCP", 9091,
                                       HttpRequest("GET", "/metrics")))


def test_headers_and_fail_closed_matches() -> None:
    objects = _objects("access-v1alpha3-l7-scoped")
    src = Identity("reviews", "books")

    def req(method: str, path: str, headers: dict[str, str] | None = None) -> Request:
        return Request(src, "books", "ratings", {"app": "ratings"}, "TCP", 9080,
                       HttpRequest(method, path, headers or {}))

    assert allows(objects, req("GET", "/health"))
    assert not allows(objects, req("GET", "/healthz"))
    # SMI allows these, but their regexes cannot be expressed: denied (fail closed).
    assert not allows(objects, req("GET", "/ratings/7"))
    assert not allows(objects, req("PUT", "/internal/x", {"x-caller": "svc-reviews"}))

    catalog = _objects("access-v1alpha2-http")
    frontend = Identity("frontend", "web")

    def creq(path: str, headers: dict[str, str]) -> Request:
        return Request(frontend, "store", "catalog", {"app": "catalog"}, "TCP", 80,
                       HttpRequest("GET", path, headers))

    assert allows(catalog, creq("/products/1", {"accept": "application/json"}))
    assert not allows(catalog, creq("/products/1", {"accept": "text/html"}))
    assert not allows(catalog, creq("/products/1", {}))
    assert not allows(catalog, creq("/admin", {"accept": "application/json"}))


def test_l4_ports_udp_and_policies_without_rules() -> None:
    objects = _objects("access-v1alpha3-l4")
    labels = {"app": "dns-cache"}
    client = Identity("default", "apps")
    assert allows(objects, Request(client, "infra", "dns-cache", labels, "TCP", 53))
    assert allows(objects, Request(client, "infra", "dns-cache", labels, "TCP", 5353,
                                   HttpRequest("GET", "/")))
    assert not allows(objects, Request(client, "infra", "dns-cache", labels, "TCP", 80))
    assert not allows(objects, Request(client, "infra", "dns-cache", labels, "UDP", 53))
    shipper = Identity("log-shipper", "infra")
    assert allows(objects, Request(shipper, "infra", "dns-cache", labels, "TCP", 1234))

    locked = _objects("istio-access-inexpressible")
    ops = Identity("ops", "sec")
    vault = {"app": "vault"}
    for path, headers in [("/v1/secret/abc", {}), ("/v1/*", {}), ("/v1/sys", {"x-caller": "ops-1"}),
                          ("/", {"x-token": "t"}), ("/", {"x-scope": "all*"})]:
        assert not allows(locked, Request(ops, "sec", "vault", vault, "TCP", 8200,
                                          HttpRequest("GET", path, headers)))
    assert not allows(locked, Request(ops, "sec", "vault", vault, "TCP", 8200))


def test_catch_all_http_match_is_http_only() -> None:
    objects = _objects("istio-access-inexpressible")
    web = Identity("web", "front")
    for color in ("blue", "green"):
        labels = {"app": "api", "color": color}
        assert allows(objects, Request(web, "sec", "api", labels, "TCP", 8443,
                                       HttpRequest("DELETE", "/anything")))
        assert not allows(objects, Request(web, "sec", "api", labels, "TCP", 8443))
        assert not allows(objects, Request(web, "sec", "api", labels, "TCP", 8080,
                                           HttpRequest("GET", "/anything")))
        headers = {"x-tenant": "acme-1", "x-env": "eu-prod", "x-trace": ""}
        assert allows(objects, Request(web, "sec", "api", labels, "TCP", 8443,
                                       HttpRequest("HEAD", "/api/x", headers)))


def test_value_matching() -> None:
    assert value_matches("/a*", "/abc")
    assert not value_matches("/a*", "/b")
    assert value_matches("*.csv", "/r.csv")
    assert not value_matches("*.csv", "/r.txt")
    assert value_matches("*", "x")
    assert not value_matches("*", "")
    assert path_matches("/a/{*}/c", "/a/b/c")
    assert not path_matches("/a/{*}/c", "/a/b/x/c")
    assert path_matches("/a/{**}", "/a/b/x/c")


def test_deny_and_unknown_fields() -> None:
    src = Identity("web", "front")
    req = Request(src, "sec", "api", {"app": "api"}, "TCP", 80, HttpRequest("GET", "/"))
    allow_all: dict[str, Any] = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                                 "metadata": {"name": "a", "namespace": "sec"},
                                 "spec": {"rules": [{}]}}
    assert allows([allow_all], req)
    deny: dict[str, Any] = {**allow_all, "spec": {"action": "DENY", "rules": [
        {"to": [{"operation": {"methods": ["GET"]}}]}]}}
    assert not allows([allow_all, deny], req)
    ip_only: dict[str, Any] = {**allow_all, "spec": {"rules": [
        {"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}}
    assert not allows([ip_only], req)
    other_ns: dict[str, Any] = {**allow_all, "metadata": {"name": "a", "namespace": "other"}}
    assert not allows([other_ns], req)
