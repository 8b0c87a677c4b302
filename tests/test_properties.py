"""Property tests (hypothesis) on the translation core.

* Weight normalisation keeps ratios and sums exactly.
* No target ever explicitly allows a request its SMI input does not allow:
  random TrafficTargets, routes and workloads are translated for every mesh,
  and each mesh's evaluator (``tests/access/<mesh>.py``) is compared with the
  independent SMI oracle on random requests.
"""

from __future__ import annotations

import importlib
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi2mesh import weights
from smi2mesh.model import (
    HeaderMatch,
    HTTPMatch,
    HTTPRouteGroup,
    Identity,
    Inputs,
    Meta,
    PortRoute,
    Protocol,
    Rule,
    ServiceAccount,
    SmiKind,
    TrafficTarget,
    Workload,
)
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from tests.access import HttpRequest, Request, smi_allows

# ---- weights -------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=20)
       .filter(lambda ws: sum(ws) > 0), st.sampled_from([100, 10_000, 1_000_000]))
def test_largest_remainder_sums_exactly_and_keeps_ratios(ws: list[int], total: int) -> None:
    out = weights.largest_remainder(ws, total)
    assert sum(out) == total
    s = sum(ws)
    for w, o in zip(ws, out, strict=True):
        # Each share is within one unit of its exact quota...
        assert abs(Fraction(o) - Fraction(w * total, s)) < 1
        if w == 0:
            assert o == 0
    # ...and larger weights never get smaller shares.
    for i in range(len(ws)):
        for j in range(len(ws)):
            if ws[i] > ws[j]:
                assert out[i] >= out[j]


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=16)
       .filter(lambda ws: sum(ws) > 0))
def test_relative_weights_keep_exact_ratios(ws_milli: list[int]) -> None:
    out = weights.relative(ws_milli)
    assert len(out) == len(ws_milli)
    if max(out) <= 1_000_000 and sum(out) != 100:
        base = next(i for i, w in enumerate(ws_milli) if w)
        for w, o in zip(ws_milli, out, strict=True):
            assert Fraction(o, out[base]) == Fraction(w, ws_milli[base])
    else:
        assert sum(out) == 100


def test_three_equal_backends_get_34_33_33() -> None:
    assert weights.largest_remainder([1000, 1000, 1000], 100) == [34, 33, 33]
    assert weights.largest_remainder([1, 1, 1], 10_000) == [3334, 3333, 3333]


# ---- access safety ---------------------------------------------------------------

NS = "ns"
SAS = ["a", "b", "c"]
IDENTITIES = [Identity(sa, ns) for sa in SAS for ns in (NS, "other")]
PATHS = ["/api", "/api/.*", "/api$", "/v[0-9]+/x", ".*", "/metrics", "/a|/b", "^/health$", "/", "/x*y"]
REQUEST_PATHS = ["/", "/api", "/api/", "/api/x", "/apix", "/v1/x", "/v12/xy", "/metrics",
                 "/metrics/1", "/a", "/b/c", "/health", "/healthz", "/xy", "/xxy"]
HEADER_REGEXES = ["a", "a.*", ".*a", ".*", "a|b", "[0-9]+", "^b$", "x*"]
HEADER_VALUES = ["a", "ab", "ba", "b", "1", "12", "", "x*"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
PORTS = [53, 80, 8080, 9090]


def _meta(name: str) -> Meta:
    return Meta(name=name, namespace=NS)


http_matches = st.builds(
    HTTPMatch,
    name=st.just(""),
    methods=st.lists(st.sampled_from(METHODS), max_size=2, unique=True).map(tuple),
    path_regex=st.none() | st.sampled_from(PATHS),
    headers=st.lists(st.builds(HeaderMatch, st.sampled_from(["x-a", "x-b"]),
                               st.sampled_from(HEADER_REGEXES)),
                     max_size=2, unique_by=lambda h: h.name).map(tuple),
)


@st.composite
def route_groups(draw: st.DrawFn, name: str) -> HTTPRouteGroup:
    ms = draw(st.lists(http_matches, max_size=3))
    named = tuple(HTTPMatch(f"m{i}", m.methods, m.path_regex, m.headers) for i, m in enumerate(ms))
    return HTTPRouteGroup(_meta(name), "specs.smi-spec.io/v1alpha4", "spec.", (), matches=named)


def port_routes(name: str, proto: Protocol) -> st.SearchStrategy[PortRoute]:
    return st.builds(
        PortRoute, st.just(_meta(name)), st.just("specs.smi-spec.io/v1alpha4"), st.just("spec."),
        st.just(()), protocol=st.just(proto),
        ports=st.lists(st.sampled_from(PORTS), max_size=2, unique=True).map(lambda p: tuple(sorted(p))),
    )


rules = st.one_of(
    st.builds(Rule, st.just(SmiKind.HTTP_ROUTE_GROUP), st.sampled_from(["g1", "g2", "missing"]),
              st.none() | st.lists(st.sampled_from(["m0", "m1", "m2", "nope"]), max_size=2,
                                   unique=True).map(tuple)),
    st.builds(Rule, st.just(SmiKind.TCP_ROUTE), st.sampled_from(["t1", "t2", "missing"])),
    st.builds(Rule, st.just(SmiKind.UDP_ROUTE), st.sampled_from(["u1", "missing"])),
)


@st.composite
def targets(draw: st.DrawFn, index: int) -> TrafficTarget:
    return TrafficTarget(
        _meta(f"tt{index}"), "access.smi-spec.io/v1alpha3", "spec.", (),
        destination=Identity(draw(st.sampled_from(SAS)), NS),
        port=draw(st.none() | st.sampled_from(PORTS)),
        sources=tuple(draw(st.lists(st.sampled_from(IDENTITIES), max_size=3, unique=True))),
        rules=tuple(draw(st.lists(rules, max_size=3))),
    )


SELECTORS = [{"app": "a"}, {"app": "b"}, {"app": "c"}, {"app": "a", "track": "x"}, {"tier": "web"}]


@st.composite
def worlds(draw: st.DrawFn) -> Inputs:
    workloads = []
    for i, sa in enumerate(draw(st.lists(st.sampled_from(SAS), max_size=4))):
        selector = draw(st.sampled_from(SELECTORS))
        extra = draw(st.sampled_from([{}, {"tier": "web"}, {"track": "x"}]))
        workloads.append(Workload("Deployment", _meta(f"w{i}"), sa, {**selector, **extra}, selector))
    return Inputs(
        targets=tuple(draw(targets(i)) for i in range(draw(st.integers(1, 3)))),
        http_route_groups=(draw(route_groups("g1")), draw(route_groups("g2"))),
        port_routes=(draw(port_routes("t1", Protocol.TCP)), draw(port_routes("t2", Protocol.TCP)),
                     draw(port_routes("u1", Protocol.UDP))),
        workloads=tuple(workloads),
        # Every identity a request may come from exists in the cluster, as in a real
        # one; Consul CE (the default) needs to know them to tell same names apart.
        service_accounts=tuple(ServiceAccount(Meta(name=i.name, namespace=i.namespace))
                               for i in IDENTITIES),
    )


@st.composite
def requests(draw: st.DrawFn, inputs: Inputs) -> Request:
    pods = [(w.service_account, dict(w.pod_labels)) for w in inputs.workloads]
    sa, labels = draw(st.sampled_from([*pods, ("c", {"app": "zzz"})]))
    proto = draw(st.sampled_from(["TCP", "UDP"]))
    http = None
    if proto == "TCP" and draw(st.booleans()):
        headers = draw(st.dictionaries(st.sampled_from(["x-a", "x-b"]), st.sampled_from(HEADER_VALUES)))
        http = HttpRequest(draw(st.sampled_from(METHODS)), draw(st.sampled_from(REQUEST_PATHS)), headers)
    return Request(draw(st.sampled_from(IDENTITIES)), NS, sa, labels, proto,
                   draw(st.sampled_from(PORTS)), http)


def evaluator(mesh: str) -> Any:
    return importlib.import_module(f"tests.access.{mesh}")


@pytest.mark.parametrize("mesh", list(TRANSLATORS))
def test_every_mesh_has_an_access_evaluator(mesh: str) -> None:
    assert callable(evaluator(mesh).allows)


@pytest.mark.parametrize("mesh", list(TRANSLATORS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_access_translation_allows_more_than_its_input(mesh: str, data: st.DataObject) -> None:
    inputs = data.draw(worlds())
    objects = list(translate(inputs, mesh).objects)
    allows = evaluator(mesh).allows
    for _ in range(8):
        req = data.draw(requests(inputs))
        if allows(objects, req):
            assert smi_allows(inputs, req), f"{mesh} allows {req} but SMI does not"
