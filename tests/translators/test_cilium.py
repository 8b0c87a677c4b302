"""Unit tests of the Cilium target: semantics the golden files do not make obvious."""

from __future__ import annotations

from typing import Any

import pytest
import re2

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import HeaderMatch, HTTPMatch, Identity
from smi2mesh.translators.base import TranslationResult
from smi2mesh.translators.cilium import http_rule
from tests.access import HttpRequest, Request, smi_allows
from tests.access.cilium import allows, default_denies
from tests.translators.helpers import translate_yaml

HEAD = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: m
    pathRegex: "/api"
    methods: [GET, POST]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: web, namespace: ns}
spec:
  matches:
    ports: [8080, 8443]
"""


def _run(yaml_text: str) -> TranslationResult:
    return translate_yaml(yaml_text, "cilium")


def _target(rules: str, sources: str = "[{kind: ServiceAccount, name: c, namespace: other}]",
            name: str = "t") -> str:
    return f"""
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: {name}, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: s, namespace: ns}}
  sources: {sources}
  rules: {rules}
"""


def _ingress(result: TranslationResult, name: str = "t") -> list[dict[str, Any]]:
    [policy] = [o for o in result.objects if o["metadata"]["name"] == name]
    ingress: list[dict[str, Any]] = policy["spec"]["ingress"]
    return ingress


def test_prefix_path_becomes_full_match_regex_not_raw() -> None:
    rule, _ = http_rule(HTTPMatch("m", ("GET", "POST"), "/api"))
    assert rule == {"method": "GET|POST", "path": "/api.*"}
    rule, _ = http_rule(HTTPMatch("m", (), "^/v[0-9]+/x"))
    assert rule is not None
    assert rule["path"] != "^/v[0-9]+/x"  # never the raw prefix-anchored regex
    # Envoy full-matches: the prefix meaning must survive.
    assert re2.fullmatch(rule["path"], "/v12/x/more")
    assert not re2.fullmatch(rule["path"], "/a/v12/x")
    rule, _ = http_rule(HTTPMatch("m", (), "/exact$"))
    assert rule == {"path": "/exact"}
    rule, _ = http_rule(HTTPMatch("m", (), ".*"))
    assert rule == {}


def test_literal_metacharacters_are_escaped() -> None:
    rule, _ = http_rule(HTTPMatch("m", (), r"/v1\.json$"))
    assert rule == {"path": r"/v1\.json"}
    rule, _ = http_rule(HTTPMatch("m", (), None, (HeaderMatch("x-v", r"^1\.0$"),)))
    assert rule == {"headerMatches": [{"name": "x-v", "value": "1.0"}]}


@pytest.mark.parametrize("value", ["Bearer .*", ".*\\.com", "v[0-9]+", ".+", "^$", "a|b"])
def test_inexpressible_header_values_fail_closed(value: str) -> None:
    rule, why = http_rule(HTTPMatch("m", (), "/x", (HeaderMatch("x-h", value),)))
    assert rule is None
    assert "x-h" in why


def test_header_name_that_is_not_a_token_fails_closed() -> None:
    # Cilium splits a `headers` entry at a space into name and value.
    rule, _ = http_rule(HTTPMatch("m", (), None, (HeaderMatch("x a", ".*"),)))
    assert rule is None


def test_http_rules_carry_the_tcp_route_ports() -> None:
    result = _run(HEAD + _target("[{kind: TCPRoute, name: web}, {kind: HTTPRouteGroup, name: g}]"))
    [rule] = _ingress(result)
    [port_rule] = rule["toPorts"]
    assert port_rule["ports"] == [{"port": "8080", "protocol": "TCP"},
                                  {"port": "8443", "protocol": "TCP"}]
    assert port_rule["rules"] == {"http": [{"method": "GET|POST", "path": "/api.*"}]}
    assert rule["fromEndpoints"] == [{"matchLabels": {
        "io.cilium.k8s.policy.serviceaccount": "c", "io.kubernetes.pod.namespace": "other"}}]
    assert result.findings == ()


def test_http_without_ports_uses_a_port_range_without_a_prerequisite() -> None:
    # endPort exists since Cilium 1.16, older than every Cilium the profiles support.
    result = _run(HEAD + _target("[{kind: HTTPRouteGroup, name: g}]"))
    [rule] = _ingress(result)
    assert rule["toPorts"][0]["ports"] == [{"port": "1", "endPort": 65535, "protocol": "TCP"}]
    assert result.findings == ()


REDIS = """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: redis, namespace: ns}
spec:
  matches:
    ports: [6379]
"""
TWO_SOURCES = ("[{kind: ServiceAccount, name: c, namespace: other}, "
               "{kind: ServiceAccount, name: d, namespace: other}]")


def test_http_rule_leaves_out_the_ports_a_peer_has_at_l4() -> None:
    """An L7 rule on a port sends the peer's traffic there through Envoy's HTTP parser;
    the peer's plain L4 grant on that port (Redis, say) must keep passing."""
    text = (HEAD + REDIS + _target("[{kind: TCPRoute, name: redis}]", name="l4")
            + _target("[{kind: HTTPRouteGroup, name: g}]", sources=TWO_SOURCES, name="l7"))
    result = _run(text)
    c_rule, d_rule = _ingress(result, "l7")
    assert c_rule["fromEndpoints"] == [{"matchLabels": {
        "io.cilium.k8s.policy.serviceaccount": "c", "io.kubernetes.pod.namespace": "other"}}]
    assert c_rule["toPorts"][0]["ports"] == [
        {"port": "1", "endPort": 6378, "protocol": "TCP"},
        {"port": "6380", "endPort": 65535, "protocol": "TCP"}]
    # d has no L4 grant: its HTTP rule keeps every port.
    assert d_rule["toPorts"][0]["ports"] == [{"port": "1", "endPort": 65535, "protocol": "TCP"}]
    inputs = parse_documents(yamlio.load_documents("t.yaml", text))
    redis = Request(Identity("c", "other"), "ns", "s", {}, "TCP", 6379)
    assert smi_allows(inputs, redis)
    assert allows(list(result.objects), redis)


def test_http_rule_of_a_peer_with_every_port_at_l4_is_left_out() -> None:
    every_port = """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: any, namespace: ns}
spec: {}
"""
    text = (HEAD + every_port + _target("[{kind: TCPRoute, name: any}]", name="l4")
            + _target("[{kind: HTTPRouteGroup, name: g}]", name="l7"))
    # The L4 grant already allows every request; the HTTP rule adds nothing and
    # would only push the peer's other protocols through the HTTP parser.
    assert _ingress(_run(text), "l7") == [{}]


def test_all_port_tcp_route_does_not_open_udp() -> None:
    text = HEAD + """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: ns}
spec: {}
""" + _target("[{kind: TCPRoute, name: all}]")
    result = _run(text)
    [rule] = _ingress(result)
    assert rule["toPorts"] == [{"ports": [{"port": "0", "protocol": "TCP"}]}]
    inputs = parse_documents(yamlio.load_documents("t.yaml", text))
    udp = Request(Identity("c", "other"), "ns", "s", {}, "UDP", 53)
    assert not smi_allows(inputs, udp)
    assert not allows(list(result.objects), udp)


def test_nothing_expressible_still_selects_the_destination() -> None:
    text = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: m
    headers: [{x-user: "admin-.*"}]
""" + _target("[{kind: HTTPRouteGroup, name: g}]")
    result = _run(text)
    assert _ingress(result) == [{}]
    [policy] = result.objects
    assert policy["spec"]["endpointSelector"] == {
        "matchLabels": {"io.cilium.k8s.policy.serviceaccount": "s"}}
    assert policy["spec"]["enableDefaultDeny"] == {"ingress": True}
    assert [(f.field, f.reason) for f in result.findings] == [
        ("spec.rules[0]", FindingReason.ACCESS_FAIL_CLOSED)]
    admin = Request(Identity("c", "other"), "ns", "s", {}, "TCP", 80,
                    HttpRequest("GET", "/", {"x-user": "admin-1"}))
    assert default_denies(list(result.objects), admin)
    assert not allows(list(result.objects), admin)
    # Without the ingress rule Cilium would make no policy entry, so no default-deny.
    bare = {**policy, "spec": {k: v for k, v in policy["spec"].items() if k != "ingress"}}
    assert not default_denies([bare], admin)


@pytest.mark.parametrize("rules", [
    "[]",  # no rules
    "[{kind: TCPRoute, name: missing}]",  # unresolved
])
def test_a_target_granting_nothing_still_denies_by_default(rules: str) -> None:
    result = _run(_target(rules))
    assert _ingress(result) == [{}]
    req = Request(Identity("c", "other"), "ns", "s", {}, "UDP", 53)
    assert default_denies(list(result.objects), req)
    assert not allows(list(result.objects), req)


def test_unselectable_destination_names_cilium_s_default() -> None:
    long = "s" * 64  # a valid ServiceAccount name, too long for a label value
    result = _run(_target("[]").replace("name: s, namespace", f"name: {long}, namespace"))
    assert result.objects == ()
    [finding] = [f for f in result.findings if f.field == "spec.destination.name"]
    assert "Cilium's default applies to them: allow" in finding.message


def test_one_failed_match_does_not_drop_the_others() -> None:
    text = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: bad
    headers: [{x-user: "admin-.*"}]
  - name: good
    pathRegex: /ok
""" + _target("[{kind: HTTPRouteGroup, name: g, matches: [bad, good]}]")
    result = _run(text)
    [rule] = _ingress(result)
    assert rule["toPorts"][0]["rules"] == {"http": [{"path": "/ok.*"}]}
    assert ("spec.rules[0].matches[0]", FindingReason.ACCESS_FAIL_CLOSED) in [
        (f.field, f.reason) for f in result.findings]


def test_catch_all_match_absorbs_the_others() -> None:
    text = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: narrow
    pathRegex: /ok
  - name: all
""" + _target("[{kind: TCPRoute, name: web}, {kind: HTTPRouteGroup, name: g}]")
    text = HEAD.split("---")[1] + "---" + text
    result = _run(text)
    [rule] = _ingress(result)
    assert rule["toPorts"][0]["rules"] == {"http": [{}]}


def test_more_than_forty_ports_are_split_over_port_rules() -> None:
    ports = ", ".join(str(p) for p in range(1000, 1085))
    text = f"""
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {{name: u, namespace: ns}}
spec:
  matches:
    ports: [{ports}]
""" + _target("[{kind: UDPRoute, name: u}]")
    [rule] = _ingress(_run(text))
    assert [len(pr["ports"]) for pr in rule["toPorts"]] == [40, 40, 5]
    assert all(pp["protocol"] == "UDP" for pr in rule["toPorts"] for pp in pr["ports"])


def test_tcp_http_and_udp_grants_stay_separate_rules() -> None:
    text = HEAD + """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: u, namespace: ns}
spec:
  matches:
    ports: [8080]
""" + _target("[{kind: TCPRoute, name: web}, {kind: HTTPRouteGroup, name: g}, "
              "{kind: UDPRoute, name: u}]")
    result = _run(text)
    http_rule_, udp_rule = _ingress(result)
    assert "rules" in http_rule_["toPorts"][0]
    assert udp_rule["toPorts"] == [{"ports": [{"port": "8080", "protocol": "UDP"}]}]
    objs = list(result.objects)
    src = Identity("c", "other")
    # UDP on 8080 is allowed; plain TCP on 8080 is HTTP-only.
    assert allows(objs, Request(src, "ns", "s", {}, "UDP", 8080))
    assert not allows(objs, Request(src, "ns", "s", {}, "TCP", 8080))
    assert allows(objs, Request(src, "ns", "s", {}, "TCP", 8080, HttpRequest("POST", "/api/x")))


def test_output_is_deterministic() -> None:
    text = HEAD + _target("[{kind: TCPRoute, name: web}, {kind: HTTPRouteGroup, name: g}]",
                          "[{kind: ServiceAccount, name: b, namespace: x}, "
                          "{kind: ServiceAccount, name: a, namespace: x}]")
    first = yamlio.dump_yaml(_run(text).objects)
    assert first == yamlio.dump_yaml(_run(text).objects)


def test_split_uses_gamma_routes() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: root, namespace: ns}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: ns}
spec:
  service: root
  backends: [{service: a, weight: 1}, {service: b, weight: 2}]
"""
    [route] = _run(text).objects
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [1, 2]


def test_split_without_service_names_cilium_in_the_finding() -> None:
    text = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: ns}
spec:
  service: root
  backends: [{service: a, weight: 1}]
"""
    result = _run(text)
    assert result.objects == ()
    [finding] = result.findings
    assert "Cilium" in finding.message
