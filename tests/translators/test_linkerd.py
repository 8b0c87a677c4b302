"""Unit tests of the Linkerd target: semantics the golden files do not make obvious."""

from __future__ import annotations

import re
from typing import Any

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import HeaderMatch, HTTPMatch, Identity
from smi2mesh.translators import linkerd
from smi2mesh.translators.base import SOURCE_ANNOTATION, TranslationResult
from tests.access import HttpRequest, Request, smi_allows
from tests.access.linkerd import allows, default_denies, path_match, request_match
from tests.translators.helpers import translate_yaml

WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: ns}
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      serviceAccountName: api
      containers: [{name: app, image: x}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: p80, namespace: ns}
spec:
  matches:
    ports: [80]
"""


def _run(text: str) -> TranslationResult:
    return translate_yaml(text, "linkerd")


def _group(matches: str) -> str:
    return f"""---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: g, namespace: ns}}
spec:
  matches:
{matches}
"""


def _target(name: str, source: str, rules: str) -> str:
    return f"""---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: {name}, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: api, namespace: ns}}
  sources: [{{kind: ServiceAccount, name: {source}, namespace: ns}}]
  rules:
{rules}
"""


L4 = "  - {kind: TCPRoute, name: p80}"
HTTP = "  - {kind: TCPRoute, name: p80}\n  - {kind: HTTPRouteGroup, name: g}"


def _of(result: TranslationResult, kind: str, group: str = "policy.linkerd.io") -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == kind and o["apiVersion"].startswith(group)]


def _reasons(result: TranslationResult) -> list[FindingReason]:
    return [f.reason for f in result.findings]


def _req(src: str, method: str | None = None, path: str = "/", port: int = 80,
         headers: dict[str, str] | None = None) -> Request:
    http = HttpRequest(method, path, headers or {}) if method else None
    return Request(Identity(src, "ns"), "ns", "api", {"app": "api"}, "TCP", port, http)


def test_one_server_per_pod_port_shared_by_all_targets() -> None:
    text = WORKLOAD + _group("  - {name: get, pathRegex: /a, methods: [GET]}") \
        + _target("l4", "tcp-client", L4) + _target("web", "web-client", HTTP)
    result = _run(text)
    servers = _of(result, "Server")
    assert len(servers) == 1
    assert servers[0]["metadata"]["name"] == "api-80"
    assert servers[0]["metadata"]["annotations"][SOURCE_ANNOTATION] == \
        "TrafficTarget/ns/l4,TrafficTarget/ns/web"
    assert servers[0]["spec"] == {"podSelector": {"matchLabels": {"app": "api"}}, "port": 80,
                                  "proxyProtocol": "unknown", "accessPolicy": "deny"}
    # One authentication per target, each listing only its own sources.
    authns = {o["metadata"]["name"]: o["spec"]["identityRefs"] for o in _of(result, "MeshTLSAuthentication")}
    assert authns == {"l4": [{"kind": "ServiceAccount", "name": "tcp-client", "namespace": "ns"}],
                      "web": [{"kind": "ServiceAccount", "name": "web-client", "namespace": "ns"}]}
    targets = sorted((o["spec"]["targetRef"]["kind"], o["spec"]["targetRef"]["name"])
                     for o in _of(result, "AuthorizationPolicy"))
    assert targets == [("HTTPRoute", "web-api-80-authz"), ("Server", "api-80")]
    # The L4 grant keeps every HTTP request through a catch-all route with no policy of its own.
    routes = {o["metadata"]["name"]: o for o in _of(result, "HTTPRoute")}
    assert set(routes) == {"api-80-l4-authz", "web-api-80-authz"}
    assert routes["api-80-l4-authz"]["spec"]["rules"] == [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]

    objects = list(result.objects)
    inputs = parse_documents(yamlio.load_documents("test.yaml", text))
    for r, expected in [(_req("tcp-client"), True), (_req("tcp-client", "POST", "/zzz"), True),
                        (_req("web-client", "GET", "/a/b"), True), (_req("web-client"), False),
                        (_req("web-client", "GET", "/b"), False), (_req("web-client", "POST", "/a"), False)]:
        assert allows(objects, r) is expected, r
        assert smi_allows(inputs, r) is expected, r


def test_no_catch_all_route_without_l4_grant() -> None:
    result = _run(WORKLOAD + _group("  - {name: get, pathRegex: /a}") + _target("web", "c", HTTP))
    assert [o["metadata"]["name"] for o in _of(result, "HTTPRoute")] == ["web-api-80-authz"]
    assert FindingReason.PREREQUISITE in _reasons(result)  # kubelet probes


# The destination declares 8080 (named "web") and 9090; its Service adds 80 -> "web"
# and 7000 -> 7000; the proxy's own port must not get a Server.
DECLARED = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: ns}
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      serviceAccountName: api
      containers:
      - name: app
        image: x
        ports: [{name: web, containerPort: 8080}, {containerPort: 9090},
                {name: dns, containerPort: 53, protocol: UDP}]
      - name: linkerd-proxy
        image: y
        ports: [{name: linkerd-admin, containerPort: 4191}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: ns}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: web}, {name: tcp, port: 7000},
          {name: gone, port: 81, targetPort: missing}]
"""


def _ports(result: TranslationResult) -> list[int]:
    return sorted(o["spec"]["port"] for o in _of(result, "Server"))


def test_port_less_grants_without_known_ports_say_linkerd_s_default_applies() -> None:
    text = WORKLOAD + """---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: any, namespace: ns}
spec: {}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns, namespace: ns}
spec:
  matches:
    ports: [53]
""" + _target("t", "c", "  - {kind: TCPRoute, name: any}\n  - {kind: UDPRoute, name: dns}")
    result = _run(text)
    assert result.objects == ()
    by_reason = {f.reason: f for f in result.findings}
    assert set(by_reason) == {FindingReason.UNRESOLVED_REFERENCE, FindingReason.NOT_EXPRESSIBLE}
    assert by_reason[FindingReason.NOT_EXPRESSIBLE].field == "spec.rules[1]"
    unselectable = by_reason[FindingReason.UNRESOLVED_REFERENCE]
    assert unselectable.field == "spec.destination"
    assert "no TCP port is known" in unselectable.message
    assert "Linkerd's default inbound policy applies to them: all-unauthenticated" in unselectable.message
    assert not any("nothing is allowed" in f.message for f in result.findings)


def test_http_grant_without_ports_gets_a_deny_server_on_every_known_port() -> None:
    text = DECLARED + _group("  - {name: get, pathRegex: /a, methods: [GET]}") \
        + _target("t", "c", "  - {kind: HTTPRouteGroup, name: g}")
    result = _run(text)
    # 8080 and 9090 declared, 80 -> web = 8080, 7000 from the Service; no UDP 53, no 4191.
    assert _ports(result) == [7000, 8080, 9090]
    assert all(o["spec"]["accessPolicy"] == "deny" for o in _of(result, "Server"))
    routes = {o["metadata"]["name"]: o["spec"]["parentRefs"][0]["name"] for o in _of(result, "HTTPRoute")}
    assert routes == {"t-api-7000-authz": "api-7000", "t-api-8080-authz": "api-8080",
                      "t-api-9090-authz": "api-9090"}
    targets = sorted(o["spec"]["targetRef"]["name"] for o in _of(result, "AuthorizationPolicy"))
    assert targets == sorted(routes)
    [coverage] = [f for f in result.findings if f.reason is FindingReason.ACCESS_FAIL_CLOSED]
    assert coverage.field == "spec.rules"
    assert "(7000, 8080, 9090)" in coverage.message
    assert "not covered" in coverage.message
    [missing] = [f for f in result.findings if f.reason is FindingReason.UNRESOLVED_REFERENCE]
    assert "targetPort 'missing'" in missing.message

    objects = list(result.objects)
    inputs = parse_documents(yamlio.load_documents("test.yaml", text))
    for port in (7000, 8080, 9090):
        for r, expected in [(_req("c", "GET", "/a", port=port), True),
                            (_req("c", "POST", "/a", port=port), False),
                            (_req("other", "GET", "/a", port=port), False),
                            (_req("c", port=port), False)]:
            assert allows(objects, r) is expected, r
            assert smi_allows(inputs, r) is expected, r
            assert default_denies(objects, r), r
    # Undeclared ports are left to Linkerd's default, as the finding says.
    assert not default_denies(objects, _req("c", "GET", "/a", port=4191))


def test_every_grant_failing_still_denies_on_every_known_port() -> None:
    text = DECLARED + _target("t", "c", "  - {kind: HTTPRouteGroup, name: does-not-exist}")
    result = _run(text)
    assert {o["kind"] for o in result.objects} == {"Server"}
    assert _ports(result) == [7000, 8080, 9090]
    assert all(o["spec"]["accessPolicy"] == "deny" for o in result.objects)
    for port in (7000, 8080, 9090):
        assert default_denies(list(result.objects), _req("c", "GET", "/a", port=port))
        assert not allows(list(result.objects), _req("c", "GET", "/a", port=port))


def test_port_less_http_rules_skip_default_opaque_ports() -> None:
    db = DECLARED.replace("{containerPort: 9090}", "{containerPort: 5432}")
    result = _run(db + _group("  - {name: get, pathRegex: /a}")
                  + _target("t", "c", "  - {kind: HTTPRouteGroup, name: g}"))
    protocols = {o["spec"]["port"]: o["spec"]["proxyProtocol"] for o in _of(result, "Server")}
    assert protocols == {5432: "opaque", 7000: "unknown", 8080: "unknown"}
    parents = sorted(o["spec"]["parentRefs"][0]["name"] for o in _of(result, "HTTPRoute"))
    assert parents == ["api-7000", "api-8080"]
    [coverage] = [f for f in result.findings if f.reason is FindingReason.ACCESS_FAIL_CLOSED]
    assert "(7000, 8080)" in coverage.message
    assert "not on 5432" in coverage.message
    assert default_denies(list(result.objects), _req("c", "GET", "/a", port=5432))
    assert not allows(list(result.objects), _req("c", "GET", "/a", port=5432))


def test_named_ports_of_other_grants_are_known_ports_too() -> None:
    # No declared port, but the L4 rule names 80: the port-less HTTP grant is exact there.
    text = WORKLOAD + _group("  - {name: get, pathRegex: /a}") + _target("l4", "c", L4) \
        + _target("web", "d", "  - {kind: HTTPRouteGroup, name: g}")
    result = _run(text)
    assert _ports(result) == [80]
    assert allows(list(result.objects), _req("d", "GET", "/a"))
    assert not allows(list(result.objects), _req("d", "GET", "/b"))


def test_the_pods_own_default_policy_annotation_is_named() -> None:
    annotated = WORKLOAD.replace("labels: {app: api}\n    spec:",
                                 "labels: {app: api}\n      annotations:\n"
                                 "        config.linkerd.io/default-inbound-policy: deny\n    spec:")
    assert annotated != WORKLOAD
    result = _run(annotated + _group("  - {name: get}")
                  + _target("t", "c", "  - {kind: HTTPRouteGroup, name: g}"))
    [finding] = result.findings
    assert "deny, from the pods' config.linkerd.io/default-inbound-policy annotation" in finding.message


def test_regexes_are_anchored_for_linkerd_search_semantics() -> None:
    m = HTTPMatch("m", ("GET",), "/(a|ab)$", (HeaderMatch("x-v", "a|ab"), HeaderMatch("x-e", "")))
    matches, problem = linkerd.linkerd_matches(m)
    assert problem is None
    [match] = matches
    assert match["method"] == "GET"
    path = match["path"]
    assert path["type"] == "RegularExpression"
    assert path["value"].startswith("^(?:")
    assert path["value"].endswith(")$")
    # Linkerd accepts a regex when a leftmost-first search spans the value:
    # anchored, the alternation full-matches as SMI means it.
    assert path_match(path, "/ab") == 3
    assert path_match(path, "/a") == 2
    assert path_match(path, "/abc") is None
    assert match["headers"] == [
        {"type": "RegularExpression", "name": "x-v", "value": "^(?:a|ab)$"},
        # An empty value is not allowed by the schema; "^$" full-matches only "".
        {"type": "RegularExpression", "name": "x-e", "value": "^$"},
    ]
    assert request_match(match, HttpRequest("GET", "/ab", {"x-v": "ab", "x-e": ""})) is not None
    assert request_match(match, HttpRequest("GET", "/ab", {"x-v": "ab", "x-e": "1"})) is None
    # Literal prefixes stay plain string prefixes (not Gateway API path segments).
    [prefix], _ = linkerd.linkerd_matches(HTTPMatch("p", (), "/api"))
    assert path_match(prefix["path"], "/apiv2") is not None
    assert path_match(prefix["path"], "/ap") is None


def test_match_linkerd_cannot_take_fails_closed_alone() -> None:
    too_long = "/" + "a" * 1100
    text = WORKLOAD + _group(f"  - {{name: long, pathRegex: '{too_long}'}}\n"
                             "  - {name: ok, pathRegex: /ok$, methods: [GET]}") + _target("t", "c", HTTP)
    result = _run(text)
    failed = [f for f in result.findings if f.reason is FindingReason.ACCESS_FAIL_CLOSED]
    assert [f.field for f in failed] == ["spec.rules[1]"]  # the rule naming the group
    assert "'long'" in failed[0].message
    [route] = _of(result, "HTTPRoute")
    assert route["spec"]["rules"] == [{"matches": [{"path": {"type": "Exact", "value": "/ok"},
                                                    "method": "GET"}]}]


def test_matches_are_packed_in_rules_of_eight_and_capped() -> None:
    nine = "\n".join(f"  - {{name: m{i}, pathRegex: /p{i}$}}" for i in range(9))
    [route] = _of(_run(WORKLOAD + _group(nine) + _target("t", "c", HTTP)), "HTTPRoute")
    assert [len(r["matches"]) for r in route["spec"]["rules"]] == [8, 1]
    many = "\n".join(f"  - {{name: m{i}, pathRegex: /p{i}$}}" for i in range(linkerd.MAX_MATCHES + 1))
    result = _run(WORKLOAD + _group(many) + _target("t", "c", HTTP))
    assert _of(result, "HTTPRoute") == []
    assert _of(result, "AuthorizationPolicy") == []
    assert FindingReason.ACCESS_FAIL_CLOSED in _reasons(result)


def test_overlapping_routes_of_different_sources_are_reported_disjoint_ones_not() -> None:
    group = _group("  - {name: all, pathRegex: /items, methods: [GET]}\n"
                   "  - {name: one, pathRegex: /items/1, methods: [GET]}\n"
                   "  - {name: put, pathRegex: /items/1, methods: [PUT]}")

    def tt(name: str, src: str, match: str) -> str:
        return _target(name, src, f"  - {{kind: TCPRoute, name: p80}}\n"
                                  f"  - {{kind: HTTPRouteGroup, name: g, matches: [{match}]}}")

    overlapping = _run(WORKLOAD + group + tt("a", "x", "all") + tt("b", "y", "one"))
    assert sorted(f.name for f in overlapping.findings
                  if f.reason is FindingReason.ACCESS_FAIL_CLOSED) == ["a", "b"]
    disjoint = _run(WORKLOAD + group + tt("a", "x", "all") + tt("b", "y", "put"))
    assert FindingReason.ACCESS_FAIL_CLOSED not in _reasons(disjoint)
    same_sources = _run(WORKLOAD + group + tt("a", "x", "all") + tt("b", "x", "one"))
    assert FindingReason.ACCESS_FAIL_CLOSED not in _reasons(same_sources)


def test_several_selectors_get_numbered_servers() -> None:
    text = WORKLOAD + """---
apiVersion: v1
kind: Pod
metadata: {name: api-debug, namespace: ns, labels: {role: debug}}
spec:
  serviceAccountName: api
  containers: [{name: app, image: x}]
""" + _target("t", "c", L4)
    servers = {o["metadata"]["name"]: o["spec"]["podSelector"] for o in _of(_run(text), "Server")}
    assert servers == {"api-80-1": {"matchLabels": {"app": "api"}},
                       "api-80-2": {"matchLabels": {"role": "debug"}}}


def test_names_are_dns_labels_and_never_reused() -> None:
    long = "a" * 60 + ".b"
    label = linkerd.dns_label(long + "-8080")
    assert len(label) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", label)
    assert linkerd.dns_label("api-80") == "api-80"
    names = linkerd._Names()
    assert [names.take("Server", "ns", "x-1"), names.take("Server", "ns", "x"),
            names.take("Server", "ns", "x-1"), names.take("Server", "other", "x-1")] == \
        ["x-1", "x", "x-1-2", "x-1"]


def test_deterministic_and_splits_use_gamma_routes() -> None:
    text = WORKLOAD + _group("  - {name: get, pathRegex: /a}") + _target("t", "c", HTTP) + """---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: ns}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: ns}
spec:
  service: api
  backends: [{service: api-v1, weight: 1}, {service: api-v2, weight: 3}]
"""
    first, second = _run(text), _run(text)
    assert yamlio.dump_yaml(first.objects) == yamlio.dump_yaml(second.objects)
    assert first.findings == second.findings
    [split] = _of(first, "HTTPRoute", "gateway.networking.k8s.io")
    assert split["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "api", "port": 80}]
    assert [b["weight"] for b in split["spec"]["rules"][0]["backendRefs"]] == [1, 3]
    # Per-run state ends with the run: a later run without targets emits no Server.
    assert _of(_run(WORKLOAD), "Server") == []


def test_catch_all_match_tying_with_the_l4_route_is_reported() -> None:
    text = WORKLOAD + _group("  - {name: all}\n  - {name: get, pathRegex: /a, methods: [GET]}")
    tied = _run(text + _target("l4", "tcp-client", L4) + _target(
        "web", "web-client", "  - {kind: TCPRoute, name: p80}\n"
                             "  - {kind: HTTPRouteGroup, name: g, matches: [all]}"))
    [finding] = [f for f in tied.findings if f.reason is FindingReason.ACCESS_FAIL_CLOSED]
    assert finding.name == "web"
    assert "catch-all route of l4" in finding.message
    # A match naming a method always outranks the catch-all: nothing to report.
    ranked = _run(text + _target("l4", "tcp-client", L4) + _target(
        "web", "web-client", "  - {kind: TCPRoute, name: p80}\n"
                             "  - {kind: HTTPRouteGroup, name: g, matches: [get]}"))
    assert FindingReason.ACCESS_FAIL_CLOSED not in _reasons(ranked)
    assert linkerd.ties_catch_all({"path": {"type": "RegularExpression", "value": "^(?:/.*)$"}})
    assert not linkerd.ties_catch_all({"path": {"type": "RegularExpression", "value": "^(?:/a.*)$"}})


def test_default_opaque_ports_stay_opaque_only_without_routes() -> None:
    def server_protocol(port: int, rules: str) -> str:
        route = f"""---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {{name: p{port}, namespace: ns}}
spec:
  matches:
    ports: [{port}]
"""
        text = WORKLOAD + route + _group("  - {name: get, pathRegex: /a}") + _target(
            "t", "c", rules.replace("p80", f"p{port}"))
        [server] = _of(_run(text), "Server")
        return str(server["spec"]["proxyProtocol"])

    assert server_protocol(5432, L4) == "opaque"  # Linkerd's default for Postgres
    assert server_protocol(8080, L4) == "unknown"
    assert server_protocol(5432, HTTP) == "unknown"  # routes need protocol detection
