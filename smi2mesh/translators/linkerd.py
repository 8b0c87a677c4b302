"""Target ``linkerd``: GAMMA routes for TrafficSplits, ``policy.linkerd.io`` objects for TrafficTargets.

Splits become Gateway API HTTPRoutes/TCPRoutes with the root Service as
parent (the builder the gamma target uses). Access becomes Linkerd's inbound
policy:

* one ``Server`` per (namespace, pod selector, port), shared by every
  TrafficTarget with that destination and port, because Linkerd refuses two
  Servers that select the same pod port. Every Server has ``accessPolicy:
  deny``: it is the destination's deny-by-default on that port. A destination
  gets one on every port known for its pods (TCP ``containerPorts``, target
  ports of the Services selecting them, ports any rule names for them), even when no
  grant is expressible; ports without a Server keep Linkerd's default inbound
  policy (all-unauthenticated unless the cluster or an annotation sets
  another), and the findings say so where it matters;
* a grant without ports (an HTTPRouteGroup rule, a TCPRoute without ports)
  is attached to the Server of every known port: exact for those ports, and
  reported for the ports nobody declared (HTTP rules skip Linkerd's default
  opaque ports, whose Servers stay opaque and deny);
* one ``MeshTLSAuthentication`` per TrafficTarget listing its sources;
* an L4 grant is an ``AuthorizationPolicy`` on the Server;
* an HTTP grant is an inbound ``HTTPRoute`` (``policy.linkerd.io``) on the
  Server plus an ``AuthorizationPolicy`` on that route.

Linkerd 2.13 (the ``2.13`` profile) has no GAMMA and no Server
``accessPolicy``: splits become ServiceProfiles
(:mod:`smi2mesh.translators.linkerd_profiles`), and Servers are ``v1beta1``,
which deny what no authorization allows. On every release a foreign
ServiceProfile of a split's root is reported, since it overrides the routes.

How Linkerd combines them (linkerd2-proxy ``server-policy``): once a Server
has HTTPRoutes, an HTTP request must match one of them (the most specific
match wins) or it is refused with 404, and the request is authorized by the
policies on that route *or* on the Server. So a Server-level (L4) policy
still covers every route, but HTTP requests that match no route would be
refused; where a Server carries both, a catch-all route without its own
policy is added, so the L4 sources keep all their HTTP traffic and nobody
else gains any.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import re2

from smi2mesh.findings import FindingReason
from smi2mesh.model import HTTPMatch, Protocol, TrafficSplit, TrafficTarget, Workload
from smi2mesh.regex import re2_error
from smi2mesh.translators import linkerd_profiles
from smi2mesh.translators.base import (
    GATEWAY_ROUTES,
    Emitter,
    Grant,
    Obj,
    OutputKind,
    PodSet,
    Translator,
    destination_pods,
    grants,
    pod_ports,
)
from smi2mesh.translators.gateway_api import route_matches, split_routes
from smi2mesh.translators.profiles import Feature

POLICY_GROUP = "policy.linkerd.io"
SERVER_API = f"{POLICY_GROUP}/v1beta3"
ROUTE_API = f"{POLICY_GROUP}/v1beta3"
AUTHZ_API = f"{POLICY_GROUP}/v1alpha1"
AUTHN_API = f"{POLICY_GROUP}/v1alpha1"
# Limits of the policy.linkerd.io/v1beta3 HTTPRoute schema.
MAX_RULES = 16
MAX_MATCHES_PER_RULE = 8
MAX_MATCHES = MAX_RULES * MAX_MATCHES_PER_RULE
MAX_HEADERS = 16
MAX_PATH_LEN = 1024
MAX_HEADER_VALUE_LEN = 4096
# Ports Linkerd treats as opaque by default (server-speaks-first and similar
# protocols that protocol detection would stall for 10 s). A Server's
# proxyProtocol supersedes that default, so it must repeat it.
DEFAULT_OPAQUE_PORTS = frozenset({25, 587, 3306, 4444, 5432, 6379, 9300, 11211})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Container ports of the injected proxy itself (inbound and admin): they show
# in dumps of injected pods, and a deny Server there would cut metrics and
# the proxy's own traffic.
PROXY_PORT_NAMES = frozenset({"linkerd-proxy", "linkerd-admin"})
DEFAULT_POLICY_ANNOTATION = "config.linkerd.io/default-inbound-policy"

SelectorKey = tuple[tuple[str, str], ...]
ServerKey = tuple[str, SelectorKey, int]


@dataclass
class _Server:
    """One Server to emit and everything that attaches to it."""

    namespace: str
    selector: dict[str, str]
    port: int
    service_account: str
    selector_index: int
    selector_count: int
    l4: list[TrafficTarget] = field(default_factory=list)
    http: list[tuple[TrafficTarget, list[Obj]]] = field(default_factory=list)
    # Every TrafficTarget whose destination this Server puts under deny-by-default.
    denies: list[TrafficTarget] = field(default_factory=list)

    def targets(self) -> list[TrafficTarget]:
        """The TrafficTargets that grant something on this Server."""
        return [*self.l4, *(tt for tt, _ in self.http)]


@dataclass
@dataclass
class _Destination:
    """One TrafficTarget's pods under one selector, completed in finish().

    Grants without ports and the deny-by-default need every port known for
    the pods, which other TrafficTargets' route ports add to.
    """

    tt: TrafficTarget
    pods: PodSet
    index: int
    count: int
    declared: list[int]
    every_port: list[tuple[Grant, list[Obj] | None]]


@dataclass
class _Run:
    """What target() collects for finish() during one translation run (``Emitter.state``)."""

    servers: dict[ServerKey, _Server] = field(default_factory=dict)
    destinations: list[_Destination] = field(default_factory=list)

    def server(self, d: _Destination, port: int) -> _Server:
        """The Server of *d*'s pods on *port*, shared with every other TrafficTarget there."""
        ns = d.tt.destination.namespace
        key: ServerKey = (ns, tuple(sorted(d.pods.selector.items())), port)
        return self.servers.setdefault(key, _Server(
            ns, d.pods.selector, port, d.tt.destination.name, d.index, d.count))


def linkerd_default(workloads: Iterable[Workload] = (), where: str = "to them") -> str:
    """What Linkerd does on a pod port without a Server, for findings.

    The pods' own ``config.linkerd.io/default-inbound-policy`` annotation is
    named when the input shows it; the namespace's and the cluster's are not
    in the input.
    """
    values = sorted({w.pod_annotations[DEFAULT_POLICY_ANNOTATION] for w in workloads
                     if DEFAULT_POLICY_ANNOTATION in w.pod_annotations})
    if values:
        return (f"Linkerd's default inbound policy applies {where}: {' / '.join(values)}, from the "
                f"pods' {DEFAULT_POLICY_ANNOTATION} annotation")
    return (f"Linkerd's default inbound policy applies {where}: all-unauthenticated (allow), unless "
            f"the cluster (proxy.defaultInboundPolicy) or a {DEFAULT_POLICY_ANNOTATION} annotation "
            "on the namespace or pods sets another")


def dns_label(base: str) -> str:
    """*base* as a DNS label: dots become dashes; too long gets a hash suffix."""
    name = re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-") or "x"
    if len(name) <= 63 and _DNS_LABEL.match(name):
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


class _Names:
    """Hands out names unique per (kind, namespace), in call order.

    A reused name would make an AuthorizationPolicy point at another
    TrafficTarget's Server or authentication, i.e. widen access; so a clash
    gets a numeric suffix instead of being dropped.
    """

    def __init__(self) -> None:
        self._taken: set[tuple[str, str, str]] = set()

    def take(self, kind: str, namespace: str, base: str) -> str:
        name = dns_label(base)
        n = 1
        while (kind, namespace, name) in self._taken:
            n += 1
            name = dns_label(f"{base}-{n}")
        self._taken.add((kind, namespace, name))
        return name


def _anchored(regex: str) -> str:
    # Linkerd tests a regex with a leftmost-first search and then checks the
    # match spans the whole value; without anchors ``a|ab`` would not match
    # "ab" although it full-matches. Anchoring makes the check a true full match.
    return f"^(?:{regex})$"


def linkerd_matches(match: HTTPMatch) -> tuple[list[Obj], str | None]:
    """HTTPRouteMatches for one SMI match, or an explanation why Linkerd cannot take it."""
    out: list[Obj] = []
    for rm in route_matches(match):
        path = rm.get("path")
        if path is not None and path["type"] == "RegularExpression":
            path = rm["path"] = {"type": "RegularExpression", "value": _anchored(path["value"])}
        if path is not None and len(path["value"]) > MAX_PATH_LEN:
            return [], f"the path match is longer than Linkerd's limit of {MAX_PATH_LEN} characters"
        headers = rm.get("headers", [])
        for h in headers:
            if not _HEADER_NAME.match(h["name"]):
                return [], f"header name {h['name']!r} is not accepted by Linkerd"
            if len(h["value"]) > MAX_HEADER_VALUE_LEN:
                return [], (f"header {h['name']!r} value is longer than Linkerd's limit of "
                            f"{MAX_HEADER_VALUE_LEN} characters")
        if headers:
            if len(headers) > MAX_HEADERS:
                return [], f"{len(headers)} header conditions exceed Linkerd's limit of {MAX_HEADERS}"
            if len({h["name"] for h in headers}) != len(headers):
                return [], "the same header is matched twice; Linkerd takes one condition per header"
            rm["headers"] = headers
        regexes = [c["value"] for c in [path, *headers]
                   if c is not None and c["type"] == "RegularExpression"]
        for value in regexes:
            err = re2_error(value)
            if err:
                return [], err
        out.append(rm)
    return out, None


def may_overlap(a: Obj, b: Obj) -> bool:
    """Whether one request could match both route matches (False only when surely not)."""
    if "method" in a and "method" in b and a["method"] != b["method"]:
        return False
    pa, pb = a.get("path"), b.get("path")
    if pa and pb and pa["type"] == pb["type"] == "Exact" and pa["value"] != pb["value"]:
        return False
    exact_a = {h["name"]: h["value"] for h in a.get("headers", []) if h["type"] == "Exact"}
    for h in b.get("headers", []):
        if h["type"] == "Exact" and exact_a.get(h["name"], h["value"]) != h["value"]:
            return False
    return True


def ties_catch_all(match: Obj) -> bool:
    """Whether *match* can rank equal to a catch-all ``PathPrefix /`` match.

    Linkerd ranks a match by the length of path it matched, then method, then
    header count; a catch-all matches one character, so only a request for
    "/" can tie, and only with a match that names no method or header.
    """
    if "method" in match or match.get("headers"):
        return False
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    if path["type"] == "RegularExpression":
        return re2.fullmatch(path["value"], "/") is not None
    return bool(path["value"] == "/")


def rules_of(matches: Sequence[Obj]) -> list[Obj]:
    """Pack matches into rules of at most MAX_MATCHES_PER_RULE (no backends: inbound policy)."""
    return [{"matches": list(matches[i:i + MAX_MATCHES_PER_RULE])}
            for i in range(0, len(matches), MAX_MATCHES_PER_RULE)]


def _protocol(server: _Server) -> str:
    # Protocol detection by default: HTTP/1 would break HTTP/2 clients and
    # SMI does not say which protocol a port speaks. Only an L4-only Server
    # on one of Linkerd's default opaque ports stays opaque, as it would be
    # without a Server; HTTP routes need detection to see requests at all.
    if not server.http and server.port in DEFAULT_OPAQUE_PORTS:
        return "opaque"
    return "unknown"


def _attach(server: _Server, tt: TrafficTarget, matches: list[Obj] | None) -> None:
    if matches is None:
        server.l4.append(tt)
    else:
        server.http.append((tt, matches))


def _pods_key(d: _Destination) -> tuple[str, SelectorKey]:
    return (d.tt.destination.namespace, tuple(sorted(d.pods.selector.items())))


def _selector_text(pods: PodSet) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(pods.selector.items())) + "}"


class LinkerdTranslator(Translator):
    """TrafficSplit -> GAMMA HTTPRoute/TCPRoute; TrafficTarget -> Server + policy.linkerd.io authorization."""

    name: ClassVar[str] = "linkerd"
    description: ClassVar[str] = (
        "Gateway API routes for splits; Linkerd Server, HTTPRoute, AuthorizationPolicy and "
        "MeshTLSAuthentication for access"
    )
    emits: ClassVar[tuple[OutputKind, ...]] = (
        *GATEWAY_ROUTES,
        OutputKind("policy.linkerd.io/v1beta3", "Server", "servers"),
        OutputKind("policy.linkerd.io/v1beta3", "HTTPRoute", "httproutes"),
        OutputKind("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", "authorizationpolicies"),
        OutputKind("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", "meshtlsauthentications"),
        # Linkerd 2.13 (profiles.py): Server and HTTPRoute at older versions, splits as ServiceProfiles.
        OutputKind("policy.linkerd.io/v1beta1", "Server", "servers"),
        OutputKind("policy.linkerd.io/v1beta2", "HTTPRoute", "httproutes"),
        OutputKind("linkerd.io/v1alpha2", "ServiceProfile", "serviceprofiles"),
    )

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        if em.profile.has(Feature.LINKERD_SERVICE_PROFILES):
            linkerd_profiles.legacy_split(ts, em)
            return
        split_routes(ts, em, target="Linkerd")
        linkerd_profiles.report_shadowing(ts, em)

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        pod_sets = destination_pods(tt, em, linkerd_default())
        if not pod_sets:
            return
        wanted: list[tuple[Grant, list[Obj] | None]] = []
        for g in grants(tt, em):
            if g.protocol is Protocol.UDP:
                em.finding(tt, g.field, FindingReason.NOT_EXPRESSIBLE,
                           "Linkerd does not proxy UDP, so no Server can allow or deny these ports")
                continue
            if g.http is None:
                wanted.append((g, None))
                continue
            http = self._http(tt, g, em)
            if http:
                wanted.append((g, http))
        run = em.state(_Run)
        for index, pods in enumerate(pod_sets):
            d = _Destination(tt, pods, index, len(pod_sets), self._known_ports(tt, pods, em),
                             [(g, m) for g, m in wanted if not g.ports])
            run.destinations.append(d)
            for g, matches in wanted:
                for port in g.ports:
                    _attach(run.server(d, port), tt, matches)

    def _complete(self, run: _Run, em: Emitter) -> None:
        """Deny-by-default on every known port, and the grants of every port there."""
        known: dict[tuple[str, SelectorKey], set[int]] = {}
        for (ns, sel_key, port) in run.servers:
            known.setdefault((ns, sel_key), set()).add(port)
        for d in run.destinations:
            known.setdefault(_pods_key(d), set()).update(d.declared)
        for d in run.destinations:
            tt, pods = d.tt, d.pods
            ports = sorted(known[_pods_key(d)])
            if not ports:
                em.finding(tt, tt.path("destination"), FindingReason.UNRESOLVED_REFERENCE,
                           f"pods {_selector_text(pods)}: no TCP port is known (no containerPorts, "
                           "no Service targetPort, no route port), so no Server can select them "
                           f"and no policy is emitted; {linkerd_default(pods.workloads)}")
                continue
            for port in ports:
                run.server(d, port).denies.append(tt)
            for g, matches in d.every_port:
                # A grant of every port is exact on each known port. HTTP
                # rules leave out Linkerd's default opaque ports: no request
                # is seen there, and a route would switch the port to
                # protocol detection, which those protocols stall.
                granted = [p for p in ports if matches is None or p not in DEFAULT_OPAQUE_PORTS]
                opaque = [p for p in ports if p not in granted]
                what = ("HTTP rules allow every port; on the pods {} they are" if matches is not None
                        else "rule allows every port; on the pods {} it is")
                message = f"the {what.format(_selector_text(pods))} granted on "
                deny = ("Server with accessPolicy deny"
                        if em.profile.has(Feature.LINKERD_SERVER_ACCESS_POLICY)
                        else "Server, which denies what no authorization allows")
                message += (f"the ports known for them ({', '.join(map(str, granted))}), each a "
                            f"{deny}; " if granted else "no known port; ")
                if opaque:
                    message += (f"not on {', '.join(map(str, opaque))}, which Linkerd treats as "
                                "opaque by default (no HTTP request is seen there), so its deny "
                                "Server refuses them; ")
                em.finding(tt, g.field, FindingReason.ACCESS_FAIL_CLOSED,
                           f"{message}any other port has no Server and is not covered: "
                           f"{linkerd_default(pods.workloads, 'there')}")
                for port in granted:
                    _attach(run.server(d, port), tt, matches)

    def _known_ports(self, tt: TrafficTarget, pods: PodSet, em: Emitter) -> list[int]:
        """TCP ports the pods declare, without the proxy's own; named targetPorts that miss are reported."""
        found = pod_ports(em, tt.destination.namespace, pods.workloads)
        proxy = {p.port for w in pods.workloads for p in w.container_ports
                 if p.name in PROXY_PORT_NAMES}
        for what in found.unresolved:
            em.finding(tt, tt.path("destination"), FindingReason.UNRESOLVED_REFERENCE,
                       f"{what}: its port on the pods {_selector_text(pods)} is unknown, so it gets "
                       f"no Server; {linkerd_default(pods.workloads, 'there')}")
        return [p for p in found.tcp if p not in proxy]

    def _http(self, tt: TrafficTarget, g: Grant, em: Emitter) -> list[Obj]:
        """Route matches of an HTTP grant; a match Linkerd cannot take is dropped (fail closed)."""
        assert g.http is not None
        out: list[Obj] = []
        for m, m_field in zip(g.http, g.http_fields, strict=True):
            matches, problem = linkerd_matches(m)
            if problem is not None:
                em.finding(tt, m_field, FindingReason.ACCESS_FAIL_CLOSED,
                           f"match {m.name!r}: {problem}; it allows nothing")
                continue
            out.extend(matches)
        if len(out) > MAX_MATCHES:
            em.finding(tt, g.field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"{len(out)} route matches exceed the Linkerd HTTPRoute limit of {MAX_MATCHES}; "
                       "the HTTP rules grant nothing")
            return []
        return out

    def finish(self, em: Emitter) -> None:
        run = em.state(_Run)
        self._complete(run, em)
        names = _Names()
        targets = {(tt.meta.namespace, tt.meta.name): tt
                   for server in run.servers.values() for tt in server.targets()}
        authn = {key: self._authn(targets[key], em, names) for key in sorted(targets)}
        for key in sorted(run.servers):
            self._server(run.servers[key], em, names, authn)

    def _authn(self, tt: TrafficTarget, em: Emitter, names: _Names) -> str:
        ns = tt.destination.namespace
        name = names.take("MeshTLSAuthentication", ns, tt.meta.name)
        refs: list[Obj] = []
        for s in dict.fromkeys(tt.sources):
            refs.append({"kind": "ServiceAccount", "name": s.name, "namespace": s.namespace})
        em.emit(AUTHN_API, "MeshTLSAuthentication", ns, name, {"identityRefs": refs}, [tt])
        return name

    def _server(self, server: _Server, em: Emitter, names: _Names,
                authn: dict[tuple[str, str], str]) -> None:
        ns = server.namespace
        base = f"{server.service_account}-{server.port}"
        if server.selector_count > 1:
            base = f"{base}-{server.selector_index + 1}"
        name = names.take("Server", ns, base)
        spec: Obj = {"podSelector": {"matchLabels": dict(server.selector)}, "port": server.port,
                     "proxyProtocol": _protocol(server)}
        if em.profile.has(Feature.LINKERD_SERVER_ACCESS_POLICY):
            spec["accessPolicy"] = "deny"
        # Before accessPolicy (Server v1beta1) a Server denies what no authorization allows.
        em.emit(em.profile.api(POLICY_GROUP, "Server"), "Server", ns, name, spec,
                [*server.targets(), *server.denies])
        server_ref = {"group": POLICY_GROUP, "kind": "Server", "name": name}

        def policy(tt: TrafficTarget, target: Obj) -> None:
            authn_name = authn[(tt.meta.namespace, tt.meta.name)]
            em.emit(AUTHZ_API, "AuthorizationPolicy", ns,
                    names.take("AuthorizationPolicy", ns, f"{authn_name}-{name}"), {
                        "targetRef": target,
                        "requiredAuthenticationRefs": [
                            {"group": POLICY_GROUP, "kind": "MeshTLSAuthentication", "name": authn_name},
                        ],
                    }, [tt])

        for tt in server.l4:
            policy(tt, dict(server_ref))
        if server.http and server.l4:
            # Requests matching no route are refused, which would take HTTP
            # away from the L4 sources; a catch-all route without a policy of
            # its own is authorized by the Server-level policies only.
            em.emit(em.profile.api(POLICY_GROUP, "HTTPRoute"), "HTTPRoute", ns,
                    names.take("HTTPRoute", ns, f"{name}-l4-authz"), {
                "parentRefs": [dict(server_ref)],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
            }, server.l4)
        for tt, matches in server.http:
            route = names.take("HTTPRoute", ns, f"{authn[(tt.meta.namespace, tt.meta.name)]}-{name}-authz")
            em.emit(em.profile.api(POLICY_GROUP, "HTTPRoute"), "HTTPRoute", ns, route,
                    {"parentRefs": [dict(server_ref)], "rules": rules_of(matches)}, [tt])
            policy(tt, {"group": POLICY_GROUP, "kind": "HTTPRoute", "name": route})
        if server.http:
            first = server.http[0][0]
            em.finding(first, first.path(first.rules_field), FindingReason.PREREQUISITE,
                       f"Server {ns}/{name} has HTTPRoutes, so Linkerd no longer authorizes kubelet "
                       f"probes on port {server.port} by default; if probes use this port, add an "
                       "HTTPRoute for their paths with a NetworkAuthentication policy")
        # Each request is matched to one route only, the most specific (on a
        # tie, the oldest), and authorized by that route's policy or the
        # Server's: where another target's route can win, sources not also
        # allowed there can be refused.
        l4_sources = {s for tt in server.l4 for s in tt.sources}
        for tt, matches in server.http:
            others = sorted({other.meta.name for other, theirs in server.http
                             if not set(tt.sources) <= set(other.sources) | l4_sources
                             and any(may_overlap(a, b) for a in matches for b in theirs)})
            rivals = [f"the routes of {', '.join(others)}"] if others else []
            if server.l4 and not set(tt.sources) <= l4_sources and any(map(ties_catch_all, matches)):
                rivals.append(f"the catch-all route of {', '.join(sorted(t.meta.name for t in server.l4))}")
            if rivals:
                em.finding(tt, tt.path(tt.rules_field), FindingReason.ACCESS_FAIL_CLOSED,
                           f"Linkerd matches each request to one HTTPRoute of Server {ns}/{name} "
                           f"(the most specific; on a tie, the oldest); requests that also match "
                           f"{'; '.join(rivals)} are refused to these sources when Linkerd picks "
                           "that route (access is only ever narrower)")
