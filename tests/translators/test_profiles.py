"""Mesh and Gateway API profiles: defaults, parsing, what each release writes, discovery."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS, profiles
from smi2mesh.translators.base import Options, TranslationResult
from smi2mesh.translators.profiles import Channel, ClusterFacts, Feature, GatewayApi, ProfileError
from tests.golden import SHARED_CASES, validate_emitted

GW = profiles.GATEWAY_GROUP

SERVICE_TCP = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  ports: [{name: tcp-pg, port: 5432}]
"""
SERVICE_TWO = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  ports: [{name: http, port: 8080}, {name: tcp-pg, port: 5432}]
"""
SPLIT = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: db, namespace: data}
spec:
  service: db
  backends: [{service: db-a, weight: 3}, {service: db-b, weight: 1}]
"""


def _run(mesh: str, text: str, profile: profiles.Profile | None = None) -> TranslationResult:
    docs = [d for d in yaml.safe_load_all(text) if d]
    inputs = parse_documents((f"t:{i}", d) for i, d in enumerate(docs))
    return translate(inputs, mesh, Options(profile=profile))


def _kinds(result: TranslationResult) -> list[tuple[str, str]]:
    return [(o["apiVersion"], o["kind"]) for o in result.objects]


# ---- defaults and parsing ------------------------------------------------------------------


def test_defaults_are_the_newest_pinned_releases() -> None:
    got = {t: profiles.default(t).describe() for t in ("istio", "linkerd", "kuma", "cilium", "consul",
                                                        "gamma")}
    assert got == {"istio": "istio 1.30", "linkerd": "linkerd 2.20, Gateway API 1.5.1",
                   "kuma": "kuma 2.14", "cilium": "cilium 1.19, Gateway API 1.4.1",
                   "consul": "consul 2.0", "gamma": "gamma, Gateway API 1.6.1"}


@pytest.mark.parametrize(("target", "text", "label"), [
    ("linkerd", "2.20", "2.20"), ("linkerd", "version-2.18", "2.18"), ("linkerd", "stable-2.17.3", "2.17"),
    ("istio", "1.21.6", "1.21"), ("istio", "v1.22", "1.22"), ("cilium", "1.18.2", "1.18")])
def test_mesh_versions_are_read_as_their_minor_release(target: str, text: str, label: str) -> None:
    assert profiles.resolve(target, text).release.label == label


@pytest.mark.parametrize(("target", "mesh_version", "gateway", "message"), [
    ("linkerd", "2.14", None, "linkerd version '2.14' is not supported; supported: 2.20, 2.19"),
    ("kuma", "3.0+legacy", None, "kuma 3.0 no longer serves or applies TrafficRoute/TrafficPermission, so "
     "no legacy output is written for it; supported: 2.14, 2.13"),
    ("kuma", "1.8", None, "kuma version '1.8' is not supported; supported: 2.14"),
    ("istio", "1.19", None, "supported: 1.30, 1.29"),
    ("istio", "latest", None, "istio version 'latest' is not supported"),
    ("linkerd", None, "1.6", "not supported by linkerd 2.20; supported: 1.2.1-1.5.1"),
    ("linkerd", "2.18", "1.1.0", "supported: 1.1.1-1.2.1"),
    ("gamma", None, "1.0.0", "supported: 1.1.0-1.6.1"),
    ("gamma", None, "1.6.7", "supported: 1.1.0-1.6.1"),
    ("gamma", "1.6", None, "gamma has no mesh version; use --gateway-api-version"),
    ("smi", "1.0", None, "use --smi-profile"),
    ("istio", None, "1.5.1", "istio writes no Gateway API routes"),
])
def test_unsupported_versions_name_the_supported_ones(target: str, mesh_version: str | None,
                                                      gateway: str | None, message: str) -> None:
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        profiles.resolve(target, mesh_version, gateway)


def test_gateway_api_minor_means_its_newest_patch_in_range() -> None:
    assert profiles.resolve("gamma", None, "1.5").gateway == GatewayApi((1, 5, 1))
    assert profiles.resolve("linkerd", "2.18", "1.2").gateway == GatewayApi((1, 2, 1))
    assert profiles.resolve("linkerd", "2.20", "v1.2.1").gateway == GatewayApi((1, 2, 1))
    # Linkerd 2.20 supports 1.2.1 but not 1.2.0.
    with pytest.raises(ProfileError):
        profiles.resolve("linkerd", "2.20", "1.2.0")


@pytest.mark.parametrize(("version", "http", "tcp", "experimental_tcp", "parent_port"), [
    ((0, 8, 1), "v1beta1", "v1alpha2", True, False),
    ((1, 0, 0), "v1", "v1alpha2", True, False),
    ((1, 1, 0), "v1", "v1alpha2", True, True),
    ((1, 5, 1), "v1", "v1alpha2", True, True),
    ((1, 6, 0), "v1", "v1", False, True),
])
def test_gateway_api_release_facts(version: profiles.GatewayVersion, http: str, tcp: str,
                                   experimental_tcp: bool, parent_port: bool) -> None:
    gw = GatewayApi(version)
    assert (gw.api("HTTPRoute"), gw.api("TCPRoute")) == (f"{GW}/{http}", f"{GW}/{tcp}")
    assert gw.experimental_only("TCPRoute") is experimental_tcp
    assert gw.parent_port is parent_port
    # The experimental channel has parentRefs[].port in every release.
    assert GatewayApi(version, Channel.EXPERIMENTAL).parent_port


@pytest.mark.parametrize("target", [t for t in TRANSLATORS if t != "smi"])
def test_emits_covers_every_version_any_release_writes(target: str) -> None:
    """The operator's watches and the chart's RBAC come from ``emits``: every profile must fit."""
    declared = {(k.api_version, k.kind) for k in TRANSLATORS[target].emits}
    for release in profiles.releases(target):
        assert {(api, kind) for (_, kind), api in release.apis.items()} <= declared, release.label
        for version in release.gateway_releases():
            gw = GatewayApi(version)
            kinds = ["HTTPRoute", *(["TCPRoute"] if Feature.GAMMA_TCP_ROUTE in release.features else [])]
            assert {(gw.api(k), k) for k in kinds} <= declared, (release.label, version)


def test_a_profile_of_another_target_is_refused() -> None:
    with pytest.raises(ProfileError, match="is not one of istio"):
        _run("istio", SERVICE_TCP + "---" + SPLIT, profiles.resolve("linkerd"))


# ---- what each profile writes --------------------------------------------------------------


def test_linkerd_default_writes_tcproute_v1alpha2_with_a_prerequisite() -> None:
    result = _run("linkerd", SERVICE_TCP + "---" + SPLIT)
    assert _kinds(result) == [(f"{GW}/v1alpha2", "TCPRoute")]
    (finding,) = result.findings
    assert finding.reason is FindingReason.PREREQUISITE
    assert "experimental-channel CRDs of Gateway API 1.5.1" in finding.message
    assert validate_emitted(result.objects[0], profiles.default("linkerd")) == []


def test_known_experimental_channel_needs_no_prerequisite() -> None:
    profile = profiles.resolve("linkerd", None, None, Channel.EXPERIMENTAL)
    result = _run("linkerd", SERVICE_TCP + "---" + SPLIT, profile)
    assert _kinds(result) == [(f"{GW}/v1alpha2", "TCPRoute")]
    assert result.findings == ()


def test_gamma_1_6_writes_tcproute_v1_and_1_5_writes_v1alpha2() -> None:
    text = SERVICE_TWO + "---" + SPLIT
    assert _kinds(_run("gamma", text)) == [(f"{GW}/v1", "HTTPRoute"), (f"{GW}/v1", "TCPRoute")]
    assert _run("gamma", text).findings == ()
    old = _run("gamma", text, profiles.resolve("gamma", None, "1.5.1"))
    assert _kinds(old) == [(f"{GW}/v1", "HTTPRoute"), (f"{GW}/v1alpha2", "TCPRoute")]
    # The specs are the same; only the TCPRoute version (and its prerequisite) differ.
    assert [o["spec"] for o in old.objects] == [o["spec"] for o in _run("gamma", text).objects]
    assert [f.reason for f in old.findings] == [FindingReason.PREREQUISITE]


@pytest.mark.parametrize(("target", "mesh_version"), [("cilium", None), ("linkerd", "2.16")])
def test_a_tcp_split_where_the_mesh_routes_no_gamma_tcproute_is_a_finding(
        target: str, mesh_version: str | None) -> None:
    result = _run(target, SERVICE_TWO + "---" + SPLIT, profiles.resolve(target, mesh_version))
    assert _kinds(result) == [(f"{GW}/v1", "HTTPRoute")]
    (finding,) = result.findings
    assert finding.reason is FindingReason.NOT_EXPRESSIBLE
    assert "port 5432" in finding.message
    assert "no GAMMA TCPRoute" in finding.message


def test_parent_port_is_not_used_where_the_standard_channel_lacks_it() -> None:
    old = profiles.resolve("linkerd", "2.17", "1.0.0")
    one = _run("linkerd", SERVICE_TCP + "---" + SPLIT, old)
    assert one.objects[0]["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "db"}]
    # With two ports a route per port cannot be told apart: nothing rather than a wrong route.
    two = _run("linkerd", SERVICE_TWO + "---" + SPLIT, old)
    assert two.objects == ()
    assert [f.reason for f in two.findings] == [FindingReason.NOT_EXPRESSIBLE]
    assert "no parentRefs[].port outside the experimental channel" in two.findings[0].message
    # Known experimental CRDs have it.
    exp = profiles.resolve("linkerd", "2.17", "1.0.0", Channel.EXPERIMENTAL)
    assert [o["spec"]["parentRefs"][0]["port"] for o in _run("linkerd", SERVICE_TWO + "---" + SPLIT,
                                                             exp).objects] == [8080, 5432]
    # HTTPRoute v1beta1 below Gateway API 1.0.
    older = profiles.resolve("linkerd", "2.17", "0.8.1")
    assert _kinds(_run("linkerd", SERVICE_TCP.replace("tcp-pg", "http") + "---" + SPLIT, older)) == [
        (f"{GW}/v1beta1", "HTTPRoute")]


def test_istio_before_1_22_writes_v1beta1_with_the_same_specs() -> None:
    text = "---\n".join(SHARED_CASES.joinpath(f"{c}.yaml").read_text()
                        for c in ("split-v1alpha3-ab-headers", "access-v1alpha3-l7-scoped"))
    new = _run("istio", text)
    old = _run("istio", text, profiles.resolve("istio", "1.21"))
    assert set(_kinds(new)) == {("networking.istio.io/v1", "VirtualService"),
                                         ("security.istio.io/v1", "AuthorizationPolicy")}
    assert set(_kinds(old)) == {("networking.istio.io/v1beta1", "VirtualService"),
                                         ("security.istio.io/v1beta1", "AuthorizationPolicy")}
    def strip(objs: tuple[Any, ...]) -> list[Any]:
        return [{k: v for k, v in o.items() if k != "apiVersion"} for o in objs]

    assert strip(old.objects) == strip(new.objects)
    assert old.findings == new.findings
    assert profiles.resolve("istio", "1.22").api("networking.istio.io", "VirtualService") == (
        "networking.istio.io/v1")


# ---- discovery ----------------------------------------------------------------------------


def _facts(served: set[str], bundle: str | None = None,
           channel: Channel | None = None) -> ClusterFacts:
    return ClusterFacts(lambda api, kind: f"{api} {kind}" in served, bundle, channel)


ISTIO_V1 = {"networking.istio.io/v1 VirtualService", "security.istio.io/v1 AuthorizationPolicy"}
ISTIO_V1BETA1 = {"networking.istio.io/v1beta1 VirtualService",
                 "security.istio.io/v1beta1 AuthorizationPolicy"}


def test_discovery_picks_the_newest_release_whose_kinds_are_served() -> None:
    assert profiles.discover("istio", _facts(ISTIO_V1 | ISTIO_V1BETA1)).release.label == "1.30"
    assert profiles.discover("istio", _facts(ISTIO_V1BETA1)).release.label == "1.21"
    # Nothing served (CRDs not installed yet): the newest, which MeshCRDsMissing then reports.
    assert profiles.discover("istio", _facts(set())).release.label == "1.30"
    # A flag wins over discovery.
    assert profiles.discover("istio", _facts(ISTIO_V1), "1.20").release.label == "1.20"


@pytest.mark.parametrize(("target", "bundle", "served", "expected", "note"), [
    ("linkerd", "v1.5.1", set(), (1, 5, 1), False),
    ("linkerd", "v1.3.0", set(), (1, 3, 0), False),
    # Newer than Linkerd 2.20 supports: written for the newest it does, with a note.
    ("linkerd", "v1.6.1", set(), (1, 5, 1), True),
    ("gamma", "v1.5.1", set(), (1, 5, 1), False),
    ("gamma", "v1.6.1", set(), (1, 6, 1), False),
    # No readable CRD: the served TCPRoute version decides.
    ("gamma", None, {f"{GW}/v1alpha2 TCPRoute"}, (1, 5, 1), False),
    ("gamma", None, {f"{GW}/v1 TCPRoute", f"{GW}/v1alpha2 TCPRoute"}, (1, 6, 1), False),
    ("gamma", "garbage", set(), (1, 6, 1), True),
    ("cilium", "v1.6.1", set(), (1, 4, 1), True),
])
def test_discovery_reads_the_gateway_api_bundle(target: str, bundle: str | None, served: set[str],
                                                expected: profiles.GatewayVersion, note: bool) -> None:
    facts = _facts(served, bundle, Channel.EXPERIMENTAL)
    profile = profiles.discover(target, facts)
    assert profile.gateway == GatewayApi(expected, Channel.EXPERIMENTAL)
    assert bool(facts.notes) is note


def test_discovery_with_a_gateway_api_flag() -> None:
    profile = profiles.discover("gamma", _facts(set(), "v1.6.1", Channel.STANDARD), None, "1.5")
    assert profile.gateway == GatewayApi((1, 5, 1), Channel.STANDARD)
    # A standard-channel 1.5.1 cluster serves no TCPRoute: the finding says what to install.
    result = _run("gamma", SERVICE_TCP + "---" + SPLIT, profile)
    assert "Gateway API 1.5.1" in result.findings[0].message
