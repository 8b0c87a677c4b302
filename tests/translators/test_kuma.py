"""Unit tests of the Kuma target: semantics the golden files do not make obvious."""

from __future__ import annotations

from typing import Any

import pytest

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import HeaderMatch, HTTPMatch, Identity
from smi2mesh.translators import gateway_api
from smi2mesh.translators.base import Options, TranslationResult
from smi2mesh.translators.kuma import header_matches
from tests import golden
from tests.access import HttpRequest, Request, smi_allows
from tests.access.kuma import allows
from tests.meshrules import kuma as kuma_rules
from tests.translators.helpers import translate_yaml


def route_matches(match: HTTPMatch) -> list[dict[str, object]]:
    """Kuma's matches: the shared builder with Kuma's header conditions."""
    return gateway_api.route_matches(match, header_matches)


SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: root, namespace: ns}}
spec:
  selector: {{app: root}}
  ports: [{ports}]
"""


def _run(yaml_text: str, options: Options | None = None) -> TranslationResult:
    return translate_yaml(yaml_text, "kuma", options)


def _reasons(result: TranslationResult) -> list[tuple[str, FindingReason]]:
    return [(f.field, f.reason) for f in result.findings]


def _kind(result: TranslationResult, kind: str) -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == kind]


def _split(ports: str, backends: str, matches: str = "") -> str:
    return SERVICE.format(ports=ports) + f"""
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: ts, namespace: ns}}
spec:
  service: root
  backends: [{backends}]
{matches}
"""


GROUP = """
  matches: [{kind: HTTPRouteGroup, name: g}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: m
    pathRegex: /api
"""


# ---- TrafficSplit ------------------------------------------------------------


def test_weights_are_relative_integers_with_exact_ratio() -> None:
    text = _split("{name: http, port: 80, appProtocol: http}",
                  '{service: a, weight: "250m"}, {service: b, weight: "750m"}, {service: c, weight: 0}')
    result = _run(text.replace("split.smi-spec.io/v1alpha4", "split.smi-spec.io/v1alpha1"))
    (route,) = _kind(result, "MeshHTTPRoute")
    refs = route["spec"]["to"][0]["rules"][0]["default"]["backendRefs"]
    assert [(r["name"], r["weight"], r["port"]) for r in refs] == [("a", 1, 80), ("b", 3, 80), ("c", 0, 80)]
    assert all(r["kind"] == "MeshService" and r["namespace"] == "ns" for r in refs)


def test_plain_split_matches_everything_and_targets_the_port_by_name() -> None:
    result = _run(_split("{name: web, port: 80, appProtocol: http}", "{service: a, weight: 1}"))
    (route,) = _kind(result, "MeshHTTPRoute")
    assert route["spec"]["targetRef"] == {"kind": "Mesh"}
    (to,) = route["spec"]["to"]
    # Kuma resolves sectionName against MeshService port names (the Service port name).
    assert to["targetRef"] == {"kind": "MeshService", "name": "root", "namespace": "ns", "sectionName": "web"}
    assert to["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert route["metadata"]["labels"]["kuma.io/mesh"] == "default"


def test_matched_split_has_no_catch_all_rule_of_its_own() -> None:
    # Kuma appends its own catch-all to the root; an explicit one would be
    # merged into other producers' routes and override them.
    result = _run(_split("{name: web, port: 80, appProtocol: http}", "{service: a, weight: 1}", GROUP))
    (route,) = _kind(result, "MeshHTTPRoute")
    (rule,) = route["spec"]["to"][0]["rules"]
    assert rule["matches"] == [{"path": {"type": "RegularExpression", "value": "/api.*"}}]


def test_port_protocols_follow_kuma_not_port_names() -> None:
    ports = ("{name: http-a, port: 80}, {name: b, port: 81, appProtocol: grpc}, "
             "{name: c, port: 82, appProtocol: kubernetes.io/h2c}, {name: tcp-d, port: 83}")
    plain = _run(_split(ports, "{service: a, weight: 1}"))
    (http,) = _kind(plain, "MeshHTTPRoute")
    (tcp,) = _kind(plain, "MeshTCPRoute")
    assert [t["targetRef"]["sectionName"] for t in http["spec"]["to"]] == ["b"]
    # No appProtocol means tcp to Kuma, and it does not know kubernetes.io/h2c.
    assert [t["targetRef"]["sectionName"] for t in tcp["spec"]["to"]] == ["http-a", "c", "tcp-d"]
    assert all(len(t["rules"]) == 1 and "matches" not in t["rules"][0] for t in tcp["spec"]["to"])

    matched = _run(_split(ports, "{service: a, weight: 1}", GROUP))
    assert _kind(matched, "MeshTCPRoute") == []
    (http,) = _kind(matched, "MeshHTTPRoute")
    assert [t["targetRef"]["sectionName"] for t in http["spec"]["to"]] == ["http-a", "b"]
    reasons = _reasons(matched)
    assert reasons.count(("spec.matches", FindingReason.NOT_EXPRESSIBLE)) == 2  # ports 82 and 83
    assert ("spec.service", FindingReason.PREREQUISITE) in reasons  # port 80 needs appProtocol


def test_missing_root_service_or_group_emits_nothing() -> None:
    no_service = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ts, namespace: ns}
spec:
  service: root
  backends: [{service: a, weight: 1}]
"""
    result = _run(no_service)
    assert result.objects == ()
    assert _reasons(result) == [("spec.service", FindingReason.UNRESOLVED_REFERENCE)]
    no_group = _split("{name: web, port: 80, appProtocol: http}", "{service: a, weight: 1}",
                      "  matches: [{kind: HTTPRouteGroup, name: missing}]")
    result = _run(no_group)
    assert result.objects == ()
    assert _reasons(result) == [("spec.matches[0]", FindingReason.UNRESOLVED_REFERENCE)]


def test_header_forms() -> None:
    m = HTTPMatch("m", headers=(
        HeaderMatch("a", "v1"), HeaderMatch("b", "^pre.*"), HeaderMatch("c", ".*"),
        HeaderMatch("d", ".*suffix$"), HeaderMatch("e", "x|y"), HeaderMatch("f", ".+")))
    assert header_matches(m) == [
        {"type": "Exact", "name": "a", "value": "v1"},
        {"type": "Prefix", "name": "b", "value": "pre"},
        {"type": "Present", "name": "c"},
        {"type": "RegularExpression", "name": "d", "value": ".*suffix"},
        {"type": "RegularExpression", "name": "e", "value": "x|y"},
        {"type": "RegularExpression", "name": "f", "value": ".+"},
    ]


@pytest.mark.parametrize(("path_regex", "expected"), [
    ("/", {"type": "PathPrefix", "value": "/"}),
    # PathPrefix is segment-based in Kuma: "/api" must also match "/apiv2".
    ("/api", {"type": "RegularExpression", "value": "/api.*"}),
    ("/api/", {"type": "RegularExpression", "value": "/api/.*"}),
    ("/health$", {"type": "Exact", "value": "/health"}),
    ("/v[0-9]+", {"type": "RegularExpression", "value": "(?:/v[0-9]+).*"}),
])
def test_paths_are_prefix_anchored(path_regex: str, expected: dict[str, str]) -> None:
    (m,) = route_matches(HTTPMatch("m", path_regex=path_regex))
    assert m == {"path": expected}


def test_methods_expand_to_one_match_each() -> None:
    ms = route_matches(HTTPMatch("m", methods=("GET", "PUT")))
    assert ms == [{"method": "GET"}, {"method": "PUT"}]
    assert route_matches(HTTPMatch("any")) == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_duplicate_header_names_drop_the_match_not_widen_it() -> None:
    group = """
  matches: [{kind: HTTPRouteGroup, name: g}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: both
    headers: [{x-a: one}, {X-A: two}]
"""
    result = _run(_split("{name: web, port: 80, appProtocol: http}", "{service: a, weight: 1}", group))
    assert result.objects == ()
    assert ("spec.matches[0]", FindingReason.NOT_EXPRESSIBLE) in _reasons(result)


# ---- TrafficTarget -----------------------------------------------------------

ROUTES = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: ns}
spec: {}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: some, namespace: ns}
spec: {matches: {ports: [8080]}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches: [{name: any}]
"""


def _target(rules: str, extra: str = "") -> str:
    return ROUTES + f"""
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: tt, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: dest, namespace: ns}}
  sources: [{{kind: ServiceAccount, name: src, namespace: other}}]
  rules: [{rules}]
{extra}"""


DENY = {"targetRef": {"kind": "Dataplane", "labels": {"k8s.kuma.io/service-account": "dest"}},
        "rules": [{"default": {"deny": [{"spiffeID": {"type": "Exact", "value": "spiffe://cluster.local"}}]}}]}


def _by_name(result: TranslationResult) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _kind(result, "MeshTrafficPermission")}


def test_all_port_tcp_target_allows_by_spiffe_id() -> None:
    result = _run(_target("{kind: TCPRoute, name: all}"), Options(trust_domain="prod.example"))
    mtps = _by_name(result)
    assert sorted(mtps) == ["dest-smi-default-deny", "tt"]
    assert mtps["tt"]["metadata"]["namespace"] == "ns"
    assert mtps["tt"]["spec"] == {
        "targetRef": {"kind": "Dataplane", "labels": {"k8s.kuma.io/service-account": "dest"}},
        "rules": [{"default": {"allow": [
            {"spiffeID": {"type": "Exact", "value": "spiffe://prod.example/ns/other/sa/src"}}]}}],
    }
    assert mtps["dest-smi-default-deny"]["spec"]["rules"][0]["default"]["deny"] == [
        {"spiffeID": {"type": "Exact", "value": "spiffe://prod.example"}}]
    assert _reasons(result) == [("spec.sources", FindingReason.PREREQUISITE)]
    r = Request(Identity("src", "other"), "ns", "dest", {}, "TCP", 9999)
    assert allows(list(result.objects), r, trust_domain="prod.example")


@pytest.mark.parametrize(("rules", "field"), [
    ("{kind: TCPRoute, name: some}", "spec.rules[0]"),  # port-scoped, inbounds unknown
    ("{kind: HTTPRouteGroup, name: g}", "spec.rules[0]"),  # even a catch-all HTTP match
    ("{kind: TCPRoute, name: all}, {kind: HTTPRouteGroup, name: g}", "spec.rules[1]"),  # HTTP scoped by TCP
])
def test_narrower_grants_fail_closed_behind_a_deny_by_default(rules: str, field: str) -> None:
    result = _run(_target(rules))
    assert [o["spec"] for o in result.objects] == [DENY]
    assert (field, FindingReason.ACCESS_FAIL_CLOSED) in _reasons(result)
    # A plain TCP connection on the granted port is not allowed by SMI for HTTP
    # rules, and Kuma allows nothing: nothing is broader than SMI.
    inputs = parse_documents(yamlio.load_documents("t.yaml", _target(rules)))
    r = Request(Identity("src", "other"), "ns", "dest", {}, "TCP", 8080, HttpRequest("GET", "/"))
    assert not allows(list(result.objects), r)
    assert smi_allows(inputs, r)


def test_v1alpha2_destination_port_is_reported_at_its_field() -> None:
    text = ROUTES + """
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: tt, namespace: ns}
spec:
  destination: {kind: ServiceAccount, name: dest, namespace: ns, port: 5432}
  sources: [{kind: ServiceAccount, name: src, namespace: other}]
  rules: [{kind: TCPRoute, name: all}]
"""
    result = _run(text)
    assert [o["spec"] for o in result.objects] == [DENY]
    # The deny-by-default needs mTLS as much as an allow does.
    assert _reasons(result) == [("spec.destination.port", FindingReason.ACCESS_FAIL_CLOSED),
                                ("spec.sources", FindingReason.PREREQUISITE)]


def test_invalid_trust_domain_fails_closed_and_names_kumas_default() -> None:
    result = _run(_target("{kind: TCPRoute, name: all}"), Options(trust_domain="Not Valid"))
    assert result.objects == ()
    assert _reasons(result) == [("spec.destination", FindingReason.ACCESS_FAIL_CLOSED),
                                ("spec.sources", FindingReason.ACCESS_FAIL_CLOSED)]
    assert "Kuma's default applies" in result.findings[0].message


def _pods(containers: str, services: str) -> str:
    out = f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dest, namespace: ns}}
spec:
  selector: {{matchLabels: {{app: dest}}}}
  template:
    metadata: {{labels: {{app: dest}}}}
    spec:
      serviceAccountName: dest
      containers: [{{name: c, ports: {containers}}}]
"""
    for i, ports in enumerate(services.split(";") if services else []):
        out += f"""
---
apiVersion: v1
kind: Service
metadata: {{name: svc{i}, namespace: ns}}
spec:
  selector: {{app: dest}}
  ports: {ports}
"""
    return out


@pytest.mark.parametrize(("containers", "services", "expected"), [
    # the only inbound is inside the restriction: one Dataplane-wide policy
    ("[{containerPort: 8080}]", "[{port: 80, targetPort: 8080}]", {"tt": None}),
    # two inbounds, one granted: by sectionName, the port number when unnamed
    ("[{containerPort: 8080}, {containerPort: 9090}]", "[{port: 8080}, {port: 9090, name: m}]",
     {"tt-8080": "8080"}),
    # a named container port: its name
    ("[{name: web, containerPort: 8080}, {containerPort: 9090}]",
     "[{port: 80, targetPort: web}, {port: 9090, name: m}]", {"tt-8080": "web"}),
    # a numeric targetPort still takes the container port's name
    ("[{name: web, containerPort: 8080}, {containerPort: 9090}]",
     "[{port: 80, targetPort: 8080}, {port: 9090, name: m}]", {"tt-8080": "web"}),
    # the name also names another port on these pods: no sectionName is exact
    ("[{name: '9090', containerPort: 8080}, {containerPort: 9090}]",
     "[{port: 80, targetPort: 8080}, {port: 9090, name: m}]", {}),
    # 8080 is no inbound (no Service port reaches it)
    ("[{containerPort: 8080}, {containerPort: 9090}]", "[{port: 9090}]", {}),
    # a Service's named targetPort no container carries makes no inbound
    ("[{containerPort: 8080}]", "[{port: 80, targetPort: missing}, {port: 8080}]", {"tt": None}),
])
def test_port_restriction_is_exact_by_inbounds(containers: str, services: str,
                                               expected: dict[str, str | None]) -> None:
    result = _run(_target("{kind: TCPRoute, name: some}", _pods(containers, services)))
    mtps = _by_name(result)
    assert mtps.pop("dest-smi-default-deny")["spec"] == DENY
    assert {n: o["spec"]["targetRef"].get("sectionName") for n, o in mtps.items()} == expected
    fails = [r for r in _reasons(result) if r[1] is FindingReason.ACCESS_FAIL_CLOSED]
    assert bool(fails) is (not expected)


def test_port_restriction_without_services_stays_closed() -> None:
    result = _run(_target("{kind: TCPRoute, name: some}", _pods("[{containerPort: 8080}]", "")))
    assert [o["spec"] for o in result.objects] == [DENY]
    [fail] = [f for f in result.findings if f.reason is FindingReason.ACCESS_FAIL_CLOSED]
    assert "no Service in the input selects the pods of Deployment ns/dest" in fail.message


def test_widening_grants_http_rules_at_l4_and_reports_each() -> None:
    text = _target("{kind: HTTPRouteGroup, name: g}")
    result = _run(text, Options(widen_l7_to_l4=True))
    assert _by_name(result)["tt"]["spec"]["rules"][0]["default"]["allow"] == [
        {"spiffeID": {"type": "Exact", "value": "spiffe://cluster.local/ns/other/sa/src"}}]
    assert ("spec.rules[0]", FindingReason.WIDENED) in _reasons(result)
    # Still never for UDP.
    udp = _run(ROUTES + """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: u, namespace: ns}
spec: {}
""" + _target("{kind: UDPRoute, name: u}").removeprefix(ROUTES), Options(widen_l7_to_l4=True))
    assert "tt" not in _by_name(udp)


def test_output_is_deterministic() -> None:
    split = _split("{name: web, port: 80, appProtocol: http}, {name: tcp-x, port: 81}",
                   "{service: a, weight: 1}, {service: b, weight: 2}")
    text = _target("{kind: TCPRoute, name: all}") + "\n---" + split
    assert _run(text) == _run(text)


def test_group_without_matches_splits_nothing() -> None:
    group = """
  matches: [{kind: HTTPRouteGroup, name: g}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches: []
"""
    result = _run(_split("{name: web, port: 80, appProtocol: http}", "{service: a, weight: 1}", group))
    # A plain "PathPrefix /" split would move every request; SMI moves none.
    assert result.objects == ()
    assert _reasons(result) == [("spec.matches", FindingReason.NOT_EXPRESSIBLE)]


@pytest.mark.parametrize("case", golden.cases("kuma"), ids=lambda c: c.id)
def test_golden_permissions_pass_kumas_validation(case: golden.Case) -> None:
    """Kuma 2.14.3's validation (tests/meshrules/kuma.py) admits every golden policy,
    the sectionName and deny-by-default ones included."""
    objs = [o for o in case.expected_objects() if o["kind"] == "MeshTrafficPermission"]
    assert [v.errors for v in kuma_rules.validate_batch(objs) if not v.allowed] == []
