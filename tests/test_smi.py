"""Parsing every SMI version into the internal model, and its errors."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from smi2mesh import weights
from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Protocol, SmiKind


def parse(text: str) -> Any:
    return parse_documents((f"t:{i}", d) for i, d in enumerate(yaml.safe_load_all(text), 1))


def errors(text: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse(text)
    return [p.render() for p in info.value.problems]


@pytest.mark.parametrize(("value", "milli"), [
    (1, 1000), ("1", 1000), ("1000m", 1000), ("500m", 500), ("1.5", 1500), ("10m", 10),
    ("2k", 2_000_000), (0, 0), ("0.0001", 1), ("1e3", 1_000_000), (0.25, 250),
])
def test_quantity_weights_by_milli_value(value: object, milli: int) -> None:
    assert weights.quantity_to_milli(value) == milli


@pytest.mark.parametrize("value", ["abc", "1.2.3", True, None, "5 m", "1e30"])
def test_bad_quantities(value: object) -> None:
    with pytest.raises(ValueError, match="weight"):
        weights.quantity_to_milli(value)


def test_v1alpha1_quantities_keep_the_ratio() -> None:
    inputs = parse("""
        apiVersion: split.smi-spec.io/v1alpha1
        kind: TrafficSplit
        metadata: {name: s, namespace: n}
        spec:
          service: root
          backends: [{service: a, weight: 1}, {service: b, weight: 500m}]
    """)
    assert [b.weight_milli for b in inputs.splits[0].backends] == [1000, 500]


def test_integer_weights_are_scaled_to_milli_and_strings_accepted() -> None:
    inputs = parse("""
        apiVersion: split.smi-spec.io/v1alpha2
        kind: TrafficSplit
        metadata: {name: s, namespace: n}
        spec:
          service: root
          backends: [{service: a, weight: 90}, {service: b, weight: "10"}]
    """)
    assert [b.weight_milli for b in inputs.splits[0].backends] == [90_000, 10_000]


def test_access_v1alpha1_top_level_with_string_port_and_default_namespaces() -> None:
    inputs = parse("""
        apiVersion: access.smi-spec.io/v1alpha1
        kind: TrafficTarget
        metadata: {name: t, namespace: n}
        destination: {kind: ServiceAccount, name: d, port: "9091"}
        sources: [{kind: ServiceAccount, name: s}]
        specs: [{kind: HTTPRouteGroup, name: g, matches: [m]}]
    """)
    tt = inputs.targets[0]
    assert (tt.port, tt.destination.namespace, tt.sources[0].namespace) == (9091, "n", "n")
    assert tt.rules[0].kind is SmiKind.HTTP_ROUTE_GROUP
    assert tt.rules_field == "specs"
    assert tt.field_prefix == ""


def test_headers_as_map_list_of_maps_and_name_value() -> None:
    for headers in ('{X-A: "a.*"}', '[{X-A: "a.*"}]', '[{name: X-A, value: "a.*"}]'):
        inputs = parse(f"""
            apiVersion: specs.smi-spec.io/v1alpha4
            kind: HTTPRouteGroup
            metadata: {{name: g, namespace: n}}
            spec:
              matches: [{{name: m, headers: {headers}}}]
        """)
        h = inputs.http_route_groups[0].matches[0].headers[0]
        assert (h.name, h.value) == ("x-a", "a.*")


def test_star_method_means_any() -> None:
    inputs = parse("""
        apiVersion: specs.smi-spec.io/v1alpha3
        kind: HTTPRouteGroup
        metadata: {name: g, namespace: n}
        spec:
          matches: [{name: m, methods: ["*", GET]}]
    """)
    assert inputs.http_route_groups[0].matches[0].methods == ()


def test_port_routes_v1alpha4_and_empty_older_versions() -> None:
    inputs = parse("""
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: UDPRoute
        metadata: {name: u, namespace: n}
        spec: {matches: {name: dns, ports: ["53", 53, 5353]}}
        ---
        apiVersion: specs.smi-spec.io/v1alpha2
        kind: TCPRoute
        metadata: {name: t, namespace: n}
    """.replace("        ---", "---"))
    tcp, udp = sorted(inputs.port_routes, key=lambda r: r.kind)
    assert (tcp.protocol, tcp.ports) == (Protocol.TCP, ())
    assert (udp.protocol, udp.ports, udp.match_name) == (Protocol.UDP, (53, 5353), "dns")


def test_unknown_fields_are_kept_for_findings() -> None:
    inputs = parse("""
        apiVersion: access.smi-spec.io/v1alpha3
        kind: TrafficTarget
        metadata: {name: t, namespace: n}
        spec:
          destination: {kind: ServiceAccount, name: d, extra: 1}
          sources: [{kind: ServiceAccount, name: s, weird: true}]
          rules: [{kind: TCPRoute, name: r}]
          timeout: 5s
    """)
    assert sorted(inputs.targets[0].ignored) == [
        "spec.destination.extra", "spec.sources[0].weird", "spec.timeout"]


@pytest.mark.parametrize(("body", "expected"), [
    ("spec: {service: r, backends: [{service: a, weight: -1}]}",
     "spec.backends[0].weight: weight -1 must not be negative"),
    ("spec: {service: r, backends: []}", "spec.backends: List should have at least 1 item"),
    ("spec: {service: R_1, backends: [{service: a, weight: 1}]}", "spec.service: 'R_1' is not a valid name"),
    ("spec: {backends: [{service: a, weight: 1}]}", "spec.service: is required"),
    ("spec: {service: r, backends: [{service: a, weight: 1.5}]}",
     "spec.backends[0].weight: weight 1.5 must be a whole number in this version"),
    ("spec: {service: r, backends: [{service: a, weight: 1}, {service: a, weight: 2}]}",
     "spec.backends[1].service: duplicate backend 'a'"),
    ("service: r\nspec: {service: r, backends: [{service: a, weight: 1}]}",
     "service: found both top-level fields and spec; use one layout"),
])
def test_split_errors_name_the_field(body: str, expected: str) -> None:
    text = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n" \
           "metadata: {name: s, namespace: n}\n" + body
    assert any(expected in e for e in errors(text)), errors(text)


def test_destination_in_another_namespace_is_rejected() -> None:
    errs = errors("""
        apiVersion: access.smi-spec.io/v1alpha3
        kind: TrafficTarget
        metadata: {name: t, namespace: a}
        spec:
          destination: {kind: ServiceAccount, name: d, namespace: b}
          sources: [{kind: ServiceAccount, name: s}]
          rules: [{kind: TCPRoute, name: r}]
    """)
    assert errs == ["t:1: TrafficTarget a/t: spec.destination.namespace: must equal the TrafficTarget's "
                    "namespace 'a', got 'b'"]


def test_duplicates_and_lists() -> None:
    doc = ("{apiVersion: specs.smi-spec.io/v1alpha4, kind: TCPRoute, "
           "metadata: {name: r, namespace: n}}")
    assert any("duplicate object" in e for e in errors(f"{doc}\n---\n{doc}"))
    inputs = parse(f"apiVersion: v1\nkind: List\nitems: [{doc}]")
    assert inputs.port_routes[0].meta.name == "r"


def test_bad_regexes_and_header_names() -> None:
    errs = errors("""
        apiVersion: specs.smi-spec.io/v1alpha4
        kind: HTTPRouteGroup
        metadata: {name: g, namespace: n}
        spec:
          matches:
          - {name: a, pathRegex: "(a)\\\\1"}
          - {name: b, headers: {"bad header": x}}
          - {name: c, methods: [FETCH]}
    """)
    assert len(errs) == 3
    assert "spec.matches[0].pathRegex: invalid RE2 regex" in errs[0]
    assert "spec.matches[1].headers" in errs[1]
    assert "spec.matches[2].methods[0]" in errs[2]
