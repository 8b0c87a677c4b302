"""The smi target: versions, round trips, and never a broader result."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi2mesh import cli
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import (
    Backend,
    HTTPMatch,
    HTTPRouteGroup,
    Inputs,
    Meta,
    RouteRef,
    SmiKind,
    TrafficSplit,
)
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options
from smi2mesh.translators.smi_native import PROFILES, SERVED, parse_versions
from tests.access import smi_allows
from tests.test_properties import requests, worlds

LOSSY = {FindingReason.NOT_EXPRESSIBLE, FindingReason.ACCESS_FAIL_CLOSED}
ALL_VERSIONS = [dict(zip(SERVED, combo, strict=True)) for combo in itertools.product(*SERVED.values())]


def convert(inputs: Inputs, versions: dict[str, str]) -> tuple[Inputs, bool]:
    """Re-emit *inputs* at *versions* and parse the result; True if nothing was lost."""
    opts = dict(versions)
    opts.setdefault("udp", "v1alpha4" if versions["specs"] == "v1alpha4" else "")
    result = translate(inputs, "smi", Options(smi_versions=opts))
    out = parse_documents(((f"o:{i}", o) for i, o in enumerate(result.objects)))
    return out, not any(f.reason in LOSSY for f in result.findings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), versions=st.sampled_from(ALL_VERSIONS))
def test_conversion_never_allows_more(data: st.DataObject, versions: dict[str, str]) -> None:
    inputs = data.draw(worlds())
    out, _ = convert(inputs, versions)
    for _ in range(10):
        req = data.draw(requests(inputs))
        if smi_allows(out, req):
            assert smi_allows(inputs, req), f"{versions} widened access for {req}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), original=st.sampled_from(ALL_VERSIONS))
def test_latest_then_original_version_keeps_the_meaning(data: st.DataObject,
                                                        original: dict[str, str]) -> None:
    """latest -> original version: where nothing is reported lost, access means the same."""
    inputs = data.draw(worlds())
    latest, lossless1 = convert(inputs, dict(PROFILES["latest"]))
    back, lossless2 = convert(latest, original)
    for _ in range(10):
        req = data.draw(requests(inputs))
        before, after = smi_allows(inputs, req), smi_allows(back, req)
        assert after <= before
        if lossless1 and lossless2:
            assert after == before, f"{original}: {req}"


splits = st.builds(
    lambda ws, matched: TrafficSplit(
        Meta("s", "n"), "split.smi-spec.io/v1alpha4", "spec.", (), service="root",
        backends=tuple(Backend(f"b{i}", w) for i, w in enumerate(ws)),
        matches=(RouteRef(SmiKind.HTTP_ROUTE_GROUP, "g"),) if matched else ()),
    st.lists(st.integers(0, 5_000_000), min_size=1, max_size=5).filter(lambda ws: sum(ws) > 0),
    st.booleans(),
)


@given(split=splits, versions=st.sampled_from(ALL_VERSIONS))
def test_split_weights_keep_exact_ratios_in_every_version(split: TrafficSplit,
                                                          versions: dict[str, str]) -> None:
    group = HTTPRouteGroup(Meta("g", "n"), "specs.smi-spec.io/v1alpha4", "spec.", (),
                           matches=(HTTPMatch("m", ("GET",)),))
    out, _ = convert(Inputs(splits=(split,), http_route_groups=(group,)), versions)
    if split.matches and versions["split"] in ("v1alpha1", "v1alpha2"):
        assert out.splits == ()  # never written without its matches
        return
    (converted,) = out.splits
    assert converted.matches == split.matches
    a, b = split.backends, converted.backends
    assert [x.service for x in a] == [x.service for x in b]
    for x, y in itertools.combinations(range(len(a)), 2):
        assert a[x].weight_milli * b[y].weight_milli == a[y].weight_milli * b[x].weight_milli


def test_quantities_are_written_as_milli_values() -> None:
    split = TrafficSplit(Meta("s", "n"), "split.smi-spec.io/v1alpha2", "spec.", (), service="r",
                         backends=(Backend("a", 1000), Backend("b", 500), Backend("c", 90_000)))
    obj = translate(Inputs(splits=(split,)), "smi",
                    Options(smi_versions=parse_versions("split=v1alpha1,access=v1alpha3,specs=v1alpha4")))
    assert [b["weight"] for b in obj.objects[0]["spec"]["backends"]] == ["1", "500m", "90"]
    back = translate(Inputs(splits=(split,)), "smi", Options(smi_versions=PROFILES["osm"]))
    assert [b["weight"] for b in back.objects[0]["spec"]["backends"]] == [2, 1, 180]


def test_metadata_is_kept_and_nothing_is_added() -> None:
    text = """
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata:
  name: s
  namespace: n
  labels: {app: web}
  annotations: {note: keep}
spec:
  service: r
  backends: [{service: a, weight: 1}]
"""
    inputs = parse_documents([("t:1", yaml.safe_load(text))])
    (obj,) = translate(inputs, "smi", Options(smi_versions=PROFILES["latest"])).objects
    assert obj["metadata"] == {"name": "s", "namespace": "n", "labels": {"app": "web"},
                               "annotations": {"note": "keep"}}


def _cli(args: list[str]) -> tuple[int, str]:
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


@pytest.mark.parametrize(("args", "message"), [
    (["--mesh", "istio", "--smi-profile", "osm"], "apply only to --mesh smi"),
    (["--mesh", "smi", "--smi-versions", "split=v1alpha9,access=v1alpha3,specs=v1alpha4"],
     "split has versions"),
    (["--mesh", "smi", "--smi-versions", "split=v1alpha4"], "missing access, specs"),
    (["--mesh", "smi", "--smi-profile", "linkerd"], "invalid choice: 'linkerd'"),
])
def test_version_usage_errors(args: list[str], message: str) -> None:
    code, err = _cli(["translate", *args, "-f", "examples/"])
    assert code == 2
    assert message in err


def test_profiles_match_what_each_mesh_serves() -> None:
    expected: dict[str, Any] = {
        "osm": ("v1alpha2", "v1alpha3", "v1alpha4", ""),
        "fsm": ("v1alpha4", "v1alpha3", "v1alpha4", ""),
        "traefik": ("v1alpha3", "v1alpha2", "v1alpha3", ""),
        "latest": ("v1alpha4", "v1alpha3", "v1alpha4", "v1alpha4"),
    }
    assert {k: tuple(v.values()) for k, v in PROFILES.items()} == expected


def _grid(inputs: Inputs) -> list[Any]:
    """Requests that exercise every target of *inputs*: its sources, pods, ports and routes."""
    from tests.access import HttpRequest, Request

    sources = {s for tt in inputs.targets for s in tt.sources}
    ports = {p for r in inputs.port_routes for p in r.ports} | {t.port for t in inputs.targets
                                                                if t.port} | {1}
    paths = {"/", "/x"}
    headers: list[dict[str, str]] = [{}]
    for g in inputs.http_route_groups:
        for m in g.matches:
            if m.path_regex:
                paths.add(m.path_regex.strip("^$").replace(".*", "/a").replace("[0-9]+", "7")
                          .replace("[0-9]{13}", "9780000000000").replace("\\", ""))
            headers.append({h.name: h.value.replace(".*", "Firefox").strip("^$") for h in m.headers})
    https: list[HttpRequest | None] = [None] + [
        HttpRequest(method, path, h) for method in ("GET", "POST", "PUT")
        for path in sorted(paths) for h in headers]
    out = []
    for tt in inputs.targets:
        pods = [dict(w.pod_labels) for w in inputs.workloads_of(tt.destination.namespace,
                                                                tt.destination.name)] or [{}]
        for src, labels, port, http in itertools.product(sorted(sources, key=str), pods[:1],
                                                         sorted(ports), https):
            for proto in ("TCP", "UDP"):
                if proto == "UDP" and http is not None:
                    continue
                out.append(Request(src, tt.destination.namespace, tt.destination.name, labels,
                                   proto, port, http))
    return out


def test_every_case_into_every_version_keeps_or_narrows_access() -> None:
    from smi2mesh import yamlio
    from tests.golden import SHARED_CASES

    allowed_and_compared = 0
    for case in sorted(SHARED_CASES.glob("*.yaml")):
        inputs = parse_documents(yamlio.read_sources([str(case)]))
        grid = _grid(inputs)
        expected = [smi_allows(inputs, r) for r in grid]
        for versions in ALL_VERSIONS:
            opts = dict(versions, udp="v1alpha4" if versions["specs"] == "v1alpha4" else "")
            result = translate(inputs, "smi", Options(smi_versions=opts))
            lossy = {(f.namespace, f.name) for f in result.findings if f.reason in LOSSY}
            out = parse_documents(((f"o:{i}", o) for i, o in enumerate(result.objects)))
            for req, before in zip(grid, expected, strict=True):
                after = smi_allows(out, req)
                assert after <= before, (case.name, versions, req)
                touched = {(tt.meta.namespace, n) for tt in inputs.targets
                           if tt.destination.name == req.dest_service_account
                           for n in (tt.meta.name, *(r.name for r in tt.rules))}
                if not touched & lossy:
                    assert after == before, (case.name, versions, req)
                    allowed_and_compared += before
    # The comparison must not be vacuous: many allowed requests were compared exactly.
    assert allowed_and_compared > 1000


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), versions=st.sampled_from(ALL_VERSIONS))
def test_no_traffic_target_is_written_with_empty_rules_or_sources(data: st.DataObject,
                                                                  versions: dict[str, str]) -> None:
    """Traefik Mesh reads ``rules: []`` as allow-all: an empty list is never written."""
    inputs = data.draw(worlds())
    opts = dict(versions, udp="v1alpha4" if versions["specs"] == "v1alpha4" else "")
    for obj in translate(inputs, "smi", Options(smi_versions=opts)).objects:
        if obj["kind"] == "TrafficTarget":
            body = obj if versions["access"] == "v1alpha1" else obj["spec"]
            assert body["sources"], obj
            assert body["specs" if versions["access"] == "v1alpha1" else "rules"], obj


TARGET = """
apiVersion: access.smi-spec.io/{version}
kind: TrafficTarget
metadata:
  name: {name}
  namespace: q
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{"kind":"TrafficTarget"}}'
    owner: team-q
spec:
  destination: {{kind: ServiceAccount, name: broker, namespace: q{port}}}
  sources: {sources}
  rules: {rules}
"""
ROUTE = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: ports, namespace: q}
spec: {matches: {ports: [5672, 15672]}}
"""


def _target(name: str = "t", *, version: str = "v1alpha3", port: str = "",
            sources: str = "[{kind: ServiceAccount, name: w, namespace: q}]",
            rules: str = "[{kind: TCPRoute, name: ports}]") -> str:
    return TARGET.format(version=version, name=name, port=port, sources=sources, rules=rules)


def _smi(text: str, profile: str) -> tuple[list[Any], list[tuple[str, str, str]]]:
    inputs = parse_documents(yamlio_docs(text))
    result = translate(inputs, "smi", Options(smi_versions=PROFILES[profile]))
    return list(result.objects), [(f.name, f.field, f.reason.value) for f in result.findings]


def yamlio_docs(text: str) -> list[tuple[str, Any]]:
    return [(f"t:{i}", d) for i, d in enumerate(yaml.safe_load_all(text)) if d]


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"rules": "[]"}, "spec.rules"),
    ({"sources": "[]"}, "spec.sources"),
])
def test_a_target_allowing_nothing_is_not_written(profile: str, kwargs: dict[str, str],
                                                  field: str) -> None:
    objects, findings = _smi(ROUTE + "---" + _target(**kwargs), profile)
    assert [o["kind"] for o in objects] == ["TCPRoute"]
    assert ("t", field, "AccessFailClosed") in findings


def test_a_multi_port_route_becomes_one_target_per_port_for_traefik() -> None:
    objects, findings = _smi(ROUTE + "---" + _target(), "traefik")
    targets = [o for o in objects if o["kind"] == "TrafficTarget"]
    assert [(o["metadata"]["name"], o["spec"]["destination"]["port"]) for o in targets] == [
        ("t-15672", 15672), ("t-5672", 5672)]
    for o in targets:
        assert o["apiVersion"] == "access.smi-spec.io/v1alpha2"
        assert o["spec"]["rules"] == [{"kind": "TCPRoute", "name": "ports"}]
        assert o["metadata"]["annotations"] == {"owner": "team-q",
                                                "smi2mesh.io/source": "TrafficTarget/q/t"}
    assert ("t", "spec.rules", "Rewritten") in findings
    assert not any(reason == "AccessFailClosed" for *_, reason in findings)


def test_a_destination_port_inside_the_route_ports_is_kept_as_it_is() -> None:
    objects, findings = _smi(ROUTE + "---" + _target(version="v1alpha2", port=", port: 5672"),
                             "traefik")
    (target,) = [o for o in objects if o["kind"] == "TrafficTarget"]
    assert (target["metadata"]["name"], target["spec"]["destination"]["port"]) == ("t", 5672)
    assert [f for f in findings if f[0] == "t"] == []


def test_a_destination_port_outside_the_route_ports_allows_nothing() -> None:
    objects, findings = _smi(ROUTE + "---" + _target(version="v1alpha2", port=", port: 80"),
                             "traefik")
    assert [o["kind"] for o in objects] == ["TCPRoute"]
    assert ("t", "spec.rules", "AccessFailClosed") in findings


def test_per_port_names_the_api_server_would_refuse_are_not_written() -> None:
    name = "t" * 250
    objects, findings = _smi(ROUTE + "---" + _target(name), "traefik")
    assert [o["kind"] for o in objects] == ["TCPRoute"]
    assert (name, "spec.rules", "AccessFailClosed") in findings


@pytest.mark.parametrize("profile", list(PROFILES))
def test_last_applied_configuration_is_not_copied(profile: str) -> None:
    objects, _ = _smi(ROUTE + "---" + _target(), profile)
    targets = [o for o in objects if o["kind"] == "TrafficTarget"]
    assert targets
    for o in targets:
        assert "kubectl.kubernetes.io/last-applied-configuration" not in o["metadata"]["annotations"]
        assert o["metadata"]["annotations"]["owner"] == "team-q"
