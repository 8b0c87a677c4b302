"""Unit tests of the Consul target: semantics the golden files do not make obvious."""

from __future__ import annotations

from typing import Any

import pytest

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import HeaderMatch, HTTPMatch, Identity, Inputs
from smi2mesh.translate import translate
from smi2mesh.translators.base import ConsulNamespaces, Options, TranslationResult
from smi2mesh.translators.consul import (
    _header,
    _http_match,
    _path_fields,
    _percent,
    _registered_ports,
)
from tests import golden
from tests.access import HttpRequest, Request, smi_allows
from tests.access.consul import allows, http_matches
from tests.meshrules import consul as consul_rules
from tests.translators.helpers import translate_yaml


def _run(yaml_text: str) -> TranslationResult:
    return translate_yaml(yaml_text, "consul")


def _objects(result: TranslationResult, kind: str) -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == kind]


def _reasons(result: TranslationResult) -> list[tuple[str, str, FindingReason]]:
    return [(f.name, f.field, f.reason) for f in result.findings]


def _split(weights: list[int], matches: str = "", service: str = "root") -> str:
    backends = "\n".join(f"  - {{service: b{i}, weight: {w}}}" for i, w in enumerate(weights))
    return f"""
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: ts, namespace: ns}}
spec:
  service: {service}
{matches}
  backends:
{backends}
"""


GROUP = """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: m
    pathRegex: /api
"""


# ---- weights -------------------------------------------------------------------


@pytest.mark.parametrize(("weights", "expected"), [
    ([1, 1, 1], [33.34, 33.33, 33.33]),
    ([90, 10], [90, 10]),
    ([1, 2], [33.33, 66.67]),
    ([0, 5], [0, 100]),
    ([1, 1, 1, 1, 1, 1, 1], [14.29, 14.29, 14.29, 14.29, 14.28, 14.28, 14.28]),
])
def test_weights_are_percentages_summing_to_exactly_100(weights: list[int],
                                                         expected: list[float]) -> None:
    [splitter] = _objects(_run(_split(weights)), "ServiceSplitter")
    got = [s["weight"] for s in splitter["spec"]["splits"]]
    assert got == expected
    # Consul scales by 100 and requires the scaled sum to be exactly 10000.
    assert sum(round(w * 100) for w in got) == 10000


def test_percent_renders_two_decimals_exactly() -> None:
    assert _percent(3334) == 33.34
    assert yamlio.dump_yaml([{"w": _percent(3334)}]).strip().endswith("w: 33.34")
    assert _percent(9000) == 90
    assert isinstance(_percent(9000), int)


# ---- splits with and without matches --------------------------------------------


def test_split_without_matches_is_one_splitter_named_after_the_root() -> None:
    result = _run(_split([1, 1]))
    assert [(o["kind"], o["metadata"]["name"]) for o in result.objects] == [
        ("ServiceSplitter", "root")]
    assert ("ts", "spec.service", FindingReason.PREREQUISITE) in _reasons(result)


def test_split_with_matches_routes_to_a_virtual_splitter_and_never_splits_the_root() -> None:
    result = _run(_split([1, 1], "  matches: [{kind: HTTPRouteGroup, name: g}]") + GROUP)
    names = sorted((o["kind"], o["metadata"]["name"]) for o in result.objects)
    assert names == [("ServiceDefaults", "root-smi-ts"), ("ServiceRouter", "root"),
                     ("ServiceSplitter", "root-smi-ts")]
    [router] = _objects(result, "ServiceRouter")
    assert router["spec"]["routes"] == [
        {"match": {"http": {"pathPrefix": "/api"}}, "destination": {"service": "root-smi-ts"}}]


def test_split_with_missing_group_emits_nothing() -> None:
    # A missing group is a finding (CLI and operator alike): nothing is emitted for the split.
    result = _run(_split([1, 1], "  matches: [{kind: HTTPRouteGroup, name: nope}]"))
    assert result.objects == ()
    assert ("ts", "spec.matches[0]", FindingReason.UNRESOLVED_REFERENCE) in _reasons(result)


def test_tcp_root_with_matches_is_not_expressible() -> None:
    svc = """
---
apiVersion: v1
kind: Service
metadata: {name: root, namespace: ns}
spec:
  ports: [{name: db, port: 5432, appProtocol: tcp}]
"""
    result = _run(_split([1, 1], "  matches: [{kind: HTTPRouteGroup, name: g}]") + GROUP + svc)
    assert result.objects == ()
    assert _reasons(result) == [("ts", "spec.service", FindingReason.NOT_EXPRESSIBLE)]


def test_grpc_root_gives_the_virtual_service_protocol_grpc() -> None:
    svc = """
---
apiVersion: v1
kind: Service
metadata: {name: root, namespace: ns}
spec:
  ports: [{name: rpc, port: 9000, appProtocol: grpc}]
"""
    result = _run(_split([1, 1], "  matches: [{kind: HTTPRouteGroup, name: g}]") + GROUP + svc)
    [defaults] = _objects(result, "ServiceDefaults")
    assert defaults["spec"] == {"protocol": "grpc"}


# ---- match conversion -------------------------------------------------------------


@pytest.mark.parametrize(("regex", "expected"), [
    (None, {}),
    (".*", {}),
    ("/api", {"pathPrefix": "/api"}),  # Consul's prefix is a plain string prefix, like SMI
    ("/api/.*", {"pathPrefix": "/api/"}),
    ("/healthz$", {"pathExact": "/healthz"}),
    ("/v[0-9]+/x", {"pathRegex": "(?:/v[0-9]+/x).*"}),  # prefix-anchored -> full match
    ("api", {"pathRegex": "api.*"}),  # Consul rejects prefixes without a leading "/"
    ("$", {"pathRegex": "^$"}),  # an empty string would mean "any path"
])
def test_path_fields(regex: str | None, expected: dict[str, str]) -> None:
    assert _path_fields(regex) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("acme", {"exact": "acme"}),
    ("^acme$", {"exact": "acme"}),
    ("abc.*", {"prefix": "abc"}),
    (".*-west", {"suffix": "-west"}),
    (".*", {"present": True}),
    (".+", {"regex": ".+"}),
    ("v[12]", {"regex": "v[12]"}),
    ("", {"regex": "^$"}),  # exact "" would be read as unset
])
def test_header_forms(value: str, expected: dict[str, object]) -> None:
    assert _header(HeaderMatch("x-h", value)) == {"name": "x-h", **expected}


def test_catch_all_match_is_never_an_empty_permission() -> None:
    assert _http_match(HTTPMatch("any")) == {"pathPrefix": "/"}


def test_converted_match_agrees_with_smi_on_sample_requests() -> None:
    m = HTTPMatch("m", ("GET",), "/v[0-9]+/items", (HeaderMatch("x-t", "a.*"),))
    http = _http_match(m)
    for path, headers, expected in [
        ("/v1/items", {"x-t": "abc"}, True),
        ("/v12/items/3", {"x-t": "a"}, True),
        ("/x/v1/items", {"x-t": "abc"}, False),
        ("/v1/items", {"x-t": "ba"}, False),
        ("/v1/items", {}, False),
    ]:
        assert http_matches(http, HttpRequest("GET", path, headers)) is expected, path
    assert not http_matches(http, HttpRequest("POST", "/v1/items", {"x-t": "a"}))


# ---- intentions ---------------------------------------------------------------------


ROUTES = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: all, namespace: ns}
spec: {}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: p80, namespace: ns}
spec:
  matches:
    ports: [80]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - name: m
    pathRegex: /api
    methods: [GET]
"""


def _target(name: str, rules: str, sources: str = "[{kind: ServiceAccount, name: c, namespace: o}]",
            dest: str = "s") -> str:
    return f"""
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: {name}, namespace: ns}}
spec:
  destination: {{kind: ServiceAccount, name: {dest}, namespace: ns}}
  sources: {sources}
  rules: {rules}
"""


def _reasons_of(result: TranslationResult, reason: FindingReason) -> list[tuple[str, str, str]]:
    return [(f.name, f.field, f.message) for f in result.findings if f.reason is reason]


MIRROR = Options(consul_namespaces=ConsulNamespaces.MIRROR)


def _sources(result: TranslationResult, dest: str = "s") -> list[dict[str, Any]]:
    [intentions] = [o for o in _objects(result, "ServiceIntentions") if o["metadata"]["name"] == dest]
    sources: list[dict[str, Any]] = intentions["spec"]["sources"]
    return sources


def test_port_scoped_grant_without_workloads_leaves_only_the_deny() -> None:
    result = _run(ROUTES + _target("t", "[{kind: TCPRoute, name: p80}, {kind: HTTPRouteGroup, name: g}]"))
    # The destination still gets its deny-by-default: failing closed denies.
    assert _sources(result) == [{"name": "*", "action": "deny"}]
    [(name, field, message)] = _reasons_of(result, FindingReason.ACCESS_FAIL_CLOSED)
    assert (name, field) == ("t", "spec.rules")
    assert "not known (no workload in the input runs as ServiceAccount ns/s)" in message
    req = Request(Identity("c", "o"), "ns", "s", {}, "TCP", 80, HttpRequest("GET", "/api"))
    assert smi_allows(parse_documents(yamlio.load_documents("t.yaml", ROUTES + _target(
        "t", "[{kind: TCPRoute, name: p80}, {kind: HTTPRouteGroup, name: g}]"))), req)
    assert not allows(list(result.objects), req)


def test_l4_grant_wins_over_http_permissions_of_the_same_source() -> None:
    result = _run(ROUTES + _target("a", "[{kind: HTTPRouteGroup, name: g}]")
                  + _target("b", "[{kind: TCPRoute, name: all}]"))
    assert _sources(result) == [{"name": "c", "action": "allow"}, {"name": "*", "action": "deny"}]
    [intentions] = _objects(result, "ServiceIntentions")
    assert intentions["metadata"]["annotations"]["smi2mesh.io/source"] == (
        "TrafficTarget/ns/a,TrafficTarget/ns/b")


def test_one_intentions_object_per_destination_with_sorted_sources() -> None:
    result = translate_yaml(ROUTES
                            + _target("a", "[{kind: TCPRoute, name: all}]",
                                      "[{kind: ServiceAccount, name: z, namespace: b}]")
                            + _target("b", "[{kind: HTTPRouteGroup, name: g}]",
                                      "[{kind: ServiceAccount, name: y, namespace: a}, "
                                      "{kind: ServiceAccount, name: z, namespace: b}]")
                            + _target("c", "[{kind: TCPRoute, name: all}]", dest="other"),
                            "consul", MIRROR)
    by_name = {o["metadata"]["name"]: o for o in _objects(result, "ServiceIntentions")}
    assert sorted(by_name) == ["other", "s"]
    sources = by_name["s"]["spec"]["sources"]
    assert [(s["namespace"], s["name"]) for s in sources] == [("a", "y"), ("b", "z"), ("*", "*")]
    assert "permissions" in sources[0]
    assert sources[1]["action"] == "allow"
    assert sources[2]["action"] == "deny"


def test_l7_permissions_end_with_a_deny_of_every_other_request() -> None:
    result = _run(ROUTES + _target("a", "[{kind: HTTPRouteGroup, name: g}]"))
    [source, deny] = _sources(result)
    assert source["permissions"][-1] == {"action": "deny", "http": {"pathPrefix": "/"}}
    assert deny == {"name": "*", "action": "deny"}
    objects = list(result.objects)
    src = Identity("c", "o")
    assert allows(objects, Request(src, "ns", "s", {}, "TCP", 80, HttpRequest("GET", "/api/1")))
    assert not allows(objects, Request(src, "ns", "s", {}, "TCP", 80, HttpRequest("POST", "/api")))


@pytest.mark.parametrize("mode", list(ConsulNamespaces))
def test_sources_name_their_namespace_only_in_mirror_mode(mode: ConsulNamespaces) -> None:
    result = translate_yaml(ROUTES + _target("t", "[{kind: TCPRoute, name: all}]",
                                             "[{kind: ServiceAccount, name: same}]"),
                            "consul", Options(consul_namespaces=mode))
    allow, deny = _sources(result)
    if mode is ConsulNamespaces.MIRROR:
        assert (allow, deny) == ({"name": "same", "namespace": "ns", "action": "allow"},
                                 {"name": "*", "namespace": "*", "action": "deny"})
        req = Request(Identity("same", "elsewhere"), "ns", "s", {}, "TCP", 1)
        assert not allows(list(result.objects), req, namespaces="mirror")
    else:
        assert (allow, deny) == ({"name": "same", "action": "allow"}, {"name": "*", "action": "deny"})


CE_CONTEXT = """
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: c, namespace: elsewhere}
"""


def test_ce_source_whose_name_another_namespace_has_fails_closed() -> None:
    text = ROUTES + _target("t", "[{kind: TCPRoute, name: all}]",
                            "[{kind: ServiceAccount, name: c, namespace: o}, "
                            "{kind: ServiceAccount, name: d, namespace: o}]") + CE_CONTEXT
    result = _run(text)
    assert _sources(result) == [{"name": "d", "action": "allow"}, {"name": "*", "action": "deny"}]
    [(_, field, message)] = _reasons_of(result, FindingReason.ACCESS_FAIL_CLOSED)
    assert field == "spec.sources[0]"
    assert "namespace(s) elsewhere also have a ServiceAccount or Service 'c'" in message
    # Mirror mode tells them apart.
    assert _sources(translate_yaml(text, "consul", MIRROR))[0] == {
        "name": "c", "namespace": "o", "action": "allow"}


def test_ce_destination_whose_name_another_namespace_has_gets_nothing_and_says_so() -> None:
    text = ROUTES + _target("t", "[{kind: TCPRoute, name: all}]") + """
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: staging}
"""
    result = _run(text)
    assert _objects(result, "ServiceIntentions") == []
    [(_, field, message)] = _reasons_of(result, FindingReason.ACCESS_FAIL_CLOSED)
    assert field == "spec.destination"
    assert "staging" in message
    assert "the ACL default policy" in message


def test_ce_names_from_outside_the_input_count_too() -> None:
    """The operator passes the cluster's names (other namespaces) as other_identities."""
    text = ROUTES + _target("t", "[{kind: TCPRoute, name: all}]")
    inputs = parse_documents(yamlio.load_documents("t.yaml", text))
    outside = Inputs.of([*inputs.targets, *inputs.port_routes, *inputs.http_route_groups],
                        {"c": ("o", "team-b")})
    result = translate(outside, "consul")
    assert _sources(result) == [{"name": "*", "action": "deny"}]
    assert "team-b" in _reasons_of(result, FindingReason.ACCESS_FAIL_CLOSED)[0][2]


def _workload(annotations: str = "", containers: str = "[{name: a, ports: [{containerPort: 80}]}]",
              kind: str = "Deployment") -> str:
    return f"""
---
apiVersion: apps/v1
kind: {kind}
metadata: {{name: w, namespace: ns}}
spec:
  selector: {{matchLabels: {{app: s}}}}
  template:
    metadata: {{labels: {{app: s}}, annotations: {{{annotations}}}}}
    spec:
      serviceAccountName: s
      containers: {containers}
"""


TWO_CONTAINERS = ("[{name: a, ports: [{containerPort: 9000}, {name: admin, containerPort: 9001}]}, "
                  "{name: b, ports: [{name: http, containerPort: 80}]}]")


@pytest.mark.parametrize(("annotations", "containers", "mode", "ports"), [
    ("", "[{name: a, ports: [{containerPort: 80}]}]", ConsulNamespaces.OFF, {80}),
    # No annotation: the first port of the first container (consul-k8s's webhook default).
    ("", TWO_CONTAINERS, ConsulNamespaces.OFF, {9000}),
    # Enterprise registers every port of the first container.
    ("", TWO_CONTAINERS, ConsulNamespaces.MIRROR, {9000, 9001}),
    # The annotation names a container port (of any container), or a number.
    ("consul.hashicorp.com/connect-service-port: http", TWO_CONTAINERS, ConsulNamespaces.OFF, {80}),
    ("consul.hashicorp.com/connect-service-port: '8443'", TWO_CONTAINERS, ConsulNamespaces.OFF, {8443}),
    ("consul.hashicorp.com/connect-service-port: 'admin,http'", TWO_CONTAINERS, ConsulNamespaces.OFF,
     {9001}),
    ("'consul.hashicorp.com/connect-service-port': 'admin,http', "
     "'consul.hashicorp.com/connect-service-default-port': http", TWO_CONTAINERS,
     ConsulNamespaces.OFF, {80}),
    ("consul.hashicorp.com/connect-service-port: 'admin,http'", TWO_CONTAINERS,
     ConsulNamespaces.MIRROR, {9001, 80}),
    # Unresolvable or unknown: no ports known.
    ("consul.hashicorp.com/connect-service-port: nope", TWO_CONTAINERS, ConsulNamespaces.OFF, None),
    ("", "[{name: a}]", ConsulNamespaces.OFF, None),
    ("consul.hashicorp.com/connect-service: other", TWO_CONTAINERS, ConsulNamespaces.OFF, None),
])
def test_registered_ports_follow_consul_k8s(annotations: str, containers: str, mode: ConsulNamespaces,
                                             ports: set[int] | None) -> None:
    inputs = parse_documents(yamlio.load_documents("t.yaml", _workload(annotations, containers)))
    (w,) = inputs.workloads
    found = _registered_ports(w, "s", mode)
    if ports is None:
        assert isinstance(found, str)
    else:
        assert isinstance(found, frozenset)
        assert set(found) == ports


@pytest.mark.parametrize(("route_ports", "allowed", "finding"), [
    ("[5432]", True, None),
    ("[5432, 9999]", True, None),  # containing the one port: exact
    ("[9187]", False, "does not include; it grants nothing"),
])
def test_single_port_statefulset(route_ports: str, allowed: bool, finding: str | None) -> None:
    text = f"""
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {{name: r, namespace: ns}}
spec: {{matches: {{ports: {route_ports}}}}}
""" + _target("t", "[{kind: TCPRoute, name: r}]") + _workload(
        "", "[{name: pg, ports: [{containerPort: 5432}]}, {name: x, ports: [{containerPort: 9187}]}]",
        "StatefulSet")
    result = _run(text)
    inputs = parse_documents(yamlio.load_documents("t.yaml", text))
    req = Request(Identity("c", "o"), "ns", "s", {"app": "s"}, "TCP", 5432)
    assert allows(list(result.objects), req) is allowed
    assert smi_allows(inputs, req) is allowed
    fails = _reasons_of(result, FindingReason.ACCESS_FAIL_CLOSED)
    if finding is None:
        assert fails == []
    else:
        [(_, _, message)] = fails
        assert "receives mesh traffic on port(s) 5432 only" in message
        assert finding in message


def test_mirror_port_restriction_covering_some_registered_ports_fails_closed() -> None:
    text = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: r, namespace: ns}
spec: {matches: {ports: [9000]}}
""" + _target("t", "[{kind: TCPRoute, name: r}]") + _workload("", TWO_CONTAINERS)
    assert _sources(_run(text))[0] == {"name": "c", "action": "allow"}  # CE: 9000 only
    mirror = translate_yaml(text, "consul", MIRROR)
    assert _sources(mirror) == [{"name": "*", "namespace": "*", "action": "deny"}]
    [(_, _, message)] = _reasons_of(mirror, FindingReason.ACCESS_FAIL_CLOSED)
    assert "receives port(s) 9000, 9001" in message


NOT_HTTP = """
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: ns}
spec:
  selector: {app: s}
  ports: [{name: tcp-db, port: 5432}]
"""


@pytest.mark.parametrize("widen", [False, True])
def test_http_rule_on_a_non_http_service_fails_closed_or_widens(widen: bool) -> None:
    text = ROUTES + _target("t", "[{kind: HTTPRouteGroup, name: g}]") + NOT_HTTP
    result = translate_yaml(text, "consul", Options(widen_l7_to_l4=widen))
    reasons = {f.reason for f in result.findings}
    if widen:
        assert _sources(result)[0] == {"name": "c", "action": "allow"}
        assert FindingReason.WIDENED in reasons
        assert FindingReason.ACCESS_FAIL_CLOSED not in reasons
    else:
        assert _sources(result) == [{"name": "*", "action": "deny"}]
        assert FindingReason.WIDENED not in reasons
        assert "--widen-l7-to-l4 would grant it" in _reasons_of(
            result, FindingReason.ACCESS_FAIL_CLOSED)[0][2]
    # Widening never applies where L7 is possible.
    http_ok = translate_yaml(ROUTES + _target("t", "[{kind: HTTPRouteGroup, name: g}]"), "consul",
                             Options(widen_l7_to_l4=True))
    assert "permissions" in _sources(http_ok)[0]
    assert all(f.reason is not FindingReason.WIDENED for f in http_ok.findings)


def test_prerequisites_are_reported_once_per_run() -> None:
    text = (ROUTES + _target("a", "[{kind: HTTPRouteGroup, name: g}]")
            + _target("b", "[{kind: HTTPRouteGroup, name: g}]", dest="t")
            + "\n---" + _split([1, 1]))
    result = _run(text)
    prereqs = [f for f in result.findings if f.reason is FindingReason.PREREQUISITE]
    assert len(prereqs) == 3  # protocol, service-ignore label, ACLs
    protocol = [f.message for f in prereqs if "HTTP-based protocol" in f.message]
    assert len(protocol) == 1
    assert protocol[0].endswith("ns/b0 (http), ns/b1 (http), ns/root (http), ns/s (http), ns/t (http)")


@pytest.mark.parametrize("case", golden.cases("consul"), ids=lambda c: c.id)
def test_golden_outputs_pass_consul_k8s_admission(case: golden.Case) -> None:
    """consul-k8s's webhooks (tests/meshrules/consul.py) admit every golden output in its mode."""
    mode = case.options().consul_namespaces.value
    verdicts = consul_rules.validate_batch(case.expected_objects(), mode=mode)
    assert [v.errors for v in verdicts if not v.allowed] == []


def test_translation_never_allows_what_smi_denies_on_a_grid() -> None:
    text = (ROUTES + _target("a", "[{kind: HTTPRouteGroup, name: g}]")
            + _target("b", "[{kind: TCPRoute, name: p80}]",
                      "[{kind: ServiceAccount, name: d, namespace: ns}]")
            + _workload("", "[{name: a, ports: [{containerPort: 80}]}]"))
    inputs = parse_documents(yamlio.load_documents("test.yaml", text))
    sources = [Identity("c", "o"), Identity("d", "ns"), Identity("c", "ns")]
    https = [None, HttpRequest("GET", "/api/x"), HttpRequest("POST", "/api"),
             HttpRequest("GET", "/x/api")]
    for mode, expected in ((ConsulNamespaces.MIRROR, 5), (ConsulNamespaces.OFF, 5)):
        objects = list(translate(inputs, "consul", Options(consul_namespaces=mode)).objects)
        allowed = 0
        for src in sources:
            if mode is ConsulNamespaces.OFF and src not in (Identity("c", "o"), Identity("d", "ns")):
                continue  # CE cannot tell c.ns from c.o; c.ns is no identity of the input
            for port in (80, 81):
                for http in https:
                    for proto in ("TCP", "UDP"):
                        req = Request(src, "ns", "s", {"app": "s"}, proto, port, http)
                        if allows(objects, req, namespaces=mode.value, service_ports={80}):
                            allowed += 1
                            assert smi_allows(inputs, req), req
        # c.o: GET /api/x; d.ns: anything on port 80, the only port Consul service s has
        assert allowed == expected, mode


def test_ce_split_whose_service_name_another_namespace_has_is_not_emitted() -> None:
    other = """
---
apiVersion: v1
kind: Service
metadata: {name: b1, namespace: staging}
"""
    result = _run(_split([1, 1]) + other)
    assert _objects(result, "ServiceSplitter") == []
    [finding] = [f for f in result.findings if f.reason is FindingReason.NOT_EXPRESSIBLE]
    assert (finding.field, "staging" in finding.message) == ("spec.backends[1].service", True)
    assert _objects(translate_yaml(_split([1, 1]) + other, "consul", MIRROR), "ServiceSplitter")


def test_ce_splitter_names_are_claimed_across_namespaces() -> None:
    second = _split([1, 1]).replace("namespace: ns", "namespace: ns2").replace("name: ts", "name: ts2")
    result = _run(_split([1, 1]) + "\n---" + second)
    assert len(_objects(result, "ServiceSplitter")) == 1  # consul-k8s CE refuses a second "root"
    assert FindingReason.DUPLICATE_TARGET in {f.reason for f in result.findings}
    mirror = translate_yaml(_split([1, 1]) + "\n---" + second, "consul", MIRROR)
    assert len(_objects(mirror, "ServiceSplitter")) == 2
