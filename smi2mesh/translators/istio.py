"""Target ``istio``: VirtualService routes and AuthorizationPolicy allow-lists.

A TrafficSplit becomes one ``networking.istio.io/v1`` VirtualService for the
root Service's host: matched HTTP requests are split by weight, everything
else falls through to a last route that keeps it on the root Service. A
TrafficTarget becomes one ``security.istio.io/v1`` ALLOW AuthorizationPolicy
per label selector of the destination ServiceAccount's pods. Istio denies
every request to a workload that has an ALLOW policy unless one of them
matches, so an emitted policy with no rules is SMI's deny-by-default: every
destination whose pods can be selected gets its policy, even when no rule of
the TrafficTarget is expressible. Pods that cannot be selected get nothing,
and Istio's default (allow) applies to them; the finding says so.

AuthorizationPolicy matches paths and header values only exactly, by a
``*`` prefix/suffix wildcard, or by presence; there is no regex. Whatever
cannot be expressed that way gets no allow rule (fail closed).
"""

from __future__ import annotations

import json
from typing import ClassVar, NamedTuple

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import HTTPMatch, Protocol, ServicePort, TrafficSplit, TrafficTarget
from smi2mesh.regex import MatchType, Pattern, classify_path, classify_value
from smi2mesh.translators.base import (
    Emitter,
    Obj,
    OutputKind,
    Translator,
    fqdn,
    grants,
    numbered,
    pod_selectors,
    principal,
    split_matches,
)
from smi2mesh.translators.gateway_api import is_tcp_only

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"
# Written by Flagger and smi-adapter-istio on TrafficSplits meant for Istio gateways.
GATEWAYS_ANNOTATION = "VirtualService.v1alpha3.networking.istio.io/spec.gateways"
MESH_GATEWAY = "mesh"
# HTTPMatchRequest.headers ignores these keys, which would widen the match.
_VS_IGNORED_HEADERS = frozenset(("uri", "scheme", "method", "authority"))
# AuthorizationPolicy CRD limit on spec.rules.
MAX_RULES = 512
# Characters AuthorizationPolicy reads as wildcards (and, in paths, templates), never literally.
_PATH_SPECIAL = frozenset("*{}")
_VALUE_SPECIAL = frozenset("*")
# What applies to pods no AuthorizationPolicy of ours selects.
ISTIO_DEFAULT = ("Istio's default applies to them: allow, unless another AuthorizationPolicy "
                 "selects them")


class IstioTranslator(Translator):
    """TrafficSplit -> VirtualService; TrafficTarget -> AuthorizationPolicy (ALLOW)."""

    name: ClassVar[str] = "istio"
    description: ClassVar[str] = "Istio VirtualService and AuthorizationPolicy (ALLOW, by pod labels)"
    emits: ClassVar[tuple[OutputKind, ...]] = (
        # v1 from Istio 1.22, v1beta1 before (profiles.RELEASES["istio"]).
        OutputKind("networking.istio.io/v1", "VirtualService", "virtualservices"),
        OutputKind("networking.istio.io/v1beta1", "VirtualService", "virtualservices"),
        OutputKind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
        OutputKind("security.istio.io/v1beta1", "AuthorizationPolicy", "authorizationpolicies"),
    )

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        ns = ts.meta.namespace
        host = fqdn(ts.service, ns, em.options)
        if not em.claim(("istio-host", host), ts, ts.path("service"), f"host {host}"):
            return
        matched = split_matches(ts, em)
        if matched is None:
            return
        spec: Obj = {"hosts": [host]}
        gateways = _gateways(ts, em)
        if gateways:
            spec["gateways"] = gateways
        _report_lost_weights(ts, em)
        http, tcp = _routes(ts, em, [m for _, m in matched])
        if not http and not tcp:
            return
        if http:
            spec["http"] = http
        if tcp:
            spec["tcp"] = tcp
        em.emit(em.profile.api(NETWORKING, "VirtualService"), "VirtualService", ns, ts.meta.name,
                spec, [ts])

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        selectors = pod_selectors(tt, em, ISTIO_DEFAULT)
        if not selectors:
            return
        # Emitted even when no rule survives: an ALLOW policy without rules
        # is how Istio denies by default.
        rules = _authz_rules(tt, em)
        if len(rules) > MAX_RULES:
            em.finding(tt, tt.path(tt.rules_field), FindingReason.ACCESS_FAIL_CLOSED,
                       f"{len(rules)} authorization rules exceed Istio's limit of {MAX_RULES}; "
                       "the policy allows nothing")
            rules = []
        ns = tt.destination.namespace
        for i, selector in enumerate(selectors):
            spec: Obj = {"selector": {"matchLabels": selector}, "action": "ALLOW"}
            # No rules: Istio denies every request to the selected pods, which
            # is what SMI means for a destination nothing is granted to.
            if rules:
                spec["rules"] = rules
            em.emit(em.profile.api(SECURITY, "AuthorizationPolicy"), "AuthorizationPolicy", ns,
                    numbered(tt.meta.name, i, len(selectors)), spec, [tt])


# ---- TrafficSplit -> VirtualService ------------------------------------------


def _gateways(ts: TrafficSplit, em: Emitter) -> list[str]:
    """Gateways from the Flagger/smi-adapter-istio annotation, plus ``mesh``; [] when absent."""
    raw = ts.meta.annotations.get(GATEWAYS_ANNOTATION)
    if raw is None:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        em.finding(ts, f"metadata.annotations[{GATEWAYS_ANNOTATION}]", FindingReason.IGNORED_FIELD,
                   "not a JSON list of gateway names; ignored, the VirtualService applies to "
                   "the mesh only")
        return []
    # The sidecars must keep routing: naming any gateway drops the implicit "mesh".
    return list(dict.fromkeys([*value, MESH_GATEWAY]))


def _routes(ts: TrafficSplit, em: Emitter, matches: list[HTTPMatch]) -> tuple[list[Obj], list[Obj]]:
    """The ``http`` and ``tcp`` entries of the VirtualService."""
    ns = ts.meta.namespace
    requests = [(m.name, r) for m in matches if (r := _match_request(ts, em, m)) is not None]
    svc = em.inputs.service(ns, ts.service)
    if svc is None or not svc.ports:
        # Without the Service, Istio picks the port; the http entries serve
        # HTTP ports and, without matches, a tcp entry splits any TCP port.
        unported: list[Obj] = [] if matches else [{"route": _weighted(ts, em, None)}]
        return _http_entries(ts, em, bool(matches), requests, None), unported
    tcp_ports: list[ServicePort] = []
    http_ports: list[ServicePort] = []
    for p in svc.ports:
        if p.protocol.upper() != "TCP":
            em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                       f"port {p.port}/{p.protocol} of Service {ts.service}: Istio proxies only "
                       "TCP; not split")
            continue
        if not is_tcp_only(p):
            http_ports.append(p)
        # Ports without a declared protocol are sniffed: they may carry HTTP or TCP.
        if not p.is_http:
            tcp_ports.append(p)
    http: list[Obj] = []
    if len(http_ports) == 1:
        http = _http_entries(ts, em, bool(matches), requests, None)
    else:
        for p in http_ports:
            http.extend(_http_entries(ts, em, bool(matches), requests, p.port))
    tcp: list[Obj] = []
    for p in tcp_ports:
        if matches:
            if is_tcp_only(p):
                em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                           f"port {p.port} of Service {ts.service} is not HTTP, so HTTP matches "
                           "cannot apply; its traffic stays on the root Service")
            continue
        tcp.append({"match": [{"port": p.port}], "route": _weighted(ts, em, p.port)})
    return http, tcp


def _http_entries(ts: TrafficSplit, em: Emitter, has_matches: bool,
                  requests: list[tuple[str, Obj]], port: int | None) -> list[Obj]:
    """HTTP routes for one port (None: unscoped): one per match, then the root fallback."""
    if not has_matches:
        entry: Obj = {"route": _weighted(ts, em, port)}
        if port is not None:
            entry = {"match": [{"port": port}], **entry}
        return [entry]
    out: list[Obj] = []
    for name, conditions in _reachable(requests):
        if not conditions:
            # A match without conditions splits every request: the routes after
            # it, the root fallback included, could never be reached (istiod
            # warns "rule not used"), so it is the last route.
            last: Obj = {"name": name, "route": _weighted(ts, em, port)}
            if port is not None:
                last = {"name": name, "match": [{"port": port}], "route": last["route"]}
            out.append(last)
            return out
        request: Obj = dict(conditions)
        if port is not None:
            request["port"] = port
        out.append({"name": name, "match": [request], "route": _weighted(ts, em, port)})
    # SMI keeps requests that match no HTTPRouteGroup on the root Service.
    fallback: Obj = {"route": [{"destination": _destination(ts.service, ts, em, port)}]}
    if port is not None:
        fallback = {"match": [{"port": port}], **fallback}
    out.append(fallback)
    return out


def _reachable(requests: list[tuple[str, Obj]]) -> list[tuple[str, Obj]]:
    """The match requests no earlier one covers.

    Every matched route sends to the same weighted backends, so dropping one
    that an earlier match covers changes nothing, and keeps the unreachable
    route (which istiod warns about) out of the VirtualService.
    """
    kept: list[tuple[str, Obj]] = []
    for name, conditions in requests:
        if not any(_covers(earlier, conditions) for _, earlier in kept):
            kept.append((name, conditions))
    return kept


def _covers(a: Obj, b: Obj) -> bool:
    """Whether every request that HTTPMatchRequest ``b`` matches also matches ``a``.

    Conservative: only the certain cases (same conditions, a path prefix of
    ``b``'s path, fewer header conditions) count.
    """
    a_uri, b_uri = a.get("uri"), b.get("uri")
    if a_uri is not None and a_uri != b_uri:
        a_prefix = a_uri.get("prefix")
        b_path = None if b_uri is None else b_uri.get("prefix", b_uri.get("exact"))
        if a_prefix is None or b_path is None or not b_path.startswith(a_prefix):
            return False
    if "method" in a and a["method"] != b.get("method"):
        return False
    b_headers = b.get("headers", {})
    return all(name in b_headers and b_headers[name] == value
               for name, value in a.get("headers", {}).items())


def _match_request(ts: TrafficSplit, em: Emitter, m: HTTPMatch) -> Obj | None:
    """One HTTPMatchRequest (without port) for an SMI match; None (reported) when inexpressible."""
    request: Obj = {}
    if m.path_regex is not None:
        pat = classify_path(m.path_regex)
        if pat.type is MatchType.EXACT and not pat.value:
            em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       f"match {m.name!r}: path regex {m.path_regex!r} matches no request path; "
                       "no route emitted for it")
            return None
        uri = _string_match(pat)
        if uri is not None:
            request["uri"] = uri
    if m.methods:
        request["method"] = ({"exact": m.methods[0]} if len(m.methods) == 1
                             else {"regex": "|".join(m.methods)})
    if m.headers:
        names = [h.name for h in m.headers]
        ignored = sorted(set(names) & _VS_IGNORED_HEADERS)
        if ignored:
            em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       f"match {m.name!r}: a VirtualService ignores header conditions on "
                       f"{', '.join(ignored)}; no route emitted for it (its requests stay on the "
                       "root Service)")
            return None
        if len(set(names)) != len(names):
            em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       f"match {m.name!r} constrains one header twice; a VirtualService match "
                       "holds one condition per header, no route emitted for it (its requests "
                       "stay on the root Service)")
            return None
        request["headers"] = {h.name: _string_match(classify_value(h.value)) or {}
                              for h in m.headers}
    return request


def _string_match(pat: Pattern) -> Obj | None:
    """Istio StringMatch for a full-match pattern; None for "anything"."""
    if pat.type is MatchType.ANY:
        return None
    if pat.type is MatchType.EXACT:
        return {"exact": pat.value}
    if pat.type is MatchType.PREFIX:
        return {"prefix": pat.value}
    return {"regex": pat.full_regex()}


def _destination(service: str, ts: TrafficSplit, em: Emitter, port: int | None) -> Obj:
    dest: Obj = {"host": fqdn(service, ts.meta.namespace, em.options)}
    if port is not None:
        dest["port"] = {"number": port}
    return dest


def _report_lost_weights(ts: TrafficSplit, em: Emitter) -> None:
    percents = weights.largest_remainder([b.weight_milli for b in ts.backends], 100)
    for i, (b, w) in enumerate(zip(ts.backends, percents, strict=True)):
        if b.weight_milli > 0 and w == 0:
            em.finding(ts, ts.path(f"backends[{i}].weight"), FindingReason.NOT_EXPRESSIBLE,
                       f"backend {b.service} gets less than 0.5% of the traffic, which rounds to "
                       "a weight of 0 percent; it receives none")


def _weighted(ts: TrafficSplit, em: Emitter, port: int | None) -> list[Obj]:
    """Weighted destinations, as percentages that sum to exactly 100."""
    percents = weights.largest_remainder([b.weight_milli for b in ts.backends], 100)
    return [{"destination": _destination(b.service, ts, em, port), "weight": w}
            for b, w in zip(ts.backends, percents, strict=True)]


# ---- TrafficTarget -> AuthorizationPolicy rules --------------------------------


def _authz_rules(tt: TrafficTarget, em: Emitter) -> list[Obj]:
    """The ALLOW rules of a TrafficTarget, one per L4 grant or HTTP match."""
    granted = grants(tt, em)
    if not granted:
        return []
    principals = list(dict.fromkeys(principal(s, em.options) for s in tt.sources))
    source: Obj = {"source": {"principals": principals}}
    rules: list[Obj] = []
    for g in granted:
        if g.protocol is Protocol.UDP:
            em.finding(tt, g.field, FindingReason.NOT_EXPRESSIBLE,
                       "Istio does not proxy UDP, so no AuthorizationPolicy can allow or deny it; "
                       "restrict UDP with a NetworkPolicy")
            continue
        ports = [str(p) for p in g.ports]
        if g.http is None:
            rule: Obj = {"from": [source]}
            if ports:
                rule["to"] = [{"operation": {"ports": ports}}]
            rules.append(rule)
            continue
        for m, field in zip(g.http, g.http_fields, strict=True):
            http_rule = _http_rule(tt, em, m, field, source, ports)
            if http_rule is not None:
                rules.append(http_rule)
    return rules


def _http_rule(tt: TrafficTarget, em: Emitter, m: HTTPMatch, field: str, source: Obj,
               ports: list[str]) -> Obj | None:
    """One ALLOW rule for an HTTP match; None (reported, fail closed) when it would be broader."""
    operation: Obj = {}
    if ports:
        operation["ports"] = ports
    if m.methods:
        operation["methods"] = list(m.methods)
    if m.path_regex is not None:
        path = _authz_value(classify_path(m.path_regex), _PATH_SPECIAL)
        if not path.value:
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"match {m.name!r}: path regex {m.path_regex!r} {path.why}; not allowed")
            return None
        if path.value != "*":
            operation["paths"] = [path.value]
    conditions: list[Obj] = []
    for h in m.headers:
        value = _authz_value(classify_value(h.value), _VALUE_SPECIAL)
        if not value.value:
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"match {m.name!r}: header {h.name} value {h.value!r} {value.why}; "
                       "not allowed")
            return None
        conditions.append({"key": f"request.headers[{h.name}]", "values": [value.value]})
    if "methods" not in operation and "paths" not in operation and not conditions:
        # Istio skips ALLOW rules with HTTP-only fields for plain TCP, but a
        # rule without them would also allow non-HTTP connections, which an
        # HTTP match never does: "*" (any path) makes the rule HTTP-only.
        operation["paths"] = ["*"]
    rule: Obj = {"from": [source]}
    if operation:
        # istiod refuses an empty operation ("`to.operation` must not be
        # empty"); without one the header conditions alone match, and they
        # are HTTP-only, so no plain TCP connection is allowed either.
        rule["to"] = [{"operation": operation}]
    if conditions:
        rule["when"] = conditions
    return rule


class _AuthzValue(NamedTuple):
    """An AuthorizationPolicy match string, or (empty) why there is none."""

    value: str
    why: str = ""


def _authz_value(pat: Pattern, special: frozenset[str]) -> _AuthzValue:
    """AuthorizationPolicy form (exact, ``prefix*``, ``*suffix``, ``*``) of a full-match pattern."""
    if pat.type is MatchType.ANY:
        return _AuthzValue("*")
    if pat.type is MatchType.REGEX:
        return _AuthzValue("", "is a regex beyond exact/prefix/suffix/presence, and "
                               "AuthorizationPolicy has no regex matching")
    if not pat.value:
        return _AuthzValue("", "only matches an empty value, which AuthorizationPolicy "
                               "cannot match exactly")
    if special & set(pat.value):
        chars = " ".join(sorted(special & set(pat.value)))
        return _AuthzValue("", f"has the literal character(s) {chars}, which "
                               "AuthorizationPolicy reads as a wildcard or template")
    if pat.type is MatchType.PREFIX:
        return _AuthzValue(pat.value + "*")
    if pat.type is MatchType.SUFFIX:
        return _AuthzValue("*" + pat.value)
    return _AuthzValue(pat.value)
