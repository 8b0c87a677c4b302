"""Cilium's policy repository answers the access questions, and agrees with SMI.

For every golden case with access meaning (and the examples), the Cilium
output is loaded into the agent's policy repository by ``cilium-check flows``
(tests/meshcheck/cilium), and a grid of probes is asked: sources named by the
TrafficTargets and strangers, destination pods and a bystander, TCP and UDP,
the ports the routes name, their neighbours, port 1, 65535 and an arbitrary
high port (the translator's ``port: 1, endPort: 65535`` L7 range), and HTTP
requests built from every HTTPRouteGroup match (matching and not matching
method, path and headers) or none (plain TCP/UDP).

Each probe is compared three ways:

* never broader: an explicit Cilium allow (policy-map entry, then the proxy's
  HTTP rules on a redirect, at an endpoint some policy selects) must be an SMI
  allow (``tests.access.smi_allows``, the oracle);
* never silently narrower: an SMI allow that Cilium denies must come only
  from TrafficTargets whose findings say they failed closed;
* the Python evaluator ``tests.access.cilium`` (the second opinion) gives
  Cilium's answer on every probe, and its ``default_denies`` matches whether
  Cilium enforces ingress at the destination.

And every TrafficTarget destination is default-deny in Cilium (ingress
enforced), so what is not granted is denied rather than left to allow-all.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import re2

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.model import HTTPMatch, Identity, Inputs, SmiKind
from smi2mesh.translate import translate
from tests import golden
from tests.access import HttpRequest, Request, smi_allows
from tests.access import cilium as py_cilium
from tests.meshcheck.cilium.client import Answer, flow, flows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Findings that make a TrafficTarget grant less than SMI does, on purpose.
FAIL_CLOSED = {FindingReason.ACCESS_FAIL_CLOSED.value, FindingReason.NOT_EXPRESSIBLE.value,
               FindingReason.UNRESOLVED_REFERENCE.value}
# Ports probed everywhere: the ends of the 1-65535 range, common ones, an arbitrary high one.
BASE_PORTS = (1, 80, 8080, 31337, 65535)
PATH_POOL = ("/", "/x", "/metrics", "/metrics/x", "/health", "/healthz", "/ratings/7",
             "/internal/x", "/v1/orders/7", "/v1/carts", "/items/abc/details/1", "/api/x",
             "/orders", "/zz-nomatch")
VALUE_POOL = ("acme", "svc-reviews", "Bearer x", "v1", "x", "1", "a.example.com", "")
METHODS = ("GET", "POST", "DELETE", "PATCH")
_META = set(".[]()*+?{}|^$\\")


@dataclasses.dataclass(frozen=True)
class World:
    """One translation: its SMI inputs, Cilium objects and findings."""

    id: str
    inputs: Inputs
    objects: list[dict[str, Any]]
    findings: list[dict[str, str]]


def _worlds() -> list[World]:
    out = []
    for case in golden.cases("cilium"):
        inputs = case.inputs()
        if inputs.targets:
            out.append(World(case.id, inputs, case.expected_objects(), case.expected_findings()))
    inputs = parse_documents(yamlio.read_sources([str(EXAMPLES)]))
    result = translate(inputs, "cilium")
    out.append(World("examples", inputs, [dict(o) for o in result.objects],
                     [f.to_dict() for f in result.findings]))
    return out


def _literal_prefix(regex: str) -> str:
    text = regex.removeprefix("^")
    for i, ch in enumerate(text):
        if ch in _META:
            return text[:i]
    return text


def _paths(m: HTTPMatch) -> list[str]:
    """Up to two paths the match allows (SMI: prefix-anchored) and one it does not."""
    if m.path_regex is None:
        return ["/", "/zz-nomatch"]
    lit = _literal_prefix(m.path_regex)
    candidates = dict.fromkeys([*(lit + s for s in ("", "x", "/7", "7") if lit.startswith("/")),
                                *PATH_POOL])
    hits = [p for p in candidates if re2.match(f"(?:{m.path_regex})", p)]
    misses = [p for p in candidates if p not in hits]
    return hits[:2] + misses[:1]


def _header_value(regex: str) -> str | None:
    stripped = regex.removeprefix("^").removesuffix("$")
    candidates = ([stripped] if not set(stripped) & _META else []) + list(VALUE_POOL)
    return next((v for v in candidates if re2.fullmatch(f"(?:{regex})", v)), None)


def _http_requests(inputs: Inputs) -> list[HttpRequest | None]:
    """Requests built from every match: right and wrong method, path and headers."""
    # Keyed by value: HttpRequest holds a dict, so it is not hashable itself.
    out: dict[tuple[str, str, tuple[tuple[str, str], ...]] | None, HttpRequest | None] = {
        None: None, ("GET", "/", ()): HttpRequest("GET", "/")}
    for group in inputs.http_route_groups:
        for m in group.matches:
            listed = [x for x in m.methods if x != "*"]
            methods = [listed[0] if listed else "GET"]
            methods += [x for x in METHODS if x not in m.methods][:1]
            good = {h.name: _header_value(h.value) for h in m.headers}
            headers: list[dict[str, str]] = [{}]
            if all(v is not None for v in good.values()) and good:
                headers.append({k: v for k, v in good.items() if v is not None})
            for method, path, hdrs in itertools.product(methods, _paths(m), headers):
                out[(method, path, tuple(sorted(hdrs.items())))] = HttpRequest(method, path, hdrs)
    return list(out.values())


def _ports(inputs: Inputs) -> list[int]:
    named = {tt.port for tt in inputs.targets if tt.port is not None}
    named |= {p for r in inputs.port_routes for p in r.ports}
    near = {q for p in named for q in (p - 1, p, p + 1) if 1 <= q <= 65535}
    return sorted(near | set(BASE_PORTS))


def _labels(inputs: Inputs, who: Identity) -> list[dict[str, str]]:
    pods = [dict(w.pod_labels) for w in inputs.workloads
            if (w.meta.namespace, w.service_account) == (who.namespace, who.name)]
    return pods or [{}]


def probes(inputs: Inputs) -> list[tuple[Request, dict[str, str]]]:
    """The grid of requests (with the source pod's labels) asked of one world."""
    sources = {s for tt in inputs.targets for s in tt.sources}
    namespaces = sorted({tt.destination.namespace for tt in inputs.targets})
    strangers = {Identity("stranger", ns) for ns in namespaces}
    strangers |= {Identity(s.name, "elsewhere") for s in sorted(sources, key=str)[:1]}
    destinations = sorted({tt.destination for tt in inputs.targets}, key=str)
    destinations += [Identity("bystander", ns) for ns in namespaces]
    ports, https = _ports(inputs), _http_requests(inputs)
    out = []
    for src in sorted(sources | strangers, key=str):
        src_labels = _labels(inputs, src)[0]
        for dst in destinations:
            for dst_labels in _labels(inputs, dst):
                for proto in ("TCP", "UDP"):
                    for port in ports:
                        for http in https if proto == "TCP" else [None]:
                            req = Request(src, dst.namespace, dst.name, dst_labels, proto, port, http)
                            out.append((req, src_labels))
    return out


@dataclasses.dataclass
class Outcome:
    """Everything one world's probes showed."""

    world: World
    probes: list[Request]
    answers: list[Answer]


@pytest.fixture(scope="module")
def outcomes(meshcheck_tool: Callable[[str], Path]) -> dict[str, Outcome]:
    """Every world's probes answered by Cilium, in one call of the checker."""
    meshcheck_tool("cilium-check")
    worlds = _worlds()
    grids = [probes(w.inputs) for w in worlds]
    answers = flows((w.objects, [flow(r, labels) for r, labels in grid])
                    for w, grid in zip(worlds, grids, strict=True))
    return {w.id: Outcome(w, [r for r, _ in grid], a)
            for w, grid, a in zip(worlds, grids, answers, strict=True)}


WORLD_IDS = [w.id for w in _worlds()]


def _granting_targets(inputs: Inputs, req: Request) -> list[str]:
    """The TrafficTargets that allow *req* on their own, as finding object names."""
    return [f"{tt.meta.namespace}/{SmiKind.TRAFFIC_TARGET.value}/{tt.meta.name}"
            for tt in inputs.targets
            if smi_allows(dataclasses.replace(inputs, targets=(tt,)), req)]


def disagreements(outcome: Outcome) -> list[str]:
    """Probes where Cilium, SMI and the Python evaluator do not agree as they must."""
    w = outcome.world
    failed_closed = {f["object"] for f in w.findings if f["reason"] in FAIL_CLOSED}
    out = []
    for req, ans in zip(outcome.probes, outcome.answers, strict=True):
        smi = smi_allows(w.inputs, req)
        py = py_cilium.allows(w.objects, req)
        where = f"{req} -> cilium {ans}"
        if ans.explicit and not smi:
            out.append(f"broader than SMI: {where}")
        if smi and not ans.explicit:
            silent = [t for t in _granting_targets(w.inputs, req) if t not in failed_closed]
            if silent:
                out.append(f"narrower than SMI without a fail-closed finding on {silent}: {where}")
        if py != ans.explicit:
            out.append(f"tests/access/cilium.py says {py}: {where}")
        if py_cilium.default_denies(w.objects, req) != ans.ingress.enforced:
            out.append(f"tests/access/cilium.py default_denies disagrees: {where}")
    return out


@pytest.mark.parametrize("world", WORLD_IDS)
def test_cilium_agrees_with_smi_and_the_evaluator(world: str, outcomes: dict[str, Outcome]) -> None:
    assert disagreements(outcomes[world]) == []


@pytest.mark.parametrize("world", WORLD_IDS)
def test_every_destination_is_default_deny_in_cilium(world: str,
                                                     outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[world]
    # A destination no endpoint selector can name (Cilium refuses a label
    # value over 63 bytes) keeps Cilium's default; its finding says so.
    unselectable = {f["object"] for f in outcome.world.findings
                    if f["reason"] == FindingReason.NOT_EXPRESSIBLE.value
                    and f["field"].startswith("spec.destination")}
    targets = outcome.world.inputs.targets
    dests = {(tt.destination.namespace, tt.destination.name) for tt in targets
             if f"{tt.meta.namespace}/{SmiKind.TRAFFIC_TARGET.value}/{tt.meta.name}" not in unselectable}
    open_ = {(r.dest_namespace, r.dest_service_account)
             for r, a in zip(outcome.probes, outcome.answers, strict=True)
             if (r.dest_namespace, r.dest_service_account) in dests and not a.ingress.enforced}
    assert open_ == set()


def _tally(outcomes: Iterable[Outcome]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for o in outcomes:
        for req, ans in zip(o.probes, o.answers, strict=True):
            counts["probes"] += 1
            counts[f"{req.protocol} {'allow' if ans.explicit else 'deny'}"] += 1
            if ans.ingress.verdict == "redirect":
                counts[f"L7 {ans.ingress.l7}"] += 1
                if req.port not in (80, 8080) and ans.ingress.l7 == "allow":
                    counts["L7 allow off the named ports"] += 1
            if ans.ingress.enforced and not ans.explicit and ans.ingress.verdict == "deny":
                counts["L4 deny"] += 1
    return counts


def test_the_probes_reach_every_kind_of_answer(outcomes: dict[str, Outcome]) -> None:
    """Not vacuous: allows and denies over TCP and UDP, L7 redirects both ways, the L7 range."""
    counts = _tally(outcomes.values())
    for kind in ("TCP allow", "TCP deny", "UDP allow", "UDP deny", "L7 allow", "L7 deny",
                 "L4 deny", "L7 allow off the named ports"):
        assert counts[kind] > 0, (kind, counts)


def summary(outcomes: Mapping[str, Outcome]) -> dict[str, Counter[str]]:
    """Probe counts per world (for reports: ``python -c`` on this module)."""
    return {k: _tally([o]) for k, o in outcomes.items()}

