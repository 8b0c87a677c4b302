"""What every translator shares: the emitter, access grants and pod selectors.

A translator subclasses :class:`Translator` and implements ``split`` and
``target``; the base walks the inputs in a deterministic order, reports
ignored fields, and sorts the result. Translators never do I/O.

Access semantics are decided once, here, in :func:`grants`, so that every
mesh enforces the same meaning of a TrafficTarget:

* ``destination.port`` (access v1alpha1/v1alpha2) restricts every rule.
* HTTPRouteGroup rules allow only the named HTTP matches. If the target also
  has TCPRoute rules, their ports scope the HTTP rules (the SMI v1alpha3
  L7 example); they do not add a separate L4 allow.
* A TrafficTarget with only TCPRoute/UDPRoute rules is a plain L4 allow on
  their ports (no ports: every port).
* Anything unresolved (a missing route, an unknown match name) contributes
  nothing: access only ever becomes narrower, never broader.

A grant that is dropped is only denied if the destination is under a
deny-by-default in the mesh; emitting nothing leaves the mesh's own default
(allow-all on Istio and Linkerd). So the findings here speak of what the
TrafficTarget *grants*; each translator gives every destination it can select
a deny-by-default and, where it cannot select one, says which default applies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from smi2mesh.findings import Finding, FindingReason
from smi2mesh.model import (
    HTTPMatch,
    Identity,
    Inputs,
    Protocol,
    Rule,
    ServicePort,
    SmiKind,
    SmiObject,
    TrafficSplit,
    TrafficTarget,
    Workload,
)
from smi2mesh.translators import profiles
from smi2mesh.translators.profiles import Profile

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "smi2mesh"
SOURCE_ANNOTATION = "smi2mesh.io/source"

Obj = dict[str, Any]
_State = TypeVar("_State")


class ConsulNamespaces(StrEnum):
    """How Consul maps Kubernetes namespaces (consul-k8s ``connectInject.consulNamespaces``)."""

    # Consul CE: no Consul namespaces; a service name is one cluster-wide identity.
    OFF = "off"
    # Consul Enterprise with namespace mirroring: each Kubernetes namespace is one.
    MIRROR = "mirror"


@dataclass(frozen=True, slots=True)
class Options:
    """Knobs shared by every target."""

    trust_domain: str = "cluster.local"
    cluster_domain: str = "cluster.local"
    # For the ``smi`` target: API version per SMI group ("split", "access",
    # "specs"), e.g. {"split": "v1alpha2", ...}. Empty means the latest.
    smi_versions: Mapping[str, str] = field(default_factory=dict)
    consul_namespaces: ConsulNamespaces = ConsulNamespaces.OFF
    # Migration aid: grant an HTTP rule the mesh cannot enforce at L4 instead
    # of failing closed (each one is a Widened finding).
    widen_l7_to_l4: bool = False
    # Mesh release and Gateway API release to write for (smi2mesh.translators.profiles);
    # None: the target's newest release. It must be a profile of the target translated to.
    profile: Profile | None = None


@dataclass(frozen=True, slots=True)
class TranslationResult:
    """Mesh objects, sorted by kind, namespace and name, plus the findings."""

    objects: tuple[Obj, ...]
    findings: tuple[Finding, ...]


def source_ref(obj: SmiObject) -> str:
    """The value of the source annotation for one SMI object."""
    return f"{obj.kind}/{obj.meta.namespace}/{obj.meta.name}"


def sort_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """Output order: kind, namespace, name; apiVersion breaks ties between groups."""
    meta = obj.get("metadata", {})
    return (obj["kind"], meta.get("namespace", ""), meta.get("name", ""), obj["apiVersion"])


class Emitter:
    """Collects the objects and findings of one translation run."""

    def __init__(self, inputs: Inputs, options: Options, profile: Profile | None = None) -> None:
        self.inputs = inputs
        self.options = options
        # The API versions and features of the mesh release written for.
        self.profile = profile or options.profile or profiles.default("smi")
        self._objects: dict[tuple[str, str, str, str], Obj] = {}
        self._findings: list[Finding] = []
        self._claims: dict[tuple[str, ...], SmiObject] = {}
        self._state: dict[type, object] = {}

    def state(self, cls: type[_State]) -> _State:
        """The translator's scratch space for this run: one ``cls()``, made on first use.

        Translators are shared and stateless; what ``target()`` gathers for
        ``finish()`` lives here, so it ends with the run.
        """
        found = self._state.get(cls)
        if found is None:
            found = self._state[cls] = cls()
        assert isinstance(found, cls)
        return found

    def finding(self, obj: SmiObject, field: str, reason: FindingReason, message: str) -> None:
        """Report that *field* of *obj* is not (fully) expressed."""
        self._findings.append(
            Finding(obj.meta.namespace, obj.kind, obj.meta.name, field, reason, message)
        )

    def claim(self, key: tuple[str, ...], obj: SmiObject, field: str, what: str) -> bool:
        """Reserve a mesh-wide resource (a host, a service name) for *obj*.

        The first claimant wins (inputs are walked in namespace/name order);
        later ones get a DuplicateTarget finding and must emit nothing for it.
        """
        owner = self._claims.setdefault(key, obj)
        if owner is obj:
            return True
        self.finding(obj, field, FindingReason.DUPLICATE_TARGET,
                     f"{what} is already translated from {source_ref(owner)}; not emitted")
        return False

    def emit(self, api_version: str, kind: str, namespace: str, name: str,
             spec: Mapping[str, Any] | None, sources: Sequence[SmiObject], *,
             body_key: str | None = "spec", extra_labels: Mapping[str, str] | None = None,
             provenance: bool = True, annotations: Mapping[str, str] | None = None) -> None:
        """Add one object, labelled as ours and annotated with its SMI sources.

        ``body_key=None`` merges *spec* into the top level (SMI's v1alpha1
        layout). ``provenance=False`` leaves out our label and source
        annotation: re-emitted SMI objects keep only their own metadata.
        An empty *namespace* is a cluster-scoped object (no namespace field).
        """
        labels = {MANAGED_BY: MANAGER} if provenance else {}
        if extra_labels:
            labels.update(extra_labels)
        notes = dict(annotations or {})
        if provenance:
            notes[SOURCE_ANNOTATION] = ",".join(sorted({source_ref(s) for s in sources}))
        meta: Obj = {"name": name, "namespace": namespace} if namespace else {"name": name}
        if labels:
            meta["labels"] = labels
        if notes:
            meta["annotations"] = notes
        key = (api_version.split("/", maxsplit=1)[0], kind, namespace, name)
        if key in self._objects:
            self.finding(sources[0], "metadata.name", FindingReason.DUPLICATE_TARGET,
                         f"{kind} {namespace}/{name} is generated twice; the second one is not emitted")
            return
        obj: Obj = {"apiVersion": api_version, "kind": kind, "metadata": meta}
        if body_key is None:
            obj.update(spec or {})
        elif spec is not None:
            obj[body_key] = dict(spec)
        self._objects[key] = obj

    def result(self) -> TranslationResult:
        objects = tuple(sorted(self._objects.values(), key=sort_key))
        return TranslationResult(objects, tuple(sorted(self._findings)))


@dataclass(frozen=True, slots=True)
class OutputKind:
    """A kind a translator writes: the operator watches it, the chart grants it."""

    api_version: str
    kind: str
    plural: str
    # Cluster-scoped kinds are written by the CLI only (profiles.CLI_ONLY):
    # the operator neither watches nor grants them.
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""


# Every version a Gateway API profile may write them in (profiles.GatewayApi.api).
GATEWAY_HTTP_ROUTES = (
    OutputKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    OutputKind("gateway.networking.k8s.io/v1beta1", "HTTPRoute", "httproutes"),
)
GATEWAY_ROUTES = (
    *GATEWAY_HTTP_ROUTES,
    OutputKind("gateway.networking.k8s.io/v1", "TCPRoute", "tcproutes"),
    OutputKind("gateway.networking.k8s.io/v1alpha2", "TCPRoute", "tcproutes"),
)


class Translator(ABC):
    """One target mesh. Subclasses are stateless; state lives in the Emitter."""

    name: ClassVar[str]
    description: ClassVar[str]
    # Every kind translate() may emit; checked against the golden outputs.
    emits: ClassVar[tuple[OutputKind, ...]]

    def translate(self, inputs: Inputs, options: Options) -> TranslationResult:
        """Translate every SMI object in *inputs*, for ``options.profile`` (default: the newest release)."""
        profile = options.profile or profiles.default(self.name)
        if profile.target != self.name:
            raise profiles.ProfileError(f"profile {profile.describe()} is not one of {self.name}")
        em = Emitter(inputs, options, profile)
        smi: list[SmiObject] = [*inputs.splits, *inputs.targets, *inputs.http_route_groups,
                                *inputs.port_routes]
        for obj in smi:
            for path in obj.ignored:
                em.finding(obj, path, FindingReason.IGNORED_FIELD,
                           "unknown field for " + obj.api_version + "; ignored")
            for note in obj.notes:
                em.finding(obj, note.field, note.reason, note.message)
        for ts in sorted(inputs.splits, key=_order):
            if hosts_resolve(ts, em):
                self.split(ts, em)
        for tt in sorted(inputs.targets, key=_order):
            self.target(tt, em)
        self.finish(em)
        return em.result()

    @abstractmethod
    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        """Translate one TrafficSplit."""

    @abstractmethod
    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        """Translate one TrafficTarget."""

    def finish(self, em: Emitter) -> None:  # noqa: B027 - optional hook, empty by design
        """Emit objects merged across several SMI objects (default: none)."""


def _order(obj: SmiObject) -> tuple[str, str]:
    return (obj.meta.namespace, obj.meta.name)


# ---- TrafficSplit helpers ----------------------------------------------------


def fqdn(service: str, namespace: str, options: Options) -> str:
    """Cluster-local FQDN of a Service."""
    return f"{service}.{namespace}.svc.{options.cluster_domain}"


def hosts_resolve(ts: TrafficSplit, em: Emitter) -> bool:
    """Whether every hostname of the split names a Service of its namespace (else reported).

    Decided once, here, so every target treats a split naming an external
    host, or a cluster domain other than ``--cluster-domain``, the same way:
    nothing is emitted for it.
    """
    ok = True
    for path, host in ts.hosts():
        if host.service(em.options.cluster_domain) is not None:
            continue
        ok = False
        ns = ts.meta.namespace
        if host.name is not None:
            why = (f"its cluster domain {host.cluster_domain!r} is not the cluster's "
                   f"{em.options.cluster_domain!r} (--cluster-domain)")
        else:
            why = (f"it names no Service of namespace {ns!r} (a Service is named <name>, "
                   f"<name>.{ns}, <name>.{ns}.svc or <name>.{ns}.svc.{em.options.cluster_domain})")
        em.finding(ts, path, FindingReason.UNRESOLVED_REFERENCE,
                   f"host {host.text!r}: {why}; split not emitted")
    return ok


def split_matches(ts: TrafficSplit, em: Emitter) -> list[tuple[int, HTTPMatch]] | None:
    """All HTTP matches a split's ``matches`` select, with their group index.

    Returns None when any referenced group is missing: a split whose matches
    cannot be resolved must not be emitted without them, since that would send
    all traffic through the split instead of only the matching requests.
    """
    out: list[tuple[int, HTTPMatch]] = []
    for i, ref in enumerate(ts.matches):
        group = em.inputs.http_route_group(ts.meta.namespace, ref.name)
        if group is None:
            em.finding(ts, ts.path(f"matches[{i}]"), FindingReason.UNRESOLVED_REFERENCE,
                       f"HTTPRouteGroup {ts.meta.namespace}/{ref.name} does not exist; split not emitted")
            return None
        out.extend((i, m) for m in group.matches)
    if ts.matches and not out:
        # Matches that select nothing must not turn into "no matches", which
        # would move every request instead of none.
        em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                   "the referenced HTTPRouteGroups have no matches, so no request is split; "
                   "split not emitted")
        return None
    return out


def service_ports(ts: TrafficSplit, em: Emitter) -> list[int] | None:
    """Ports of the root Service when it is in the inputs (None when it is not)."""
    svc = em.inputs.service(ts.meta.namespace, ts.service)
    if svc is None:
        return None
    return [p.port for p in svc.ports if p.protocol.upper() == "TCP"]


# ---- TrafficTarget helpers ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """One thing a TrafficTarget allows from its sources.

    *ports* empty means every port. *http* None means any traffic on those
    ports (L4); otherwise only requests matching one of *http*. *fields*
    holds the SMI field path of each HTTP match, for findings.
    """

    protocol: Protocol
    ports: tuple[int, ...]
    http: tuple[HTTPMatch, ...] | None
    field: str
    http_fields: tuple[str, ...] = ()


def _scope(tt: TrafficTarget, route_ports: set[int] | None, em: Emitter,
           field: str) -> tuple[int, ...] | None:
    """Intersect the v1alpha1/2 destination port with route ports. None: nothing left."""
    if tt.port is None:
        return tuple(sorted(route_ports)) if route_ports is not None else ()
    if route_ports and tt.port not in route_ports:
        em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                   f"route ports {sorted(route_ports)} do not include destination port {tt.port}; "
                   "these rules grant nothing")
        return None
    return (tt.port,)


def grants(tt: TrafficTarget, em: Emitter) -> list[Grant]:
    """Resolve a TrafficTarget's rules into grants, failing closed on anything unresolved."""
    ns = tt.meta.namespace
    rules_path = tt.path(tt.rules_field)
    if not tt.sources:
        em.finding(tt, tt.path("sources"), FindingReason.ACCESS_FAIL_CLOSED,
                   "no sources: the TrafficTarget grants nothing")
        return []
    if not tt.rules:
        em.finding(tt, rules_path, FindingReason.ACCESS_FAIL_CLOSED,
                   "no rules: the TrafficTarget grants nothing")
        return []
    http: list[HTTPMatch] = []
    http_fields: list[str] = []
    has_http = has_tcp = False
    tcp_routes: list[tuple[str, tuple[int, ...]]] = []
    udp_routes: list[tuple[str, tuple[int, ...]]] = []
    for i, rule in enumerate(tt.rules):
        field = f"{rules_path}[{i}]"
        if rule.kind is SmiKind.HTTP_ROUTE_GROUP:
            has_http = True
            for m, m_field in _http_rule(tt, rule, field, em):
                http.append(m)
                http_fields.append(m_field)
            continue
        has_tcp = has_tcp or rule.kind is SmiKind.TCP_ROUTE
        route = em.inputs.port_route(rule.kind, ns, rule.name)
        if route is None:
            em.finding(tt, field, FindingReason.UNRESOLVED_REFERENCE,
                       f"{rule.kind.value} {ns}/{rule.name} does not exist; the rule allows nothing")
            continue
        (tcp_routes if rule.kind is SmiKind.TCP_ROUTE else udp_routes).append((field, route.ports))
    out: list[Grant] = []
    if has_http:
        if has_tcp and not tcp_routes:
            # The TCPRoutes that scope the HTTP rules are all missing: there is
            # no port scope to trust, so the HTTP rules allow nothing.
            em.finding(tt, rules_path, FindingReason.ACCESS_FAIL_CLOSED,
                       "the TCPRoute scoping the HTTP rules does not exist; the HTTP rules grant nothing")
        elif http:
            ports = _scope(tt, _union(tcp_routes) if tcp_routes else None, em, rules_path)
            if ports is not None:
                out.append(Grant(Protocol.TCP, ports, tuple(http), rules_path, tuple(http_fields)))
    elif tcp_routes:
        ports = _scope(tt, _union(tcp_routes), em, tcp_routes[0][0])
        if ports is not None:
            out.append(Grant(Protocol.TCP, ports, None, tcp_routes[0][0]))
    if udp_routes:
        ports = _scope(tt, _union(udp_routes), em, udp_routes[0][0])
        if ports is not None:
            out.append(Grant(Protocol.UDP, ports, None, udp_routes[0][0]))
    return out


def identity_l4_grants(tt: TrafficTarget, em: Emitter, mesh: str, policy: str) -> list[Grant]:
    """The grants a mesh that allows whole TCP connections by identity can hold.

    *mesh* and *policy* (its authorization kind) name them in findings. UDP grants are reported and
    left out. HTTP grants fail closed, or, with ``--widen-l7-to-l4``, become
    L4 grants on the same ports, each with a ``Widened`` finding.
    """
    out: list[Grant] = []
    for g in grants(tt, em):
        if g.protocol is Protocol.UDP:
            em.finding(tt, g.field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"{mesh}'s data plane proxies only TCP, {policy} cannot allow UDP; "
                       "the UDP grant is not emitted")
            continue
        if g.http is not None:
            widen = em.options.widen_l7_to_l4
            for path in sorted(set(g.http_fields)):
                if widen:
                    em.finding(tt, path, FindingReason.WIDENED,
                               f"{policy} allows whole connections by identity only; granted at L4 "
                               "instead (--widen-l7-to-l4): every request of these sources is "
                               "allowed, whatever its method, path or headers")
                else:
                    em.finding(tt, path, FindingReason.ACCESS_FAIL_CLOSED,
                               f"{policy} allows whole connections by identity only; it cannot "
                               "restrict HTTP methods, paths or headers, so this HTTP rule grants "
                               "nothing (--widen-l7-to-l4 would grant it at L4)")
            if widen:
                out.append(Grant(g.protocol, g.ports, None, g.field))
            continue
        out.append(g)
    return out


def _union(routes: list[tuple[str, tuple[int, ...]]]) -> set[int] | None:
    """Ports of several routes together; None when any route allows every port."""
    if any(not ports for _, ports in routes):
        return None
    return {p for _, ports in routes for p in ports}


def _http_rule(tt: TrafficTarget, rule: Rule, field: str,
               em: Emitter) -> list[tuple[HTTPMatch, str]]:
    """The HTTP matches one rule selects, each with the field path that named it."""
    ns = tt.meta.namespace
    group = em.inputs.http_route_group(ns, rule.name)
    if group is None:
        em.finding(tt, field, FindingReason.UNRESOLVED_REFERENCE,
                   f"HTTPRouteGroup {ns}/{rule.name} does not exist; the rule allows nothing")
        return []
    if rule.matches is None:
        selected = [(m, field) for m in group.matches]
    else:
        selected = []
        for j, match_name in enumerate(rule.matches):
            idx = group.match_index(match_name)
            if idx is None:
                em.finding(tt, f"{field}.matches[{j}]", FindingReason.UNRESOLVED_REFERENCE,
                           f"HTTPRouteGroup {ns}/{rule.name} has no match {match_name!r}; "
                           "it allows nothing")
                continue
            selected.append((group.matches[idx], f"{field}.matches[{j}]"))
    if not selected:
        em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                   f"HTTPRouteGroup {ns}/{rule.name} selects no matches; the rule allows nothing")
    return selected


def principal(identity: Identity, options: Options) -> str:
    """Istio/SPIFFE-style principal of a ServiceAccount, without the scheme."""
    return f"{options.trust_domain}/ns/{identity.namespace}/sa/{identity.name}"


@dataclass(frozen=True, slots=True)
class PodSet:
    """Pods of a destination ServiceAccount that one label selector picks, and their workloads."""

    selector: dict[str, str]
    workloads: tuple[Workload, ...]


def destination_pods(tt: TrafficTarget, em: Emitter, mesh_default: str) -> list[PodSet]:
    """Label selectors that pick exactly the pods running as the destination ServiceAccount.

    Meshes that select workloads by pod labels (Istio, Linkerd) need them. A
    selector that would also pick pods of another ServiceAccount is never
    used: the workload is left out and reported. Pods nothing selects get no
    policy, so *mesh_default* (what the mesh then does, e.g. "Istio's default
    applies to them: allow ...") ends those findings.
    """
    dest = tt.destination
    workloads = em.inputs.workloads_of(dest.namespace, dest.name)
    field = tt.path("destination")
    if not workloads:
        em.finding(tt, field, FindingReason.UNRESOLVED_REFERENCE,
                   f"no workload in the input runs as ServiceAccount {dest.namespace}/{dest.name}, "
                   f"so its pods cannot be selected and no policy is emitted; {mesh_default}")
        return []
    found: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Workload]]] = {}
    for w in workloads:
        chosen: dict[str, str] | None = None
        for candidate in (w.selector, w.pod_labels):
            if not candidate:
                continue
            if all(o.service_account == dest.name
                   for o in em.inputs.workloads_selected(dest.namespace, candidate)):
                chosen = dict(candidate)
                break
        if chosen is None:
            em.finding(tt, field, FindingReason.AMBIGUOUS_SELECTOR,
                       f"{w.kind} {w.meta.namespace}/{w.meta.name}: no label selector picks its pods "
                       f"without pods of another ServiceAccount, so they get no policy; {mesh_default}")
            continue
        found.setdefault(tuple(sorted(chosen.items())), (chosen, []))[1].append(w)
    return [PodSet(found[k][0], tuple(found[k][1])) for k in sorted(found)]


def pod_selectors(tt: TrafficTarget, em: Emitter, mesh_default: str) -> list[dict[str, str]]:
    """The selectors of :func:`destination_pods`."""
    return [p.selector for p in destination_pods(tt, em, mesh_default)]


@dataclass(frozen=True, slots=True)
class PodPorts:
    """TCP ports a set of pods is known to serve, from the input's context.

    *tcp* holds the workloads' TCP ``containerPorts`` and the target ports of
    the Services selecting their pods (a named targetPort resolved through
    the container port names). *unresolved* describes the Service ports whose
    named targetPort no container port of those pods carries.
    """

    tcp: tuple[int, ...]
    unresolved: tuple[str, ...]


def target_port(sp: ServicePort, w: Workload) -> tuple[int, str] | None:
    """The TCP container port of *w*'s pods that Service port *sp* sends to, and its name.

    A numbered targetPort (or none: the port itself) is that number, named
    after a declared container port with that number if there is one ("" if
    not); a named one is the container port of that name. None: no TCP
    container port carries the name, so the Service port reaches nothing.
    """
    tcp = [p for p in w.container_ports if p.protocol.upper() == "TCP"]
    target = sp.port if sp.target_port is None else sp.target_port
    if isinstance(target, str):
        named = [p for p in tcp if p.name == target]
        return (named[0].port, named[0].name) if named else None
    numbered = [p for p in tcp if p.port == target]
    return target, numbered[0].name if numbered else ""


def pod_ports(em: Emitter, namespace: str, workloads: Iterable[Workload]) -> PodPorts:
    """The TCP ports the pods of *workloads* declare, directly or through Services."""
    ports: set[int] = set()
    unresolved: list[str] = []
    for w in workloads:
        ports.update(p.port for p in w.container_ports if p.protocol.upper() == "TCP")
        for svc in em.inputs.services_selecting(w):
            for sp in svc.ports:
                if sp.protocol.upper() != "TCP":
                    continue
                found = target_port(sp, w)
                if found is not None:
                    ports.add(found[0])
                else:
                    unresolved.append(f"Service {namespace}/{svc.meta.name} port {sp.port} "
                                      f"(targetPort {sp.target_port!r}, which no container port of "
                                      f"{w.kind} {namespace}/{w.meta.name} is named)")
    return PodPorts(tuple(sorted(ports)), tuple(dict.fromkeys(unresolved)))


def numbered(base: str, index: int, count: int) -> str:
    """``base`` alone, or ``base-<index>`` when there are several."""
    return base if count == 1 else f"{base}-{index}"


def expand_methods(match: HTTPMatch) -> Iterable[str | None]:
    """One entry per method, or a single None for any method."""
    return match.methods or (None,)
