"""Unit tests of the Consul target: semantics the golden files do not make obvious."""

from __future__ import annotations

from typing import Any

import pytest

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import HeaderMatch, HTTPMatch, Identity
from smi2mesh.translate import translate
from smi2mesh.translators.base import TranslationResult
from smi2mesh.translators.consul import _header, _http_match, _path_fields, _percent
from tests.access import HttpRequest, Request, smi_allows
from tests.access.consul import allows, http_matches
from tests.translators.helpers import translate_yaml


def _run(yaml_text: str, *, check_refs: bool = True) -> TranslationResult:
    return translate_yaml(yaml_text, "consul", check_refs=check_refs)


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
    # The CLI rejects the dangling reference up front; the operator sees it mid-edit.
    result = _run(_split([1, 1], "  matches: [{kind: HTTPRouteGroup, name: nope}]"),
                  check_refs=False)
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


def test_port_scoped_http_grant_fails_closed() -> None:
    result = _run(ROUTES + _target("t", "[{kind: TCPRoute, name: p80}, {kind: HTTPRouteGroup, name: g}]"))
    assert result.objects == ()
    assert ("t", "spec.rules", FindingReason.ACCESS_FAIL_CLOSED) in _reasons(result)


def test_l4_grant_wins_over_http_permissions_of_the_same_source() -> None:
    result = _run(ROUTES + _target("a", "[{kind: HTTPRouteGroup, name: g}]")
                  + _target("b", "[{kind: TCPRoute, name: all}]"))
    [intentions] = _objects(result, "ServiceIntentions")
    assert intentions["spec"]["sources"] == [{"name": "c", "namespace": "o", "action": "allow"}]
    assert intentions["metadata"]["annotations"]["smi2mesh.io/source"] == (
        "TrafficTarget/ns/a,TrafficTarget/ns/b")


def test_one_intentions_object_per_destination_with_sorted_sources() -> None:
    result = _run(ROUTES
                  + _target("a", "[{kind: TCPRoute, name: all}]",
                            "[{kind: ServiceAccount, name: z, namespace: b}]")
                  + _target("b", "[{kind: HTTPRouteGroup, name: g}]",
                            "[{kind: ServiceAccount, name: y, namespace: a}, "
                            "{kind: ServiceAccount, name: z, namespace: b}]")
                  + _target("c", "[{kind: TCPRoute, name: all}]", dest="other"))
    by_name = {o["metadata"]["name"]: o for o in _objects(result, "ServiceIntentions")}
    assert sorted(by_name) == ["other", "s"]
    assert [(s["namespace"], s["name"]) for s in by_name["s"]["spec"]["sources"]] == [
        ("a", "y"), ("b", "z")]
    assert "permissions" in by_name["s"]["spec"]["sources"][0]
    assert by_name["s"]["spec"]["sources"][1]["action"] == "allow"


def test_every_source_names_its_namespace() -> None:
    result = _run(ROUTES + _target("t", "[{kind: TCPRoute, name: all}]",
                                   "[{kind: ServiceAccount, name: same}]"))
    [intentions] = _objects(result, "ServiceIntentions")
    assert intentions["spec"]["sources"] == [{"name": "same", "namespace": "ns", "action": "allow"}]
    req = Request(Identity("same", "elsewhere"), "ns", "s", {}, "TCP", 1)
    assert not allows(list(result.objects), req)


def test_translation_never_allows_what_smi_denies_on_a_grid() -> None:
    text = (ROUTES + _target("a", "[{kind: HTTPRouteGroup, name: g}]")
            + _target("b", "[{kind: TCPRoute, name: p80}]",
                      "[{kind: ServiceAccount, name: d, namespace: ns}]"))
    inputs = parse_documents(yamlio.load_documents("test.yaml", text))
    objects = list(translate(inputs, "consul").objects)
    sources = [Identity("c", "o"), Identity("d", "ns"), Identity("c", "ns")]
    https = [None, HttpRequest("GET", "/api/x"), HttpRequest("POST", "/api"),
             HttpRequest("GET", "/x/api")]
    allowed = 0
    for src in sources:
        for port in (80, 81):
            for http in https:
                for proto in ("TCP", "UDP"):
                    req = Request(src, "ns", "s", {}, proto, port, http)
                    if allows(objects, req):
                        allowed += 1
                        assert smi_allows(inputs, req), req
    assert allowed == 2  # c.o: GET /api/x on both ports; d.ns's port-80 grant failed closed
