"""Target ``consul``: consul-k8s config-entry CRDs (``consul.hashicorp.com/v1alpha1``, v2.0.3).

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
  TrafficTarget naming it, ending with a deny from ``*``: Consul's default
  for unmatched sources is the ACL default policy, which may be allow, and an
  intention of lower precedence is Consul's own way to set a destination's
  default. Sources with L7 permissions end with a deny of every request for
  the same reason (Consul's Envoy RBAC sends requests no permission matches to
  that default, not to the ``*`` intention: ``removeSourcePrecedence`` in
  consul's ``agent/xds/rbac.go``).

Ports: intentions have none, but a connect-injected service has exactly the
ports consul-k8s registers (see :func:`_registered_ports`): a grant limited
to ports containing all of them is exact, one containing none of them grants
nothing. Consul's mesh carries no UDP.

Namespaces (``--consul-namespaces``): with ``off`` (Consul CE, one Consul
namespace for every Kubernetes one) sources carry no namespace, so a name is
one identity across the cluster; a source or destination whose name another
namespace also has fails closed. With ``mirror`` (Enterprise, namespaces
mirroring the Kubernetes ones) every source names its namespace.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import (
    HeaderMatch,
    HTTPMatch,
    Identity,
    Protocol,
    ServicePort,
    SmiObject,
    TrafficSplit,
    TrafficTarget,
    Workload,
)
from smi2mesh.regex import MatchType, classify_path, classify_value
from smi2mesh.translators.base import (
    ConsulNamespaces,
    Emitter,
    Grant,
    Obj,
    OutputKind,
    Translator,
    grants,
    split_matches,
)
from smi2mesh.translators.gateway_api import is_tcp_only

CONSUL_V1ALPHA1 = "consul.hashicorp.com/v1alpha1"
# Kubernetes object names (DNS-1123 subdomains) are at most this long.
_MAX_NAME = 253
# A regex that full-matches only the empty string: Consul treats an empty
# string field as unset, which would drop the constraint.
_EMPTY_ONLY = "^$"
WILDCARD = "*"
# consul-k8s pod annotations (control-plane/connect-inject/constants/annotations_and_labels.go).
PORT_ANNOTATION = "consul.hashicorp.com/connect-service-port"
DEFAULT_PORT_ANNOTATION = "consul.hashicorp.com/connect-service-default-port"
SERVICE_ANNOTATION = "consul.hashicorp.com/connect-service"
# What applies to a destination that gets no ServiceIntentions.
CONSUL_DEFAULT = ("Consul's default applies to it: the ACL default policy (allow unless "
                  "acl.default_policy is deny)")


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
        # On Consul CE a service name is one service for every namespace.
        scope = ns if em.options.consul_namespaces is ConsulNamespaces.MIRROR else "*"
        if not em.claim(("consul-service", scope, root), ts, ts.path("service"),
                        f"Consul service {ns}/{root}"):
            return
        for path, name in [(ts.path("service"), root),
                           *((ts.path(f"backends[{i}].service"), b.service)
                             for i, b in enumerate(ts.backends))]:
            clash = _ambiguous(Identity(name, ns), em)
            if clash:
                em.finding(ts, path, FindingReason.NOT_EXPRESSIBLE,
                           f"with --consul-namespaces off (Consul CE) service {name!r} is one Consul "
                           f"service for every namespace, and namespace(s) {', '.join(clash)} also "
                           f"have a ServiceAccount or Service {name!r}; the split would route their "
                           "traffic too, so it is not emitted")
                return
        matched = split_matches(ts, em)
        if matched is None:
            return
        protocol = _chain_protocol(ts, em)
        if protocol is None:
            return
        splits = _splits(ts, em)
        if not matched:
            em.emit(CONSUL_V1ALPHA1, "ServiceSplitter", ns, root, {"splits": splits}, [ts])
        else:
            virtual = f"{root}-smi-{ts.meta.name}"
            if len(virtual) > _MAX_NAME:
                em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                           f"the virtual service name {virtual!r} exceeds {_MAX_NAME} characters; "
                           "split not emitted")
                return
            if not em.claim(("consul-service", scope, virtual), ts, ts.path("matches"),
                            f"Consul service {ns}/{virtual}"):
                return
            routes = [{"match": {"http": _http_match(m)}, "destination": {"service": virtual}}
                      for _, m in matched]
            em.emit(CONSUL_V1ALPHA1, "ServiceRouter", ns, root, {"routes": routes}, [ts])
            em.emit(CONSUL_V1ALPHA1, "ServiceSplitter", ns, virtual, {"splits": splits}, [ts])
            em.emit(CONSUL_V1ALPHA1, "ServiceDefaults", ns, virtual, {"protocol": protocol}, [ts])
        run = em.state(_Run)
        for svc in sorted({root, *(b.service for b in ts.backends)}):
            run.protocol.setdefault((ns, svc), protocol)
        run.first(ts, ts.path("service"))
        run.split_seen = True

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        """Nothing per object: intentions are merged per destination in :meth:`finish`."""

    def finish(self, em: Emitter) -> None:
        by_dest: dict[tuple[str, str], list[TrafficTarget]] = {}
        for tt in sorted(em.inputs.targets, key=lambda t: (t.meta.namespace, t.meta.name)):
            by_dest.setdefault((tt.destination.namespace, tt.destination.name), []).append(tt)
        for (ns, dest), tts in sorted(by_dest.items()):
            _intentions(ns, dest, tts, em)
        em.state(_Run).report(em)


@dataclass
class _Run:
    """Prerequisites gathered over one run, reported once each (not per object)."""

    # (namespace, service) -> the protocol its ServiceDefaults must set.
    protocol: dict[tuple[str, str], str] = field(default_factory=dict)
    # The first object needing a prerequisite, and the field it is reported at.
    anchor: tuple[SmiObject, str] | None = None
    split_seen: bool = False
    intentions_seen: bool = False

    def first(self, obj: SmiObject, field: str) -> None:
        if self.anchor is None:
            self.anchor = (obj, field)

    def report(self, em: Emitter) -> None:
        if self.anchor is None:
            return
        obj, path = self.anchor
        if self.protocol:
            services = ", ".join(f"{ns}/{svc} ({proto})"
                                 for (ns, svc), proto in sorted(self.protocol.items()))
            em.finding(obj, path, FindingReason.PREREQUISITE,
                       "Consul applies routers, splitters and L7 intention permissions only to "
                       "services whose ServiceDefaults (not owned by smi2mesh) set an HTTP-based "
                       f"protocol; set it for: {services}")
        if self.split_seen:
            em.finding(obj, path, FindingReason.PREREQUISITE,
                       "a pod registers as one Consul service only, so pods selected both by a "
                       "split's root and a backend Service need the label "
                       "consul.hashicorp.com/service-ignore on one of them")
        if self.intentions_seen:
            mode = ("; with --consul-namespaces mirror, also Consul Enterprise namespaces "
                    "mirroring the Kubernetes ones (connectInject.consulNamespaces.mirroringK8S, "
                    "no prefix)" if em.options.consul_namespaces is ConsulNamespaces.MIRROR else "")
            em.finding(obj, path, FindingReason.PREREQUISITE,
                       "ServiceIntentions need Consul ACLs, which bind a pod's Consul service name "
                       f"to its ServiceAccount name, so that intentions by name identify "
                       f"ServiceAccounts{mode}")


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


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _float32_total(percents: Sequence[float]) -> float:
    """The sum consul-k8s checks: each weight decoded into a float32, added in float32.

    hashicorp/consul-k8s v2.0.3 control-plane/api/v1alpha1/servicesplitter_types.go
    (ServiceSplits.validate) rejects a splitter unless that sum is exactly 100.
    Adding two float32 values in a double is exact here (their exponents are
    close), so rounding the double sum to float32 is float32 addition.
    """
    total = 0.0
    for p in percents:
        total = _float32(total + _float32(p))
    return total


# Orders tried before giving up on a split's exact shares; n! grows fast and
# a failing order is rare (about one 2-5 way split in ten needs a second one).
_MAX_ORDERS = 5040


def _exact_order(hundredths: Sequence[int]) -> list[int] | None:
    """An order of the splits whose float32 sum is exactly 100, or None.

    The order of a splitter's splits does not change how traffic is divided,
    so reordering keeps the meaning exactly; the written order prefers the
    backends' own, then descending weights.
    """
    percents = [h / 100 for h in hundredths]
    n = len(percents)
    natural = list(range(n))
    tries = itertools.chain(
        (natural, sorted(natural, key=lambda i: (-hundredths[i], i))),
        (list(p) for p in itertools.islice(itertools.permutations(natural), _MAX_ORDERS)))
    for order in tries:
        if _float32_total([percents[i] for i in order]) == 100:
            return order
    return None


def _splits(ts: TrafficSplit, em: Emitter) -> list[Obj]:
    """Backends as Consul splits: percentages in 0.01 steps that consul-k8s sums to exactly 100."""
    shares = weights.largest_remainder([b.weight_milli for b in ts.backends], 10000)
    order = _exact_order(shares)
    if order is None:
        # No order works: move 0.01 between two backends, the smallest change
        # that consul-k8s accepts, and say so.
        for i, j in itertools.permutations(range(len(shares)), 2):
            if shares[i] == 0 or shares[j] == 0:
                continue
            moved = list(shares)
            moved[i] -= 1
            moved[j] += 1
            order = _exact_order(moved)
            if order is not None:
                em.finding(ts, ts.path("backends"), FindingReason.REWRITTEN,
                           f"weights of {ts.backends[i].service} and {ts.backends[j].service} "
                           "shifted by 0.01 % so that consul-k8s's float32 sum is exactly 100")
                shares = moved
                break
    backends = list(zip(ts.backends, shares, strict=True))
    return [{"service": backends[i][0].service, "weight": _percent(backends[i][1])}
            for i in (order if order is not None else range(len(backends)))]


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


@dataclass(frozen=True, slots=True)
class _Ports:
    """The ports of a destination's Consul service, or why they are not known."""

    ports: frozenset[int]
    unknown: str = ""


def _port_token(token: str, w: Workload) -> int:
    """consul-k8s ``common.PortValue``: a container port name, else a number (0: none)."""
    for p in w.container_ports:
        if p.name == token:
            return p.port
    try:
        value = int(token, 0)  # Go's strconv.ParseInt(value, 0, 32)
    except ValueError:
        return 0
    return value if 0 < value < 1 << 31 else 0


def _registered_ports(w: Workload, service: str, mode: ConsulNamespaces) -> frozenset[int] | str:
    """The ports consul-k8s v2.0.3 registers for *w*'s pods as Consul service *service*.

    Re-expressed from consul-k8s v2.0.3 (``control-plane/connect-inject``):
    the webhook sets ``connect-service-port`` to every port of the *first*
    container when the pod has no such annotation (``defaultAnnotations`` /
    ``defaultConnectServicePortsAnnotation``, webhook/mesh_webhook.go:651-684);
    the endpoints controller resolves each comma-separated entry with
    ``common.PortValue`` (a container port name, else a number; common.go:54-68)
    and, on Consul CE, registers only the default one: the entry named by
    ``connect-service-default-port``, else the first (``createServiceRegistrations``
    and ``servicePortsForRegistration``, endpoints_controller.go:480-490 and
    1949-2080). Enterprise registers them all. A string return says why the
    ports are not known.
    """
    names = [n.strip() for n in w.pod_annotations.get(SERVICE_ANNOTATION, "").split(",") if n.strip()]
    if names and names != [service]:
        return (f"{w.kind} {w.meta.namespace}/{w.meta.name} registers as Consul service(s) "
                f"{', '.join(names)} ({SERVICE_ANNOTATION})")
    raw = w.pod_annotations.get(PORT_ANNOTATION, "").strip()
    if raw:
        tokens = [t.strip() for t in raw.split(",")]
    else:
        tokens = [p.name or str(p.port) for p in w.container_ports if p.container == 0]
    resolved = [(t, _port_token(t, w)) for t in tokens if t]
    resolved = [(t, p) for t, p in resolved if p > 0]
    if not resolved:
        return (f"{w.kind} {w.meta.namespace}/{w.meta.name} has no {PORT_ANNOTATION} annotation "
                "and its first container declares no port")
    if mode is ConsulNamespaces.MIRROR:
        return frozenset(p for _, p in resolved)
    wanted = w.pod_annotations.get(DEFAULT_PORT_ANNOTATION, "").strip()
    for token, port in resolved:
        if wanted and (token == wanted or str(port) == wanted):
            return frozenset((port,))
    return frozenset((resolved[0][1],))


def _service_ports(ns: str, dest: str, em: Emitter) -> _Ports:
    """Ports of Consul service *dest*: those of every workload running as ServiceAccount *ns*/*dest*."""
    workloads = em.inputs.workloads_of(ns, dest)
    if not workloads:
        return _Ports(frozenset(), f"no workload in the input runs as ServiceAccount {ns}/{dest}")
    ports: set[int] = set()
    for w in workloads:
        found = _registered_ports(w, dest, em.options.consul_namespaces)
        if isinstance(found, str):
            return _Ports(frozenset(), found)
        ports |= found
    return _Ports(frozenset(ports))


def _not_http(ns: str, dest: str, em: Emitter) -> str:
    """Why service *dest* cannot take L7 permissions, or "" when it may.

    L7 permissions need an HTTP-based protocol for the destination; a
    Service whose TCP ports all declare another protocol says it has none.
    """
    svc = em.inputs.service(ns, dest)
    tcp = [p for p in (svc.ports if svc else ()) if p.protocol.upper() == "TCP"]
    if not tcp or not all(is_tcp_only(p) for p in tcp):
        return ""
    ports = ", ".join(f"{p.port}/{p.app_protocol or p.name}" for p in tcp)
    return f"Service {ns}/{dest} declares no HTTP port ({ports})"


def _port_scope(tt: TrafficTarget, g: Grant, ports: _Ports, em: Emitter) -> bool:
    """Whether a port-limited grant is exact on this service (else a finding)."""
    field = tt.port_path() if tt.port is not None else g.field
    wanted = ", ".join(map(str, g.ports))
    dest = f"{tt.destination.namespace}/{tt.destination.name}"
    if ports.unknown:
        em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                   f"Consul intentions have no ports and the grant is limited to port(s) {wanted}, "
                   f"but the ports Consul service {dest} receives are not known ({ports.unknown}); "
                   "the grant is not emitted")
        return False
    have = ", ".join(map(str, sorted(ports.ports)))
    if ports.ports <= set(g.ports):
        return True
    if not ports.ports & set(g.ports):
        em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                   f"Consul service {dest} receives mesh traffic on port(s) {have} only, which the "
                   f"grant for port(s) {wanted} does not include; it grants nothing")
    else:
        em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                   f"Consul service {dest} receives port(s) {have} and intentions have no ports, so "
                   f"the grant for port(s) {wanted} would widen to all of them; not emitted")
    return False


def _ambiguous(identity: Identity, em: Emitter) -> list[str]:
    """Other namespaces that have *identity*'s name, when Consul cannot tell them apart."""
    if em.options.consul_namespaces is not ConsulNamespaces.OFF:
        return []
    return sorted(em.inputs.namespaces_with_identity(identity.name) - {identity.namespace})


def _intentions(ns: str, dest: str, tts: Sequence[TrafficTarget], em: Emitter) -> None:
    """Emit the one ServiceIntentions of destination service *ns*/*dest*."""
    others = _ambiguous(Identity(dest, ns), em)
    if others:
        for tt in tts:
            em.finding(tt, tt.path("destination"), FindingReason.ACCESS_FAIL_CLOSED,
                       f"with --consul-namespaces off (Consul CE) service {dest!r} is one Consul "
                       f"service for every namespace, and namespace(s) {', '.join(others)} also "
                       f"have a ServiceAccount or Service {dest!r}; intentions for {ns}/{dest} "
                       f"would apply there too, so none are emitted and {CONSUL_DEFAULT}")
        return
    mirror = em.options.consul_namespaces is ConsulNamespaces.MIRROR
    ports = _service_ports(ns, dest, em)
    not_http = _not_http(ns, dest, em)
    access: dict[tuple[str, str], _SourceAccess] = {}
    for tt in tts:
        full = False
        http: list[HTTPMatch] = []
        for g in grants(tt, em):
            if g.protocol is Protocol.UDP:
                em.finding(tt, g.field, FindingReason.ACCESS_FAIL_CLOSED,
                           "Consul's service mesh carries no UDP; the UDP grant is not emitted")
                continue
            if g.ports and not _port_scope(tt, g, ports, em):
                continue
            if g.http is None:
                full = True
            elif not_http:
                widen = em.options.widen_l7_to_l4
                for path in sorted(set(g.http_fields)):
                    if widen:
                        em.finding(tt, path, FindingReason.WIDENED,
                                   f"{not_http}, so Consul cannot apply L7 permissions; granted at "
                                   "L4 instead (--widen-l7-to-l4): every request of these sources "
                                   "is allowed")
                    else:
                        em.finding(tt, path, FindingReason.ACCESS_FAIL_CLOSED,
                                   f"{not_http}, so Consul cannot apply L7 permissions; the HTTP "
                                   "rule grants nothing (--widen-l7-to-l4 would grant it at L4)")
                full = full or widen
            else:
                http.extend(g.http)
        if not full and not http:
            continue
        for i, s in enumerate(tt.sources):
            clash = _ambiguous(s, em)
            if clash:
                em.finding(tt, tt.path(f"sources[{i}]"), FindingReason.ACCESS_FAIL_CLOSED,
                           f"with --consul-namespaces off (Consul CE) a source is a service name "
                           f"for every namespace, and namespace(s) {', '.join(clash)} also have a "
                           f"ServiceAccount or Service {s.name!r}; source {s.namespace}/{s.name} "
                           "is not emitted")
                continue
            acc = access.setdefault((s.namespace, s.name), _SourceAccess())
            acc.full = acc.full or full
            for m in http:
                acc.permit(_http_match(m))
            if http and not full:
                em.state(_Run).protocol.setdefault((ns, dest), "http")
    sources: list[Obj] = []
    for (src_ns, src_name), acc in sorted(access.items()):
        entry: Obj = {"name": src_name, "namespace": src_ns} if mirror else {"name": src_name}
        # action and permissions are mutually exclusive; an L4 allow already
        # covers every HTTP request.
        if acc.full:
            entry["action"] = "allow"
        else:
            entry["permissions"] = [*acc.permissions, _deny_rest()]
        sources.append(entry)
    deny: Obj = {"name": WILDCARD, "namespace": WILDCARD} if mirror else {"name": WILDCARD}
    deny["action"] = "deny"
    run = em.state(_Run)
    run.first(tts[0], tts[0].path("destination"))
    run.intentions_seen = True
    em.emit(CONSUL_V1ALPHA1, "ServiceIntentions", ns, dest,
            {"destination": {"name": dest}, "sources": [*sources, deny]}, tts)


def _deny_rest() -> Obj:
    """The last permission of every L7 source: Consul sends requests no permission
    matches to its default (possibly allow), not to the ``*`` deny."""
    return {"action": "deny", "http": {"pathPrefix": "/"}}
