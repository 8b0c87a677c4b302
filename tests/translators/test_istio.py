"""Unit tests of the Istio target: semantics the golden files do not make obvious."""

from __future__ import annotations

from typing import Any

import pytest

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Identity
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options, TranslationResult
from tests.access import HttpRequest, Request, smi_allows
from tests.access.istio import allows, default_denies
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
"""


def _run(text: str, options: Options | None = None) -> TranslationResult:
    return translate_yaml(text, "istio", options)


def _target(matches: str, rule: str = "- {kind: HTTPRouteGroup, name: g}") -> str:
    return WORKLOAD + f"""---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: g, namespace: ns}}
spec:
  matches:
{matches}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: tt, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: api, namespace: ns}}
  sources: [{{kind: ServiceAccount, name: web, namespace: ns}}]
  rules:
  {rule}
"""


def _rules(result: TranslationResult) -> list[Any]:
    (policy,) = [o for o in result.objects if o["kind"] == "AuthorizationPolicy"]
    return list(policy["spec"].get("rules", []))


def _operation(rule: Any) -> Any:
    return rule["to"][0]["operation"]


@pytest.mark.parametrize(("path_regex", "expected"), [
    ("/api", "/api*"),  # SMI prefix-anchored: a plain string prefix, like Istio's "x*"
    ("/api/.*", "/api/*"),
    ("^/api$", "/api"),
    ("/v1\\.json$", "/v1.json"),
])
def test_paths_become_exact_or_prefix(path_regex: str, expected: str) -> None:
    rules = _rules(_run(_target(f"  - {{name: m, pathRegex: '{path_regex}'}}")))
    assert _operation(rules[0])["paths"] == [expected]


@pytest.mark.parametrize("path_regex", ["/api/[0-9]+", "/a|/b", "/v1/\\*", "/v1/\\{id\\}$", "^$"])
def test_inexpressible_paths_fail_closed(path_regex: str) -> None:
    result = _run(_target(f"  - {{name: m, pathRegex: '{path_regex}'}}",
                          "- {kind: HTTPRouteGroup, name: g, matches: [m]}"))
    assert _rules(result) == []  # the policy stays, so the pod is deny-by-default
    (finding,) = result.findings
    assert finding.reason is FindingReason.ACCESS_FAIL_CLOSED
    assert finding.field == "spec.rules[0].matches[0]"


@pytest.mark.parametrize(("value", "expected"), [
    ("gold", "gold"), ("^gold$", "gold"), ("gold.*", "gold*"), (".*gold", "*gold"), (".*", "*"),
])
def test_header_values(value: str, expected: str) -> None:
    rules = _rules(_run(_target(f"  - {{name: m, headers: {{X-Plan: '{value}'}}}}")))
    assert rules[0]["when"] == [{"key": "request.headers[x-plan]", "values": [expected]}]
    # Nothing for the operation to hold: istiod refuses an empty one
    # ("`to.operation` must not be empty"), so there is no `to` at all.
    assert "to" not in rules[0]


def test_header_only_match_stays_http_only() -> None:
    result = _run(_target("  - {name: m, headers: {x-plan: gold}}"))
    web = Identity("web", "ns")
    assert not allows(list(result.objects), Request(web, "ns", "api", {"app": "api"}, "TCP", 80))
    assert allows(list(result.objects), Request(web, "ns", "api", {"app": "api"}, "TCP", 80,
                                                HttpRequest("GET", "/x", {"x-plan": "gold"})))
    assert not allows(list(result.objects), Request(web, "ns", "api", {"app": "api"}, "TCP", 80,
                                                    HttpRequest("GET", "/x", {"x-plan": "silver"})))


@pytest.mark.parametrize("value", ["gold|silver", ".+", "a\\*b", "^$"])
def test_inexpressible_header_values_fail_closed(value: str) -> None:
    result = _run(_target(f"  - {{name: m, pathRegex: /a, headers: {{x-plan: '{value}'}}}}"))
    assert _rules(result) == []
    assert [f.reason for f in result.findings] == [FindingReason.ACCESS_FAIL_CLOSED]


def test_one_bad_match_keeps_the_others() -> None:
    result = _run(_target("  - {name: ok, pathRegex: /ok, methods: [GET]}\n"
                          "  - {name: bad, pathRegex: '/bad/[0-9]+'}"))
    rules = _rules(result)
    assert len(rules) == 1
    assert _operation(rules[0]) == {"methods": ["GET"], "paths": ["/ok*"]}


def test_catch_all_http_match_stays_http_only() -> None:
    rules = _rules(_run(_target("  - {name: any}")))
    # Without an HTTP-only field the rule would also allow non-HTTP connections.
    assert _operation(rules[0]) == {"paths": ["*"]}
    web = Identity("web", "ns")
    result = _run(_target("  - {name: any}"))
    tcp = Request(web, "ns", "api", {"app": "api"}, "TCP", 80)
    assert not allows(list(result.objects), tcp)
    assert allows(list(result.objects), Request(web, "ns", "api", {"app": "api"}, "TCP", 80,
                                                HttpRequest("PATCH", "/x")))


def test_l4_rule_without_ports_allows_every_port_and_http() -> None:
    text = WORKLOAD + """---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: ns}
spec: {}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: tt, namespace: ns}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: ns}
  sources:
  - {kind: ServiceAccount, name: web, namespace: ns}
  - {kind: ServiceAccount, name: web, namespace: ns}
  rules: [{kind: TCPRoute, name: all}]
"""
    rules = _rules(_run(text, Options(trust_domain="example.org")))
    assert rules == [{"from": [{"source": {"principals": ["example.org/ns/ns/sa/web"]}}]}]


def test_several_selectors_get_one_policy_each() -> None:
    second = WORKLOAD.replace("name: api, namespace", "name: api-2, namespace").replace(
        "{app: api}", "{app: api2}")
    result = _run(_target("  - {name: m}") + "---" + second)
    names = [o["metadata"]["name"] for o in result.objects]
    assert names == ["tt-0", "tt-1"]
    assert [o["spec"]["selector"]["matchLabels"] for o in result.objects] == [
        {"app": "api"}, {"app": "api2"}]


def test_no_workload_no_policy_and_the_finding_names_istio_s_default() -> None:
    result = _run(_target("  - {name: m}").replace(WORKLOAD, ""))
    assert result.objects == ()
    [finding] = result.findings
    assert finding.reason is FindingReason.UNRESOLVED_REFERENCE
    assert "Istio's default applies to them: allow" in finding.message


def _req(src: str = "web", method: str = "GET", path: str = "/a", port: int = 80) -> Request:
    return Request(Identity(src, "ns"), "ns", "api", {"app": "api"}, "TCP", port,
                   HttpRequest(method, path))


@pytest.mark.parametrize("rule", [
    "- {kind: HTTPRouteGroup, name: missing}",  # unresolved
    "- {kind: HTTPRouteGroup, name: g, matches: [nope]}",  # unknown match
    "- {kind: HTTPRouteGroup, name: g}",  # every match inexpressible (a path regex)
])
def test_every_rule_failing_closed_still_denies_by_default(rule: str) -> None:
    result = _run(_target("  - {name: m, pathRegex: '/v[0-9]+'}", rule))
    [policy] = result.objects
    assert policy["spec"] == {"selector": {"matchLabels": {"app": "api"}}, "action": "ALLOW"}
    objects = list(result.objects)
    assert default_denies(objects, _req())
    assert not allows(objects, _req())
    assert not allows(objects, _req(path="/v1"))
    assert result.findings  # what failed is reported
    assert not any("Istio's default" in f.message for f in result.findings)


def test_no_sources_still_denies_by_default() -> None:
    text = _target("  - {name: m}").replace(
        "  sources: [{kind: ServiceAccount, name: web, namespace: ns}]\n", "")
    result = _run(text)
    [policy] = result.objects
    assert "rules" not in policy["spec"]
    assert default_denies(list(result.objects), _req())
    assert [f.message for f in result.findings] == ["no sources: the TrafficTarget grants nothing"]


def test_ambiguous_pods_get_no_policy_and_the_finding_names_istio_s_default() -> None:
    other = WORKLOAD.replace("name: api, namespace", "name: other, namespace").replace(
        "serviceAccountName: api", "serviceAccountName: other").replace(
        "matchLabels: {app: api}", "matchLabels: {app: api, track: x}")
    result = _run(_target("  - {name: m}") + "---" + other)
    assert result.objects == ()
    [finding] = result.findings
    assert finding.reason is FindingReason.AMBIGUOUS_SELECTOR
    assert "Istio's default applies to them: allow" in finding.message
    assert not default_denies(list(result.objects), _req())


SPLIT = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ts, namespace: ns%s}
spec:
  service: web
  backends:
  - {service: a, weight: 1}
  - {service: b, weight: 1}
  - {service: c, weight: 1}
"""


def _vs(result: TranslationResult) -> Any:
    (vs,) = [o for o in result.objects if o["kind"] == "VirtualService"]
    return vs["spec"]


def test_weights_are_percentages_summing_to_100() -> None:
    spec = _vs(_run(SPLIT % ""))
    assert [r["weight"] for r in spec["http"][0]["route"]] == [34, 33, 33]
    assert spec["hosts"] == ["web.ns.svc.cluster.local"]
    assert "gateways" not in spec


def test_gateway_annotation_adds_mesh_once() -> None:
    ann = ", annotations: {VirtualService.v1alpha3.networking.istio.io/spec.gateways: '[\"gw\", \"mesh\"]'}"
    assert _vs(_run(SPLIT % ann))["gateways"] == ["gw", "mesh"]
    bad = ", annotations: {VirtualService.v1alpha3.networking.istio.io/spec.gateways: '[1]'}"
    result = _run(SPLIT % bad)
    assert "gateways" not in _vs(result)
    assert [f.reason for f in result.findings] == [FindingReason.IGNORED_FIELD]


def test_unmatched_requests_stay_on_the_root() -> None:
    text = (SPLIT % "").replace("spec:\n  service: web", "spec:\n  service: web\n  matches:\n"
                                 "  - {kind: HTTPRouteGroup, name: g}") + """---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - {name: any}
  - {name: ff, methods: [GET, POST], headers: {user-agent: ".*Firefox.*"}}
"""
    http = _vs(_run(text.replace("  - {name: any}\n", "")))["http"]
    assert http[0]["match"] == [{"method": {"regex": "GET|POST"},
                                 "headers": {"user-agent": {"regex": ".*Firefox.*"}}}]
    assert http[-1] == {"route": [{"destination": {"host": "web.ns.svc.cluster.local"}}]}
    # A match without conditions splits every request: it is the last route, and
    # nothing after it (istiod would warn "rule not used"), not even the fallback.
    http = _vs(_run(text))["http"]
    assert [entry.get("name") for entry in http] == ["any"]
    assert "match" not in http[0]
    assert [r["weight"] for r in http[0]["route"]] == [34, 33, 33]


def test_matches_an_earlier_match_covers_are_not_emitted() -> None:
    """istiod warns about routes no request can reach; every split route has the
    same backends, so a covered match is dropped without changing the routing."""
    text = (SPLIT % "").replace("spec:\n  service: web", "spec:\n  service: web\n  matches:\n"
                                 "  - {kind: HTTPRouteGroup, name: g}\n"
                                 "  - {kind: HTTPRouteGroup, name: g}") + """---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - {name: api, pathRegex: "/api.*", headers: {x-a: b}}
  - {name: api-v1, pathRegex: "/api/v1.*", headers: {x-a: b, x-c: d}}
  - {name: api-get, pathRegex: "/api/v1.*", methods: [GET]}
  - {name: other-header, pathRegex: "/api/v1.*", headers: {x-a: c}}
"""
    http = _vs(_run(text))["http"]
    # The group is referenced twice and api-v1 is inside api: neither adds a route.
    assert [entry.get("name") for entry in http] == ["api", "api-get", "other-header", None]
    assert http[-1] == {"route": [{"destination": {"host": "web.ns.svc.cluster.local"}}]}


@pytest.mark.parametrize("header", ["authority", "method"])
def test_headers_a_virtualservice_ignores_drop_the_match(header: str) -> None:
    text = (SPLIT % "").replace("spec:\n  service: web", "spec:\n  service: web\n  matches:\n"
                                 "  - {kind: HTTPRouteGroup, name: g}") + f"""---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: g, namespace: ns}}
spec:
  matches:
  - {{name: m, headers: {{{header}: x}}}}
"""
    result = _run(text)
    # Only the root fallback is left: the match would be wider than SMI's.
    assert _vs(result)["http"] == [{"route": [{"destination": {"host": "web.ns.svc.cluster.local"}}]}]
    assert [f.reason for f in result.findings] == [FindingReason.NOT_EXPRESSIBLE]


def test_missing_group_emits_no_split() -> None:
    text = (SPLIT % "").replace("spec:\n  service: web", "spec:\n  service: web\n  matches:\n"
                                 "  - {kind: HTTPRouteGroup, name: nope}")
    inputs = parse_documents(yamlio.load_documents("t.yaml", text))
    result = translate(inputs, "istio")
    assert result.objects == ()
    assert [f.reason for f in result.findings] == [FindingReason.UNRESOLVED_REFERENCE]


def test_output_is_deterministic() -> None:
    text = _target("  - {name: a, pathRegex: /a}\n  - {name: b, headers: {x: y}}") + "---" + SPLIT % ""
    first = yamlio.dump_yaml(_run(text).objects)
    assert first == yamlio.dump_yaml(_run(text).objects)


def test_evaluator_never_allows_more_than_smi_on_golden_access_cases() -> None:
    """Every request the emitted policies allow, SMI allows too (a small exhaustive sweep)."""
    from tests.golden import cases

    allowed = 0
    for case in cases("istio"):
        inputs = case.inputs()
        if not inputs.targets:
            continue
        objects = list(translate(inputs, "istio").objects)
        sources = {s for tt in inputs.targets for s in tt.sources} | {Identity("x", "y")}
        pods = [(w.meta.namespace, w.service_account, dict(w.pod_labels)) for w in inputs.workloads]
        ports = {53, 80, 514, 5353, 6379, 8443, 9080, 9091, 1234}
        https = [None] + [HttpRequest(m, p, h) for m in ("GET", "POST")
                          for p in ("/", "/metrics", "/products/1", "/health", "/healthz",
                                    "/ratings/1", "/cache/x", "/api/x", "/orders", "/internal")
                          for h in ({}, {"accept": "application/json", "x-tenant": "acme-1",
                                         "x-env": "eu-prod", "x-trace": "t",
                                         "x-caller": "svc-reviews"})]
        for src in sources:
            for ns, sa, labels in pods:
                for proto in ("TCP", "UDP"):
                    for port in ports:
                        for http in https if proto == "TCP" else [None]:
                            req = Request(src, ns, sa, labels, proto, port, http)
                            if allows(objects, req):
                                allowed += 1
                                assert smi_allows(inputs, req), (case.id, req)
    assert allowed > 50  # the sweep must reach the allow paths, not only denials
