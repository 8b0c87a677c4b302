"""Tests for tests/crd_schema.py: the offline CRD validator must accept valid objects and fail.

Every later translation test trusts an empty error list, so each rule is shown to reject
something, on real upstream CRDs of every mesh.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.crd_schema import CrdIndex, CrdVersion, check_against, default_crds_dir

Obj = dict[str, Any]
DELETE = object()


@pytest.fixture(scope="module")
def index() -> CrdIndex:
    return CrdIndex.load()


def obj(api_version: str, kind: str, spec: Obj, **meta: Any) -> Obj:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "web", "namespace": "shop", **meta}, "spec": spec}


def with_(o: Obj, path: str, value: Any) -> Obj:
    """Deep copy of ``o`` with the dotted path (list indexes as numbers) set or deleted."""
    out = copy.deepcopy(o)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


VS = obj("networking.istio.io/v1", "VirtualService", {
    "hosts": ["reviews"],
    "http": [{"match": [{"uri": {"prefix": "/"}, "headers": {"x-user": {"exact": "a"}}}],
              "route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 75},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 25}]}]})
SERVER = obj("policy.linkerd.io/v1beta3", "Server",
             {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http"})
SPLITTER = obj("consul.hashicorp.com/v1alpha1", "ServiceSplitter", {"splits": [
    {"weight": 90, "service": "web"}, {"weight": 10, "service": "web", "serviceSubset": "v2"}]})
MESH_ROUTE = obj("kuma.io/v1alpha1", "MeshHTTPRoute", {
    "targetRef": {"kind": "Mesh"},
    "to": [{"targetRef": {"kind": "MeshService", "name": "web"}, "rules": [{
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "default": {"backendRefs": [{"kind": "MeshService", "name": "web-v1", "weight": 90}]}}]}]})
CNP = obj("cilium.io/v2", "CiliumNetworkPolicy", {
    "endpointSelector": {"matchLabels": {"app": "web"}},
    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                 "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]})
HTTPROUTE = obj("gateway.networking.k8s.io/v1", "HTTPRoute", {
    "parentRefs": [{"name": "web", "kind": "Service", "group": ""}],
    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
               "backendRefs": [{"name": "web-v1", "port": 80, "weight": 90}]}]})
SPLIT = obj("split.smi-spec.io/v1alpha4", "TrafficSplit", {
    "service": "web", "backends": [{"service": "web-v1", "weight": 90},
                                   {"service": "web-v2", "weight": 10}]})

VALID = {"istio": VS, "linkerd": SERVER, "consul": SPLITTER, "kuma": MESH_ROUTE,
         "cilium": CNP, "gateway": HTTPROUTE, "smi": SPLIT}

# (name, broken object, expected start of one error). Consul's controller-gen CRDs declare no
# `enum` and no `required` at all, so ObjectMeta's required name stands in for it there.
BROKEN: list[tuple[str, Obj, str]] = [
    ("istio-unknown", with_(VS, "spec.http.0.route.1.bogus", 1),
     "spec.http[0].route[1].bogus: unknown field"),
    ("istio-type", with_(VS, "spec.http.0.route.1.weight", "25"),
     'spec.http[0].route[1].weight: Invalid value: "25": must be of type integer'),
    ("istio-float-int", with_(VS, "spec.http.0.route.1.weight", 25.0),
     "spec.http[0].route[1].weight: Invalid value: 25.0: must be of type integer"),
    ("istio-required", with_(VS, "spec.http.0.route.0.destination.host", DELETE),
     "spec.http[0].route[0].destination.host: Required value"),
    ("istio-enum", with_(VS, "spec.http.0.corsPolicy", {"unmatchedPreflights": "DROP"}),
     'spec.http[0].corsPolicy.unmatchedPreflights: Unsupported value: "DROP"'),
    ("istio-minimum", with_(VS, "spec.http.0.directResponse", {"status": -3}),
     "spec.http[0].directResponse.status: Invalid value: -3: must be >= 0"),
    ("istio-oneof", with_(VS, "spec.http.0.match", [{"uri": {"exact": "/", "prefix": "/"}}]),
     "spec.http[0].match[0].uri: Invalid value"),
    ("istio-label", with_(VS, "metadata.labels", {"app": "-bad-"}),
     'metadata.labels[app]: Invalid value: "-bad-"'),
    ("linkerd-unknown", with_(SERVER, "spec.podSelector.bogus", {}),
     "spec.podSelector.bogus: unknown field"),
    ("linkerd-type", with_(SERVER, "spec.port", True),
     "spec.port: Invalid value: true: must be of type int-or-string"),
    ("linkerd-required", with_(SERVER, "spec.port", DELETE), "spec.port: Required value"),
    ("linkerd-enum", with_(SERVER, "spec.podSelector.matchExpressions",
                           [{"key": "app", "operator": "Like"}]),
     'spec.podSelector.matchExpressions[0].operator: Unsupported value: "Like"'),
    ("linkerd-oneof", with_(SERVER, "spec.podSelector", DELETE),
     "spec: Invalid value: "),
    ("linkerd-label", with_(SERVER, "metadata.labels", {"bad key": "x"}),
     'metadata.labels: Invalid value: "bad key": name part'),
    ("consul-unknown", with_(SPLITTER, "spec.splits.0.bogus", "x"),
     "spec.splits[0].bogus: unknown field"),
    ("consul-type", with_(SPLITTER, "spec.splits.0.weight", "90"),
     'spec.splits[0].weight: Invalid value: "90": must be of type number'),
    ("consul-required", with_(SPLITTER, "metadata.name", DELETE), "metadata.name: Required value"),
    ("consul-label", with_(SPLITTER, "metadata.labels", {"app": "x" * 64}),
     "metadata.labels[app]: Invalid value"),
    ("kuma-unknown", with_(MESH_ROUTE, "spec.to.0.bogus", 1), "spec.to[0].bogus: unknown field"),
    ("kuma-type", with_(MESH_ROUTE, "spec.to.0.hostnames", "a.example"),
     'spec.to[0].hostnames: Invalid value: "a.example": must be of type array'),
    ("kuma-required", with_(MESH_ROUTE, "spec.targetRef.kind", DELETE),
     "spec.targetRef.kind: Required value"),
    ("kuma-enum", with_(MESH_ROUTE, "spec.to.0.rules.0.matches.0.method", "FETCH"),
     'spec.to[0].rules[0].matches[0].method: Unsupported value: "FETCH"'),
    ("kuma-min-items", with_(MESH_ROUTE, "spec.to.0.rules.0.matches", []),
     "spec.to[0].rules[0].matches: Invalid value: 0 items: must have at least 1"),
    ("kuma-label", with_(MESH_ROUTE, "metadata.labels", {"Bad_Prefix/app": "x"}),
     'metadata.labels: Invalid value: "Bad_Prefix/app": prefix part'),
    ("cilium-unknown", with_(CNP, "spec.ingress.0.bogus", 1),
     "spec.ingress[0].bogus: unknown field"),
    ("cilium-type", with_(CNP, "spec.ingress.0.toPorts.0.ports.0.port", 8080),
     "spec.ingress[0].toPorts[0].ports[0].port: Invalid value: 8080: must be of type string"),
    ("cilium-required", with_(CNP, "spec.ingress.0.authentication", {}),
     "spec.ingress[0].authentication.mode: Required value"),
    ("cilium-enum", with_(CNP, "spec.ingress.0.toPorts.0.ports.0.protocol", "ICMP"),
     'spec.ingress[0].toPorts[0].ports[0].protocol: Unsupported value: "ICMP"'),
    ("cilium-pattern", with_(CNP, "spec.ingress.0.toPorts.0.ports.0.port", "!!"),
     'spec.ingress[0].toPorts[0].ports[0].port: Invalid value: "!!": should match'),
    ("cilium-re2-pattern", with_(CNP, "spec.log", {"value": "bell\x07"}),
     'spec.log.value: Invalid value: "bell\\u0007": should match'),
    ("cilium-anyof", with_(CNP, "spec.ingress", DELETE), "spec: Invalid value"),
    ("cilium-oneof", with_(CNP, "spec.nodeSelector", {}), "spec: Invalid value"),
    ("cilium-label", with_(CNP, "metadata.labels", {"app": "a b"}),
     'metadata.labels[app]: Invalid value: "a b"'),
    ("gateway-unknown", with_(HTTPROUTE, "spec.rules.0.bogus", 1),
     "spec.rules[0].bogus: unknown field"),
    ("gateway-type", with_(HTTPROUTE, "spec.rules.0.backendRefs.0.port", "80"),
     'spec.rules[0].backendRefs[0].port: Invalid value: "80": must be of type integer'),
    ("gateway-minimum", with_(HTTPROUTE, "spec.rules.0.backendRefs.0.weight", -3),
     "spec.rules[0].backendRefs[0].weight: Invalid value: -3: must be >= 0"),
    ("gateway-required", with_(HTTPROUTE, "spec.parentRefs.0.name", DELETE),
     "spec.parentRefs[0].name: Required value"),
    ("gateway-enum", with_(HTTPROUTE, "spec.rules.0.matches.0.method", "FETCH"),
     'spec.rules[0].matches[0].method: Unsupported value: "FETCH"'),
    ("gateway-list-map", with_(HTTPROUTE, "spec.rules.0.matches.0.headers",
                               [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]),
     'spec.rules[0].matches[0].headers[1]: Duplicate value: {"name": "a"}'),
    ("gateway-pattern", with_(HTTPROUTE, "spec.rules.0.timeouts", {"request": "10 s"}),
     'spec.rules[0].timeouts.request: Invalid value: "10 s": should match'),
    ("gateway-max-length", with_(HTTPROUTE, "spec.parentRefs.0.name", "é" * 254),
     "spec.parentRefs[0].name: Too long: may not be more than 253"),
    ("gateway-label", with_(HTTPROUTE, "metadata.labels", {"a/b/c": "x"}),
     'metadata.labels: Invalid value: "a/b/c"'),
    ("smi-unknown", with_(SPLIT, "spec.bogus", 1), "spec.bogus: unknown field"),
    ("smi-type", with_(SPLIT, "spec.backends.0.weight", "90"),
     'spec.backends[0].weight: Invalid value: "90": must be of type number'),
    ("smi-required", with_(SPLIT, "spec.service", DELETE), "spec.service: Required value"),
    ("smi-enum", with_(SPLIT, "spec.matches", [{"kind": "TCPRoute", "name": "r"}]),
     'spec.matches[0].kind: Unsupported value: "TCPRoute"'),
    ("smi-label", with_(SPLIT, "metadata.labels", {"app": 3}),
     "metadata.labels[app]: Invalid value: 3: must be of type string"),
]


@pytest.mark.parametrize("o", VALID.values(), ids=VALID.keys())
def test_minimal_valid_objects_pass(index: CrdIndex, o: Obj) -> None:
    assert index.validate(o) == []


@pytest.mark.parametrize(("o", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_objects_fail_naming_the_path(index: CrdIndex, o: Obj, expected: str) -> None:
    errors = index.validate(o)
    assert any(e.startswith(expected) for e in errors), errors


def test_consul_spec_really_has_no_enum_or_required(index: CrdIndex) -> None:
    schema = index.candidates("consul.hashicorp.com/v1alpha1", "ServiceSplitter")[0].schema
    assert schema is not None
    spec = repr(schema["properties"]["spec"])
    assert "'enum'" not in spec
    assert "'required'" not in spec


def test_every_problem_is_reported(index: CrdIndex) -> None:
    o = with_(with_(with_(HTTPROUTE, "spec.bogus", 1), "spec.rules.0.backendRefs.0.port", 0),
              "metadata.extra", "x")
    errors = index.validate(o)
    assert len(errors) == 3, errors
    assert "metadata.extra: unknown field" in errors


def test_preserve_unknown_fields(index: CrdIndex) -> None:
    # Istio's status, Linkerd's matchLabels and Kuma's legacy TrafficRoute spec keep anything.
    assert index.validate(with_(VS, "status", {"anything": {"goes": [1]}})) == []
    assert index.validate(with_(SERVER, "spec.podSelector.matchLabels", {"a": {"b": 1}})) == []
    legacy = {"apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute", "mesh": "default",
              "metadata": {"name": "route"}, "spec": {"conf": {"split": [{"weight": 1}]}}}
    assert index.validate(legacy) == []
    assert index.validate(with_(legacy, "mesh", 5))[0].startswith("mesh: Invalid value: 5")
    # ...but only below the marked node.
    assert index.validate(with_(VS, "bogus", 1)) == ["bogus: unknown field"]


@pytest.mark.parametrize(("port", "ok"), [(8080, True), ("http", True), (80.5, False),
                                          (True, False), (None, False), ([80], False)])
def test_int_or_string(index: CrdIndex, port: Any, ok: bool) -> None:
    assert (index.validate(with_(SERVER, "spec.port", port)) == []) is ok


def test_int_or_string_without_type_in_linkerd_smi_v1alpha1(index: CrdIndex) -> None:
    o = with_(SPLIT, "apiVersion", "split.smi-spec.io/v1alpha1")
    assert index.validate(with_(o, "spec.backends.0.weight", "500m")) == []
    assert index.validate(with_(o, "spec.backends.0.weight", 1.5)) != []


def test_metadata_rules(index: CrdIndex) -> None:
    def meta(**m: Any) -> Obj:
        return {**SPLIT, "metadata": m}

    assert index.validate(meta(generateName="web-")) == []
    assert index.validate(meta(name="web", creationTimestamp=None)) == []
    assert index.validate(meta(name="Web_1"))[0].startswith('metadata.name: Invalid value: "Web_1"')
    assert index.validate(meta(name="web", namespace="Shop"))[0].startswith("metadata.namespace")
    assert index.validate(meta(name="web", annotations={"a": 1}))[0].startswith(
        "metadata.annotations[a]: Invalid value: 1")
    assert index.validate(meta(name="web", ownerReferences=[{"kind": "X"}]))[0].startswith(
        "metadata.ownerReferences[0].apiVersion: Required value")
    ccnp = {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "all", "namespace": "shop"}, "spec": CNP["spec"]}
    assert index.validate(ccnp) == [
        "metadata.namespace: Forbidden: not allowed on a cluster-scoped resource"]


def test_apiversion_and_kind(index: CrdIndex) -> None:
    assert index.validate({**VS, "apiVersion": "networking.istio.io/v9"}) == [
        "no CRD defines apiVersion='networking.istio.io/v9' kind='VirtualService'"]
    crd = index.candidates("networking.istio.io/v1", "VirtualService")[0]
    assert check_against({**VS, "kind": "Gateway"}, crd).errors[0].startswith("kind: Invalid")


def test_nullable(index: CrdIndex) -> None:
    # Istio marks proto wrapper fields such as corsPolicy.allowCredentials nullable: true.
    assert index.validate(with_(VS, "spec.http.0.corsPolicy", {"allowCredentials": None})) == []
    assert index.validate(with_(VS, "spec.hosts", None)) == [
        "spec.hosts: Invalid value: null: must be of type array"]


def test_cel_rules_are_counted_not_run(index: CrdIndex) -> None:
    result = index.check(HTTPROUTE)
    assert result.ok
    assert result.skipped_cel_rules > 0
    assert result.candidate is not None
    assert result.candidate.source.startswith("gateway-api-v1.6.1/standard/")


def test_candidate_ranking_and_selection(index: CrdIndex) -> None:
    grpc = index.candidates("gateway.networking.k8s.io/v1", "GRPCRoute")
    # Standard before experimental, then the newest release first.
    assert [c.source.split("/")[0:2] for c in grpc] == [
        ["gateway-api-v1.6.1", "standard"], ["gateway-api-v1.5.1", "standard"],
        ["gateway-api-v1.6.1", "experimental"], ["gateway-api-v1.5.1", "experimental"],
        ["gateway-api-v1.1.1", "experimental"]]
    # v1alpha2 TCPRoute is listed but unserved in 1.6.1 standard: served experimental ones win.
    tcp = index.candidates("gateway.networking.k8s.io/v1alpha2", "TCPRoute")
    assert [(*c.source.split("/")[0:2], c.served) for c in tcp] == [
        ("gateway-api-v1.6.1", "experimental", True), ("gateway-api-v1.5.1", "experimental", True),
        ("gateway-api-v1.6.1", "standard", False)]
    # A Gateway API 1.5.1 profile is checked against that release, not silently the newest.
    v151 = CrdIndex.load(prefer=["gateway-api-v1.5.1/standard", "gateway-api-v1.5.1/experimental"])
    assert v151.candidates("gateway.networking.k8s.io/v1alpha2", "TCPRoute")[0].source == (
        "gateway-api-v1.5.1/experimental/gateway.networking.k8s.io_tcproutes.yaml")
    assert v151.candidates("gateway.networking.k8s.io/v1", "HTTPRoute")[0].source == (
        "gateway-api-v1.5.1/standard/gateway.networking.k8s.io_httproutes.yaml")
    # TCPRoute v1 does not exist before 1.6.
    assert not index.candidates("gateway.networking.k8s.io/v1", "TCPRoute", source="gateway-api-v1.5.1")
    assert index.candidates("gateway.networking.k8s.io/v1alpha2", "TCPRoute", served_only=True)
    exp = CrdIndex.load(prefer=["gateway-api-v1.6.1/experimental"])
    assert "experimental" in exp.candidates("gateway.networking.k8s.io/v1", "HTTPRoute")[0].source
    assert CrdIndex.load(prefer=("gateway-api-v1.6.1/experimental",)) is exp
    assert CrdIndex.load() is index
    sub = CrdIndex.load(default_crds_dir() / "gateway-api-v1.1.1")
    assert {c.kind for c in sub.versions} == {"GRPCRoute"}
    split = index.candidates("split.smi-spec.io/v1alpha4", "TrafficSplit")
    assert split[0].source == "smi/smi-sdk-go-main/split.yaml"
    assert index.candidates("split.smi-spec.io/v1alpha4", "TrafficSplit", source="smi/nope") == []


def test_smi_v1beta1_crds_do_not_prune(index: CrdIndex) -> None:
    # smi-sdk-go v0.5.0 ships apiextensions v1beta1 CRDs without preserveUnknownFields: false,
    # so the API server kept unknown fields; validation of known ones still applies.
    old = "smi/smi-sdk-go-v0.5.0"
    result = index.check(with_(SPLIT, "spec.bogus", 1), source=old)
    assert result.ok
    assert any("preserveUnknownFields" in n for n in result.notes)
    assert index.validate(with_(SPLIT, "spec.service", DELETE), source=old) == [
        "spec.service: Required value"]


def test_validate_any_smi_versions(index: CrdIndex) -> None:
    target = {"apiVersion": "access.smi-spec.io/v1alpha1", "kind": "TrafficTarget",
              "metadata": {"name": "t"}, "destination": {"kind": "ServiceAccount", "name": "web",
                                                         "port": 80},
              "sources": [{"kind": "ServiceAccount", "name": "client"}],
              "specs": [{"kind": "HTTPRouteGroup", "name": "routes"}]}
    main = index.check(target, source="smi/smi-sdk-go-main")
    assert main.ok
    assert main.candidate is not None
    assert not main.candidate.served
    assert index.validate_any(target) == []
    assert index.validate_any(target, served_only=True)[0].startswith("no CRD")
    bad = with_(target, "destination.port", "80")
    errors = index.validate_any(bad, source="smi/smi-sdk-go-main")
    assert errors == [('[smi/smi-sdk-go-main/access.yaml] destination.port: Invalid value: "80": '
                       "must be of type number")]


def test_default_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESH_CRDS_DIR", str(tmp_path))
    assert default_crds_dir() == tmp_path
    monkeypatch.delenv("MESH_CRDS_DIR")
    assert default_crds_dir().name == "upstream-crds"


def test_index_covers_every_mesh(index: CrdIndex) -> None:
    groups = {c.group for c in index.versions}
    assert {"networking.istio.io", "policy.linkerd.io", "consul.hashicorp.com", "kuma.io",
            "cilium.io", "gateway.networking.k8s.io", "split.smi-spec.io"} <= groups


SYNTHETIC = CrdVersion(
    group="example.com", version="v1", kind="Widget", scope="Namespaced", served=True,
    storage=True, deprecated=False, source="synthetic.yaml", schema={
        "type": "object", "properties": {"spec": {"type": "object", "minProperties": 1,
            "properties": {
                "step": {"type": "number", "multipleOf": 0.5, "minimum": 0,
                         "exclusiveMinimum": True},
                "tags": {"type": "array", "items": {"type": "string"},
                         "x-kubernetes-list-type": "set"},
                "unique": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
                "mode": {"type": "string", "not": {"enum": ["off"]}},
                # \z is RE2-only, the backreference Python-only: neither engine can check it.
                "codes": {"type": "array",
                          "items": {"type": "string", "pattern": r"(a)\1\z"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object"}}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                          "properties": {"known": {"type": "integer"}}},
                "limits": {"type": "object", "additionalProperties": {"type": "integer"},
                           "maxProperties": 1},
            }}}})


@pytest.mark.parametrize(("spec", "expected"), [
    ({"step": 1.5, "tags": ["a", "b"], "unique": [1, 2], "mode": "on",
      "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
      "extra": {"known": 1, "free": {"x": [1]}}, "limits": {"cpu": 1}}, []),
    ({}, ["spec: Too few: 0: must have at least 1 properties"]),
    ({"step": 0}, ["spec.step: Invalid value: 0: must be > 0"]),
    ({"step": 0.7}, ["spec.step: Invalid value: 0.7: must be a multiple of 0.5"]),
    ({"tags": ["a", "a"]}, ['spec.tags[1]: Duplicate value: "a"']),
    ({"unique": [1, 1.0]}, ["spec.unique[1]: Invalid value: 1.0: must be of type integer",
                            "spec.unique[1]: Duplicate value: 1.0"]),
    ({"unique": [True, 1]}, ["spec.unique[0]: Invalid value: true: must be of type integer"]),
    ({"mode": "off"}, ['spec.mode: Invalid value: "off": must not match the schema in \'not\'']),
    ({"template": {"kind": 3, "metadata": {"bogus": 1}, "spec": {}, "other": 1}},
     ["spec.template.kind: Invalid value: 3: must be a non-empty string",
      "spec.template.metadata.bogus: unknown field", "spec.template.other: unknown field"]),
    ({"extra": {"known": "x"}}, ['spec.extra.known: Invalid value: "x": must be of type integer']),
    ({"limits": {"cpu": "1", "mem": 2}},
     ["spec.limits: Too many: 2: must have at most 1 properties",
      'spec.limits[cpu]: Invalid value: "1": must be of type integer']),
])
def test_synthetic_schema_rules(spec: Obj, expected: list[str]) -> None:
    o = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    assert sorted(check_against(o, SYNTHETIC).errors) == sorted(expected)


def test_missing_schema_is_noted() -> None:
    bare = CrdVersion(group="example.com", version="v1", kind="Widget", scope="Namespaced",
                      served=True, storage=True, deprecated=False, schema=None, source="bare.yaml")
    result = check_against({"apiVersion": "example.com/v1", "kind": "Widget",
                            "metadata": {"name": "w"}, "anything": 1}, bare)
    assert result.ok
    assert result.notes == ["bare.yaml example.com/v1: no schema, only metadata checked"]
    assert check_against({"apiVersion": "example.com/v1", "kind": "Widget"}, bare).errors == [
        "metadata: Required value"]


def test_uncheckable_pattern_is_noted_not_failed() -> None:
    o = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
         "spec": {"codes": ["x", "y"]}}
    result = check_against(o, SYNTHETIC)
    assert result.ok
    assert result.notes == [r"pattern not checkable by re or re2: '(a)\\1\\z'"]
