"""Gateway API (GAMMA) building blocks shared by the gamma, linkerd and cilium targets.

A TrafficSplit becomes one HTTPRoute (or TCPRoute) per port of the root
Service, with the Service as parent: matched requests are split by weight,
and a final rule sends everything else to the root Service, because a
GAMMA route that matches nothing answers 404 instead of falling through.

Route API versions and the fields used follow the run's Gateway API release
(``em.profile.gateway``, see :mod:`smi2mesh.translators.profiles`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import HTTPMatch, ServicePort, SmiObject, TrafficSplit
from smi2mesh.regex import MatchType, classify_path, classify_value
from smi2mesh.translators.base import Emitter, Obj, expand_methods, numbered, split_matches
from smi2mesh.translators.profiles import GATEWAY_GROUP, Channel, Feature, render

MAX_RULES = 16
MAX_MATCHES_PER_RULE = 64
MAX_MATCHES = 127
MAX_BACKENDS = 16
# Exact and PathPrefix values may only hold these characters (CRD CEL rule).
_PLAIN_PATH = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$")


def _plain_path(value: str) -> bool:
    return (value.startswith("/") and bool(_PLAIN_PATH.match(value)) and "//" not in value
            and "/./" not in value and "/../" not in value and "#" not in value
            and not value.endswith(("/.", "/..")) and "%2f" not in value.lower())


def path_match(path_regex: str | None) -> Obj | None:
    """Gateway API path match for an SMI (prefix-anchored) path regex; None: any path."""
    if path_regex is None:
        return None
    pat = classify_path(path_regex)
    if pat.type is MatchType.ANY:
        return None
    if pat.type is MatchType.EXACT and _plain_path(pat.value):
        return {"type": "Exact", "value": pat.value}
    if pat.type is MatchType.PREFIX and pat.value == "/":
        return {"type": "PathPrefix", "value": "/"}
    # Gateway API PathPrefix matches whole path segments ("/api" does not match
    # "/apiv2"), while SMI prefixes are plain string prefixes: use a regex.
    return {"type": "RegularExpression", "value": pat.full_regex()}


def header_matches(match: HTTPMatch) -> list[Obj]:
    """Gateway API header matches; literal values become Exact."""
    out: list[Obj] = []
    for h in match.headers:
        pat = classify_value(h.value)
        if pat.type is MatchType.EXACT and pat.value:
            out.append({"type": "Exact", "name": h.name, "value": pat.value})
        elif pat.type is MatchType.EXACT:
            # The schema refuses an empty Exact value; "^$" full-matches only "".
            out.append({"type": "RegularExpression", "name": h.name, "value": "^$"})
        else:
            # Explicit anchors: Linkerd's Rust regex takes the leftmost-first match
            # and then checks it spans the value, so "a|ab" alone would miss "ab".
            # Full-match engines (Envoy) read the anchored form the same way.
            out.append({"type": "RegularExpression", "name": h.name,
                        "value": f"^(?:{pat.full_regex()})$"})
    return out


def route_matches(match: HTTPMatch,
                  headers_of: Callable[[HTTPMatch], list[Obj]] | None = None) -> list[Obj]:
    """One HTTPRouteMatch per method (Gateway API takes one method per match).

    *headers_of* builds the header conditions; Kuma, whose match shape is the
    same, passes its own (it has Prefix and Present types).
    """
    path = path_match(match.path_regex)
    headers = (headers_of or header_matches)(match)
    out: list[Obj] = []
    for method in expand_methods(match):
        m: Obj = {}
        if path is not None:
            m["path"] = path
        if headers:
            m["headers"] = headers
        if method is not None:
            m["method"] = method
        out.append(m or {"path": {"type": "PathPrefix", "value": "/"}})
    return out


def backend_refs(ts: TrafficSplit, port: int) -> list[Obj]:
    """Weighted Service backendRefs on *port*; weights keep their exact ratios."""
    rel = weights.relative([b.weight_milli for b in ts.backends])
    return [{"name": b.service, "port": port, "weight": w} for b, w in zip(ts.backends, rel, strict=True)]


def root_ports(ts: TrafficSplit, em: Emitter, target: str) -> list[ServicePort] | None:
    """The root Service's ports, which every GAMMA route and backendRef must name.

    None (with a finding) when the Service is not among the inputs.
    """
    svc = em.inputs.service(ts.meta.namespace, ts.service)
    if svc is None or not svc.ports:
        em.finding(ts, ts.path("service"), FindingReason.UNRESOLVED_REFERENCE,
                   f"Service {ts.meta.namespace}/{ts.service} (with its ports) is not in the input; "
                   f"{target} routes need its ports, nothing emitted")
        return None
    return list(svc.ports)


def is_tcp_only(port: ServicePort) -> bool:
    """Whether a Service port declares a non-HTTP protocol."""
    if port.is_http:
        return False
    if port.app_protocol:
        return True
    return port.name.split("-", 1)[0] in ("tcp", "tls", "mongo", "mysql", "redis")


def split_routes(ts: TrafficSplit, em: Emitter, *, target: str = "GAMMA") -> None:
    """Emit the GAMMA HTTPRoutes/TCPRoutes of one TrafficSplit, for the run's Gateway API release."""
    gateway = em.profile.gateway
    if gateway is None:
        raise ValueError(f"{em.profile.describe()} writes no Gateway API routes")
    if not em.claim(("gamma-parent", ts.meta.namespace, ts.service), ts, ts.path("service"),
                    f"Service {ts.meta.namespace}/{ts.service}"):
        return
    matched = split_matches(ts, em)
    if matched is None:
        return
    ports = root_ports(ts, em, target)
    if ports is None:
        return
    if len(ts.backends) > MAX_BACKENDS:
        em.finding(ts, ts.path("backends"), FindingReason.NOT_EXPRESSIBLE,
                   f"{len(ts.backends)} backends exceed the Gateway API limit of {MAX_BACKENDS}; "
                   "split not emitted")
        return
    usable = [p for p in ports if p.protocol.upper() == "TCP"]
    for p in ports:
        if p.protocol.upper() != "TCP":
            em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                       f"port {p.port}/{p.protocol} of Service {ts.service}: only TCP ports can be "
                       "split with Gateway API routes; not emitted")
    if len(usable) > 1 and not gateway.parent_port:
        # Without parentRefs[].port every route would attach to every port of
        # the Service, and the per-port routes would overlap.
        em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                   f"Service {ts.service} has {len(usable)} ports, and Gateway API {gateway} has no "
                   "parentRefs[].port outside the experimental channel, so a route cannot select "
                   "one port; split not emitted")
        return
    for p in usable:
        name = numbered(ts.meta.name, p.port, len(usable))
        parent: Obj = {"group": "", "kind": "Service", "name": ts.service}
        if gateway.parent_port:
            parent["port"] = p.port
        if is_tcp_only(p):
            if matched:
                em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                           f"port {p.port} of Service {ts.service} is not HTTP, so HTTP matches "
                           "cannot apply; no route emitted for it")
                continue
            _tcp_route(ts, em, name, parent, p.port, target)
            continue
        spec = _http_spec(ts, em, matched, parent, p.port)
        if spec is not None:
            em.emit(em.profile.api(GATEWAY_GROUP, "HTTPRoute"), "HTTPRoute", ts.meta.namespace, name,
                    spec, [ts])


def _tcp_route(ts: TrafficSplit, em: Emitter, name: str, parent: Obj, port: int, target: str) -> None:
    """A TCPRoute for one port, where the mesh routes them; a finding where it does not."""
    gateway = em.profile.gateway
    assert gateway is not None
    if not em.profile.has(Feature.GAMMA_TCP_ROUTE):
        em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                   f"port {port} of Service {ts.service} is not HTTP, and {em.profile.describe()} "
                   f"routes no GAMMA TCPRoute ({target} implements HTTPRoute only); "
                   "no route emitted for it")
        return
    api_version = em.profile.api(GATEWAY_GROUP, "TCPRoute")
    if gateway.experimental_only("TCPRoute") and gateway.channel is not Channel.EXPERIMENTAL:
        em.finding(ts, ts.path("service"), FindingReason.PREREQUISITE,
                   f"TCPRoute {api_version} for port {port} exists only in the experimental-channel "
                   f"CRDs of Gateway API {render(gateway.version)}; install those "
                   "(the standard channel has no TCPRoute before 1.6)")
    em.emit(api_version, "TCPRoute", ts.meta.namespace, name,
            {"parentRefs": [parent], "rules": [{"backendRefs": backend_refs(ts, port)}]}, [ts])


def _http_spec(ts: TrafficSplit, em: Emitter, matched: list[tuple[int, HTTPMatch]],
               parent: Obj, port: int) -> Obj | None:
    rules: list[Obj] = []
    if matched:
        matches = [rm for _, m in matched for rm in route_matches(m)]
        if len(matches) > MAX_MATCHES_PER_RULE:
            em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       f"{len(matches)} route matches exceed the Gateway API limit of "
                       f"{MAX_MATCHES_PER_RULE} per rule; split not emitted")
            return None
        rules.append({"matches": matches, "backendRefs": backend_refs(ts, port)})
        # Requests matching none of the groups go to the root Service, as SMI requires.
        rules.append({"backendRefs": [{"name": ts.service, "port": port}]})
    else:
        rules.append({"backendRefs": backend_refs(ts, port)})
    return {"parentRefs": [parent], "rules": rules}


def whole(obj: SmiObject) -> str:
    """Field path standing for a whole object's body."""
    return obj.field_prefix.rstrip(".") or "metadata.name"

