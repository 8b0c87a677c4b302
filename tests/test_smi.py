"""Parsing every SMI version into the internal model, and its errors."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from smi2mesh import weights
from smi2mesh.errors import InputError
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Protocol, SmiKind
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from smi2mesh.translators.base import Options


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


# Root Services with ports, which the GAMMA targets need to emit a route.
SERVICES = "".join(f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: n}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
""" for name in ("root", "web", "api"))


def _split(version: str, weights_yaml: str, layout: str = "spec") -> str:
    body = f"service: root\nbackends: {weights_yaml}"
    if layout == "spec":
        body = "spec:\n" + "\n".join("  " + line for line in body.splitlines())
    return (f"apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\n"
            f"metadata: {{name: s, namespace: n}}\n{body}\n" + SERVICES)


@pytest.mark.parametrize("version", ["v1alpha2", "v1alpha3", "v1alpha4"])
def test_quantity_strings_in_integer_versions_are_read_by_milli_value_and_reported(version: str) -> None:
    """linkerd-smi serves stored v1alpha1 objects as v1alpha2 unchanged: 500m occurs there."""
    inputs = parse(_split(version, '[{service: a, weight: 1}, {service: b, weight: 500m}, '
                                   '{service: c, weight: "100"}, {service: d, weight: 1500m}]'))
    (ts,) = inputs.splits
    assert [b.weight_milli for b in ts.backends] == [1000, 500, 100_000, 1500]
    notes = [(n.field, n.reason) for n in ts.notes]
    assert notes == [(f"spec.backends[{i}].weight", FindingReason.REWRITTEN) for i in (1, 2, 3)]
    # The same weights give the same ratios as in v1alpha1, where Quantity is the type.
    v1 = parse(_split("v1alpha1", '[{service: a, weight: 1}, {service: b, weight: 500m}, '
                                  '{service: c, weight: "100"}, {service: d, weight: 1500m}]'))
    assert [b.weight_milli for b in v1.splits[0].backends] == [b.weight_milli for b in ts.backends]
    assert v1.splits[0].notes == ()
    result = translate(inputs, "gamma")
    # 1 : 500m : 100 : 1500m by milli-value, reduced.
    assert [r["weight"] for r in result.objects[0]["spec"]["rules"][0]["backendRefs"]] == [
        2, 1, 200, 3]
    rewritten = [f for f in result.findings if f.reason is FindingReason.REWRITTEN]
    assert [f.field for f in rewritten] == ["spec.backends[1].weight", "spec.backends[2].weight",
                                           "spec.backends[3].weight"]
    assert "'500m' is a string in split " + version in rewritten[0].message


def test_quantity_note_names_the_top_level_field() -> None:
    (ts,) = parse(_split("v1alpha2", "[{service: a, weight: 1}, {service: b, weight: 500m}]",
                         layout="top")).splits
    assert [n.field for n in ts.notes] == ["backends[1].weight"]


def test_plain_integers_are_not_reported() -> None:
    (ts,) = parse(_split("v1alpha2", "[{service: a, weight: 90}, {service: b, weight: 10}]")).splits
    assert ts.notes == ()
    assert translate(parse(_split("v1alpha2", "[{service: a, weight: 9}]")), "gamma").findings == ()


@pytest.mark.parametrize(("weight", "message"), [
    ("-500m", "weight '-500m' must not be negative"),
    ("abc", "weight 'abc' is not a Kubernetes quantity (e.g. 1, 500m, 1.5)"),
    ("1.5", "weight 1.5 must be a whole number in this version"),
])
def test_bad_weights_in_integer_versions(weight: str, message: str) -> None:
    errs = errors(_split("v1alpha2", f"[{{service: a, weight: {weight}}}]"))
    assert errs == [f"t:1: TrafficSplit n/s: spec.backends[0].weight: {message}"], errs


HOST_FORMS = ["web", "web.n", "web.n.svc", "web.n.svc.cluster.local", "web.n.svc.cluster.local.",
              "Web.N.svc"]


@pytest.mark.parametrize("host", HOST_FORMS)
def test_roots_and_backends_as_hostnames_name_services_of_the_namespace(host: str) -> None:
    text = (f"apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
            f"metadata: {{name: s, namespace: n}}\n"
            f"spec:\n  service: {host}\n"
            f"  backends: [{{service: '{host.replace('web', 'web-v1', 1).replace('Web', 'web-v1', 1)}', "
            f"weight: 1}}, {{service: web-v2, weight: 1}}]\n")
    (ts,) = parse(text).splits
    assert (ts.service, [b.service for b in ts.backends]) == ("web", ["web-v1", "web-v2"])
    bare = parse(text.replace(f"service: {host}", "service: web")
                 .replace(f"'{host.replace('web', 'web-v1', 1).replace('Web', 'web-v1', 1)}'", "web-v1"))
    for mesh in TRANSLATORS:
        if mesh == "smi":
            continue
        # Exactly what the bare names give: the hostname is only another spelling.
        assert translate(parse(text), mesh).objects == translate(bare, mesh).objects, mesh
    if host != "web":
        assert ts.service_host is not None
        assert ts.service_host.text == host
        smi = translate(parse(text), "smi")
        assert smi.objects[0]["spec"]["service"] == "web"
        assert {(f.field, f.reason) for f in smi.findings} == {
            ("spec.service", FindingReason.REWRITTEN),
            ("spec.backends[0].service", FindingReason.REWRITTEN)}


@pytest.mark.parametrize(("field_yaml", "field", "host"), [
    ("service: web.other", "spec.service", "web.other"),
    ("service: web.other.svc.cluster.local", "spec.service", "web.other.svc.cluster.local"),
    ("service: web\n  backends: [{service: a.other.svc, weight: 1}]", "spec.backends[0].service",
     "a.other.svc"),
])
def test_a_hostname_of_another_namespace_is_an_input_error(field_yaml: str, field: str,
                                                           host: str) -> None:
    text = ("apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: n}\n"
            f"spec:\n  {field_yaml}\n")
    if "backends" not in field_yaml:
        text += "  backends: [{service: a, weight: 1}]\n"
    assert errors(text) == [
        f"t:1: TrafficSplit n/s: {field}: {host!r} names Service {host.partition('.')[0]!r} of namespace "
        "'other'; a TrafficSplit's Services must be in its own namespace 'n'"]


def test_hostname_duplicates_are_found_by_the_service_they_name() -> None:
    errs = errors(_split("v1alpha4", "[{service: a, weight: 1}, {service: a.n.svc, weight: 1}]"))
    assert errs == ["t:1: TrafficSplit n/s: spec.backends[1].service: duplicate backend 'a'"]


OTHER_SPLIT = """
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: fine, namespace: n}
spec:
  service: api
  backends: [{service: api-v1, weight: 1}]
""" + SERVICES


def _emitted_for(objects: tuple[dict[str, Any], ...], split: str) -> list[str]:
    """Names of the objects translated from TrafficSplit n/<split> (Consul names them by Service)."""
    return [o["metadata"]["name"] for o in objects
            if f"TrafficSplit/n/{split}" in o["metadata"].get("annotations", {}).get(
                "smi2mesh.io/source", "") or o["metadata"]["name"] == split]


@pytest.mark.parametrize(("host", "options", "why"), [
    ("podinfo.example.com", Options(), "it names no Service of namespace 'n' (a Service is named "
                                       "<name>, <name>.n, <name>.n.svc or <name>.n.svc.cluster.local)"),
    ("web.n.cluster.local", Options(), "it names no Service of namespace 'n' (a Service is named "
                                       "<name>, <name>.n, <name>.n.svc or <name>.n.svc.cluster.local)"),
    ("web.n.svc.corp.internal", Options(), "its cluster domain 'corp.internal' is not the cluster's "
                                           "'cluster.local' (--cluster-domain)"),
    ("web.n.svc.cluster.local", Options(cluster_domain="corp.internal"),
     "its cluster domain 'cluster.local' is not the cluster's 'corp.internal' (--cluster-domain)"),
])
def test_a_host_that_names_no_service_is_an_unresolved_reference_on_every_target(
        host: str, options: Options, why: str) -> None:
    inputs = parse(f"""
        apiVersion: split.smi-spec.io/v1alpha4
        kind: TrafficSplit
        metadata: {{name: s, namespace: n}}
        spec:
          service: web
          backends: [{{service: "{host}", weight: 1}}, {{service: b, weight: 1}}]
        ---
    """.replace("        ---", "---") + OTHER_SPLIT)
    for mesh in TRANSLATORS:
        result = translate(inputs, mesh, options)
        assert _emitted_for(result.objects, "s") == [], mesh
        assert _emitted_for(result.objects, "fine") != [], mesh
        (finding,) = [f for f in result.findings if f.name == "s"]
        assert (finding.field, finding.reason) == ("spec.backends[0].service",
                                                   FindingReason.UNRESOLVED_REFERENCE)
        assert finding.message == f"host {host!r}: {why}; split not emitted"


def test_a_matching_cluster_domain_resolves() -> None:
    inputs = parse(_split("v1alpha4", "[{service: a.n.svc.corp.internal, weight: 1}]"))
    result = translate(inputs, "gamma", Options(cluster_domain="corp.internal"))
    assert [r["name"] for r in result.objects[0]["spec"]["rules"][0]["backendRefs"]] == ["a"]
    assert result.findings == ()


MISSING_GROUP = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: n}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: nowhere}]
  backends: [{service: web-v1, weight: 1}]
"""


def test_split_matches_naming_a_missing_group_parse_and_emit_nothing_on_every_target() -> None:
    inputs = parse(MISSING_GROUP + "---" + OTHER_SPLIT)
    for mesh in TRANSLATORS:
        result = translate(inputs, mesh)
        assert _emitted_for(result.objects, "s") == [], mesh
        assert _emitted_for(result.objects, "fine") != [], mesh
        assert [(f.field, f.reason, f.message) for f in result.findings if f.name == "s"] == [
            ("spec.matches[0]", FindingReason.UNRESOLVED_REFERENCE,
             "HTTPRouteGroup n/nowhere does not exist; split not emitted")], mesh


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
    ("spec: {service: R_1, backends: [{service: a, weight: 1}]}",
     "spec.service: 'R_1' is neither a Service name nor a hostname (RFC 1123)"),
    ("spec: {service: r, backends: [{service: 'a..b', weight: 1}]}",
     "spec.backends[0].service: 'a..b' is neither a Service name nor a hostname"),
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


@pytest.mark.parametrize(("version", "layout", "field", "message"), [
    ("v1alpha1", "", "rules", "access v1alpha1 holds its rules in 'specs'; 'rules' is the field of "
                              "access v1alpha2 and v1alpha3, so these rules cannot be read"),
    ("v1alpha1", "spec.", "rules", "access v1alpha1 holds its rules in 'specs'; 'rules' is the field "
                                   "of access v1alpha2 and v1alpha3, so these rules cannot be read"),
    ("v1alpha3", "spec.", "specs", "access v1alpha3 holds its rules in 'rules'; 'specs' is the field "
                                   "of access v1alpha1, so these rules cannot be read"),
])
def test_rules_under_another_versions_field_are_an_input_error(version: str, layout: str, field: str,
                                                               message: str) -> None:
    """Left unread they would vanish, and an empty rules list is allow-all on Traefik Mesh."""
    body = ("destination: {kind: ServiceAccount, name: d}\nsources: [{kind: ServiceAccount, name: s}]\n"
            f"{field}: [{{kind: TCPRoute, name: r}}]\n")
    if layout:
        body = "spec:\n" + "".join("  " + line + "\n" for line in body.splitlines())
    errs = errors(f"apiVersion: access.smi-spec.io/{version}\nkind: TrafficTarget\n"
                  f"metadata: {{name: t, namespace: n}}\n{body}")
    assert errs == [f"t:1: TrafficTarget n/t: {layout}{field}: {message}"]


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
