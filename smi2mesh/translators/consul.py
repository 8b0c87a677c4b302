"""Target ``consul``: consul-k8s config-entry CRDs (``consul.hashicorp.com/v1alpha1``).

Consul keys every config entry by *service name*. consul-k8s registers a pod
under the name of the Kubernetes Service selecting it, and with ACLs enabled
its auth method only lets a pod log in as the service named like its
ServiceAccount. So SMI identities (ServiceAccounts) map to Consul services of
the same name, and SMI Services (split roots and backends) map to themselves.

* TrafficSplit without ``matches`` -> ServiceSplitter named after the root.
* TrafficSplit with ``matches`` -> ServiceRouter named after the root, one
  route per HTTP match, each to a virtual service ``<root>-smi-<split>``
  that a ServiceSplitter (plus its ServiceDefaults, which we own) splits
  over the backends. Requests no route matches fall through the router to
  the root service itself, as SMI requires.
* TrafficTarget -> one ServiceIntentions per destination, merged over every
  TrafficTarget naming it. Intentions have no ports and Consul's mesh carries
  no UDP, so port-scoped and UDP grants fail closed.

Source namespaces: ``sources[].namespace`` is a Consul *Enterprise* namespace.
Consul CE has a single namespace into which consul-k8s registers services of
every Kubernetes namespace, so a bare name would also match a same-named
service of another Kubernetes namespace. Every source therefore names its
namespace, which assumes Enterprise namespaces mirroring the Kubernetes ones;
on CE consul-k8s rejects the object, so access fails closed there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import HeaderMatch, HTTPMatch, Protocol, ServicePort, TrafficSplit, TrafficTarget
from smi2mesh.regex import MatchType, classify_path, classify_value
from smi2mesh.translators.base import Emitter, Grant, Obj, OutputKind, Translator, grants, split_matches
from smi2mesh.translators.gateway_api import is_tcp_only

CONSUL_V1ALPHA1 = "consul.hashicorp.com/v1alpha1"
# Kubernetes object names (DNS-1123 subdomains) are at most this long.
_MAX_NAME = 253
# A regex that full-matches only the empty string: Consul treats an empty
# string field as unset, which would drop the constraint.
_EMPTY_ONLY = "^$"


class ConsulTranslator(Translator):
    """TrafficSplit -> ServiceSplitter/ServiceRouter; TrafficTarget -> ServiceIntentions."""

    name: ClassVar[str] = "consul"
    description: ClassVar[str] = "Consul ServiceSplitter/ServiceRouter/ServiceIntentions (consul-k8s CRDs)"
    emits: ClassVar[tuple[OutputKind, ...]] = (
        OutputKind("consul.hashicorp.com/v1alpha1", "ServiceSplitter", "servicesplitters"),
        OutputKind("consul.hashicorp.com/v1alpha1", "ServiceRouter", "servicerouters"),
        OutputKind("consul.hashicorp.com/v1alpha1", "ServiceDefaults", "servicedefaults"),
        OutputKind("consul.hashicorp.com/v1alpha1", "ServiceIntentions", "serviceintentions"),
    )

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        ns, root = ts.meta.namespace, ts.service
        if not em.claim(("consul-service", ns, root), ts, ts.path("service"),
                        f"Consul service {ns}/{root}"):
            return
        matched = split_matches(ts, em)
        if matched is None:
            return
        protocol = _chain_protocol(ts, em)
        if protocol is None:
            return
        splits = _splits(ts)
        if not matched:
            em.emit(CONSUL_V1ALPHA1, "ServiceSplitter", ns, root, {"splits": splits}, [ts])
        else:
            virtual = f"{root}-smi-{ts.meta.name}"
            if len(virtual) > _MAX_NAME:
                em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                           f"the virtual service name {virtual!r} exceeds {_MAX_NAME} characters; "
                           "split not emitted")
                return
            if not em.claim(("consul-service", ns, virtual), ts, ts.path("matches"),
                            f"Consul service {ns}/{virtual}"):
                return
            routes = [{"match": {"http": _http_match(m)}, "destination": {"service": virtual}}
                      for _, m in matched]
            em.emit(CONSUL_V1ALPHA1, "ServiceRouter", ns, root, {"routes": routes}, [ts])
            em.emit(CONSUL_V1ALPHA1, "ServiceSplitter", ns, virtual, {"splits": splits}, [ts])
            em.emit(CONSUL_V1ALPHA1, "ServiceDefaults", ns, virtual, {"protocol": protocol}, [ts])
        chain = sorted({root, *(b.service for b in ts.backends)})
        em.finding(ts, ts.path("service"), FindingReason.PREREQUISITE,
                   f"Consul routes and splits only when every service of the chain has protocol "
                   f"{protocol!r}: ServiceDefaults of {', '.join(chain)} must set it "
                   "(not owned by smi2mesh); a pod registers as one Consul service only, so pods "
                   "selected by the root and a backend Service need the label "
                   "consul.hashicorp.com/service-ignore on one of them")

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        """Nothing per object: intentions are merged per destination in :meth:`finish`."""

    def finish(self, em: Emitter) -> None:
        by_dest: dict[tuple[str, str], list[TrafficTarget]] = {}
        for tt in sorted(em.inputs.targets, key=lambda t: (t.meta.namespace, t.meta.name)):
            by_dest.setdefault((tt.destination.namespace, tt.destination.name), []).append(tt)
        for (ns, dest), tts in sorted(by_dest.items()):
            _intentions(ns, dest, tts, em)


# ---- TrafficSplit ------------------------------------------------------------


def _port_protocol(port: ServicePort) -> str:
    """Consul protocol of an HTTP-ish Service port (appProtocol, else name prefix)."""
    proto = port.app_protocol.lower() or port.name.split("-", 1)[0]
    if proto == "grpc":
        return "grpc"
    if proto in ("http2", "h2c", "kubernetes.io/h2c"):
        return "http2"
    return "http"


def _chain_protocol(ts: TrafficSplit, em: Emitter) -> str | None:
    """The protocol the discovery chain needs, or None (with findings) when it is not L7.

    Consul gives a service one protocol and requires the same protocol on every
    service of a chain; routers and splitters need an HTTP-based one.
    """
    svc = em.inputs.service(ts.meta.namespace, ts.service)
    if svc is None or not svc.ports:
        return "http"
    tcp: list[ServicePort] = []
    for p in svc.ports:
        if p.protocol.upper() == "TCP":
            tcp.append(p)
        else:
            em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                       f"port {p.port}/{p.protocol} of Service {ts.service}: Consul's service mesh "
                       "proxies TCP only; traffic on it is not split")
    if not tcp:
        return None
    opaque = [p for p in tcp if is_tcp_only(p)]
    if opaque:
        ports = ", ".join(str(p.port) for p in opaque)
        em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                   f"port {ports} of Service {ts.service} is not HTTP; Consul ServiceSplitter and "
                   "ServiceRouter are L7-only (they need protocol http for the whole service), so "
                   "the split is not emitted")
        return None
    protocols = sorted({_port_protocol(p) for p in tcp})
    return protocols[0] if len(protocols) == 1 else "http"


def _percent(hundredths: int) -> int | float:
    """A weight in 0.01 % units as Consul's percentage; whole numbers stay integers."""
    if hundredths % 100 == 0:
        return hundredths // 100
    # n / 100 is the float closest to the decimal, so YAML shows e.g. 33.34.
    return hundredths / 100


def _splits(ts: TrafficSplit) -> list[Obj]:
    """Backends as Consul splits: percentages in 0.01 steps summing to exactly 100."""
    shares = weights.largest_remainder([b.weight_milli for b in ts.backends], 10000)
    return [{"service": b.service, "weight": _percent(s)}
            for b, s in zip(ts.backends, shares, strict=True)]


# ---- HTTP matches (routes and permissions share Consul's match shape) ----------


def _path_fields(path_regex: str | None) -> Obj:
    """Consul path fields for an SMI (prefix-anchored) path regex; {} means any path."""
    if path_regex is None:
        return {}
    pat = classify_path(path_regex)
    if pat.type is MatchType.ANY:
        return {}
    # Consul rejects pathExact/pathPrefix values without a leading "/".
    if pat.type is MatchType.EXACT and pat.value.startswith("/"):
        return {"pathExact": pat.value}
    if pat.type is MatchType.PREFIX and pat.value.startswith("/"):
        return {"pathPrefix": pat.value}
    return {"pathRegex": pat.full_regex() or _EMPTY_ONLY}


def _header(h: HeaderMatch) -> Obj:
    """One Consul header condition for a full-match SMI header regex."""
    pat = classify_value(h.value)
    if pat.type is MatchType.ANY:
        return {"name": h.name, "present": True}
    if pat.type is MatchType.EXACT:
        if not pat.value:
            return {"name": h.name, "regex": _EMPTY_ONLY}
        return {"name": h.name, "exact": pat.value}
    if pat.type is MatchType.PREFIX and pat.value:
        return {"name": h.name, "prefix": pat.value}
    if pat.type is MatchType.SUFFIX and pat.value:
        return {"name": h.name, "suffix": pat.value}
    return {"name": h.name, "regex": pat.full_regex()}


def _http_match(m: HTTPMatch) -> Obj:
    """Consul ``http`` match criteria equal to one SMI HTTP match."""
    http = _path_fields(m.path_regex)
    if m.methods:
        http["methods"] = list(m.methods)
    if m.headers:
        http["header"] = [_header(h) for h in m.headers]
    # Consul rejects an empty permission; every request path starts with "/".
    return http or {"pathPrefix": "/"}


# ---- TrafficTarget -----------------------------------------------------------


@dataclass
class _SourceAccess:
    """What one source may do at one destination, merged over TrafficTargets."""

    full: bool = False
    permissions: list[Obj] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def permit(self, http: Obj) -> None:
        key = json.dumps(http, sort_keys=True)
        if key not in self.seen:
            self.seen.add(key)
            self.permissions.append({"action": "allow", "http": http})


def _usable(tt: TrafficTarget, g: Grant, em: Emitter) -> bool:
    """Whether a grant can be an intention without widening it (else a finding)."""
    if g.protocol is Protocol.UDP:
        em.finding(tt, g.field, FindingReason.ACCESS_FAIL_CLOSED,
                   "Consul's service mesh carries no UDP; the UDP grant is not emitted")
        return False
    if g.ports:
        field = tt.port_path() if tt.port is not None else g.field
        em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                   f"Consul intentions have no ports: the grant is limited to port(s) "
                   f"{', '.join(map(str, g.ports))} and would widen to every port; not emitted")
        return False
    return True


def _intentions(ns: str, dest: str, tts: Sequence[TrafficTarget], em: Emitter) -> None:
    """Emit the one ServiceIntentions of destination service *ns*/*dest*."""
    access: dict[tuple[str, str], _SourceAccess] = {}
    contributors: list[TrafficTarget] = []
    for tt in tts:
        usable = [g for g in grants(tt, em) if _usable(tt, g, em)]
        if not usable:
            continue
        contributors.append(tt)
        has_http = False
        for s in tt.sources:
            acc = access.setdefault((s.namespace, s.name), _SourceAccess())
            for g in usable:
                if g.http is None:
                    acc.full = True
                    continue
                has_http = True
                for m in g.http:
                    acc.permit(_http_match(m))
        em.finding(tt, tt.path("destination"), FindingReason.PREREQUISITE,
                   _intention_prerequisites(dest, has_http))
    if not contributors:
        return
    sources: list[Obj] = []
    for (src_ns, src_name), acc in sorted(access.items()):
        entry: Obj = {"name": src_name, "namespace": src_ns}
        # action and permissions are mutually exclusive; an L4 allow already
        # covers every HTTP request.
        if acc.full:
            entry["action"] = "allow"
        else:
            entry["permissions"] = acc.permissions
        sources.append(entry)
    em.emit(CONSUL_V1ALPHA1, "ServiceIntentions", ns, dest,
            {"destination": {"name": dest}, "sources": sources}, contributors)


def _intention_prerequisites(dest: str, has_http: bool) -> str:
    parts = [
        "Consul Enterprise namespaces mirroring Kubernetes ones "
        "(connectInject.consulNamespaces.mirroringK8S, no prefix), since every source names its "
        "namespace and Consul CE rejects that",
        "ACLs, which bind a pod's Consul service name to its ServiceAccount name",
        "default-deny (ACL default policy or a '*' deny intention)",
    ]
    if has_http:
        parts.append(f"an HTTP protocol for service {dest} in its ServiceDefaults, as L7 "
                     "permissions need")
    return "ServiceIntentions need " + "; ".join(parts)
