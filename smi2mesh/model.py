"""The internal model: every SMI version, normalised into one shape.

Version quirks (Quantity weights, top-level layouts, string ports, header
maps or lists, access v1alpha1/v1alpha2 destination ports) are resolved while
parsing (:mod:`smi2mesh.smi`); translators only ever see these classes.

Each object keeps ``field_prefix`` (``"spec."`` or ``""`` for the top-level
layout) so findings can name the field exactly as the user wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from smi2mesh.findings import FindingReason


class SmiKind(StrEnum):
    """The SMI kinds smi2mesh reads."""

    TRAFFIC_SPLIT = "TrafficSplit"
    TRAFFIC_TARGET = "TrafficTarget"
    HTTP_ROUTE_GROUP = "HTTPRouteGroup"
    TCP_ROUTE = "TCPRoute"
    UDP_ROUTE = "UDPRoute"


SMI_GROUPS: Mapping[SmiKind, str] = MappingProxyType(
    {
        SmiKind.TRAFFIC_SPLIT: "split.smi-spec.io",
        SmiKind.TRAFFIC_TARGET: "access.smi-spec.io",
        SmiKind.HTTP_ROUTE_GROUP: "specs.smi-spec.io",
        SmiKind.TCP_ROUTE: "specs.smi-spec.io",
        SmiKind.UDP_ROUTE: "specs.smi-spec.io",
    }
)

@dataclass(frozen=True, slots=True)
class Meta:
    """The metadata of an input object that translation needs."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Note:
    """Something parsing read in another form than written, reported as a finding."""

    field: str
    reason: FindingReason
    message: str


@dataclass(frozen=True, slots=True)
class SmiObject:
    """Fields shared by every parsed SMI object."""

    meta: Meta
    api_version: str
    field_prefix: str
    # Unknown fields that were ignored, as field paths; reported as findings.
    ignored: tuple[str, ...]
    # What parsing accepted in another form (a Quantity in an integer field);
    # every target reports these, like ignored fields.
    notes: tuple[Note, ...] = ()

    @property
    def kind(self) -> str:
        raise NotImplementedError

    def path(self, suffix: str) -> str:
        """Field path of *suffix* as the user wrote the object."""
        return self.field_prefix + suffix


# ---- specs.smi-spec.io -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """One header condition: *name* lowercased, *value* a full-match regex."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HTTPMatch:
    """One named match of an HTTPRouteGroup. Empty *methods* means any method."""

    name: str
    methods: tuple[str, ...] = ()
    path_regex: str | None = None
    headers: tuple[HeaderMatch, ...] = ()

    @property
    def is_catch_all(self) -> bool:
        """True when the match constrains nothing."""
        return not self.methods and self.path_regex is None and not self.headers


@dataclass(frozen=True, slots=True)
class HTTPRouteGroup(SmiObject):
    """specs.smi-spec.io HTTPRouteGroup, all versions."""

    matches: tuple[HTTPMatch, ...] = ()

    @property
    def kind(self) -> str:
        return SmiKind.HTTP_ROUTE_GROUP.value

    def match_index(self, name: str) -> int | None:
        """Index of the match named *name*, or None."""
        for i, m in enumerate(self.matches):
            if m.name == name:
                return i
        return None


class Protocol(StrEnum):
    """L4 protocol of a TCPRoute or UDPRoute."""

    TCP = "TCP"
    UDP = "UDP"


@dataclass(frozen=True, slots=True)
class PortRoute(SmiObject):
    """specs.smi-spec.io TCPRoute or UDPRoute. Empty *ports* means all ports."""

    protocol: Protocol = Protocol.TCP
    match_name: str | None = None
    ports: tuple[int, ...] = ()

    @property
    def kind(self) -> str:
        return SmiKind.TCP_ROUTE.value if self.protocol is Protocol.TCP else SmiKind.UDP_ROUTE.value


# ---- split.smi-spec.io -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Host:
    """A Service as a TrafficSplit names it: a name or a hostname (the spec calls it an FQDN).

    ``name``, ``name.ns``, ``name.ns.svc`` and ``name.ns.svc.<cluster-domain>``
    name Service *name* of the split's namespace (OSM's GetServiceFromHostname;
    Flagger writes ``service.hosts[0]``). Another namespace is an input error,
    found while parsing. Whether ``<cluster-domain>`` is the cluster's is known
    only at translation time, so it is kept here and checked by :meth:`service`.
    """

    text: str  # as written, for messages
    name: str | None  # the Service it names, or None: no Service of the namespace
    cluster_domain: str | None = None  # the domain after ``.svc.``, if written

    def service(self, cluster_domain: str) -> str | None:
        """The Service name in a cluster with *cluster_domain*, or None when it names none."""
        if self.cluster_domain is not None and self.cluster_domain != cluster_domain.lower().rstrip("."):
            return None
        return self.name


@dataclass(frozen=True, slots=True)
class Backend:
    """A weighted backend Service. Weights are milli-units, relative.

    *service* is the Service name; *host* is set when the input wrote more
    than a bare name (then *service* holds the name it resolves to).
    """

    service: str
    weight_milli: int
    host: Host | None = None


@dataclass(frozen=True, slots=True)
class RouteRef:
    """A reference to a route object in the referrer's namespace."""

    kind: SmiKind
    name: str


@dataclass(frozen=True, slots=True)
class TrafficSplit(SmiObject):
    """split.smi-spec.io TrafficSplit, all versions."""

    service: str = ""
    backends: tuple[Backend, ...] = ()
    matches: tuple[RouteRef, ...] = ()
    # Set when spec.service was written as more than a bare name.
    service_host: Host | None = None

    @property
    def kind(self) -> str:
        return SmiKind.TRAFFIC_SPLIT.value

    def hosts(self) -> list[tuple[str, Host]]:
        """(field path, host) of every Service field written as a hostname."""
        out = [(self.path("service"), self.service_host)] if self.service_host else []
        out.extend((self.path(f"backends[{i}].service"), b.host)
                   for i, b in enumerate(self.backends) if b.host)
        return out


# ---- access.smi-spec.io ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """A workload identity: a ServiceAccount."""

    name: str
    namespace: str
    kind: str = "ServiceAccount"


@dataclass(frozen=True, slots=True)
class Rule:
    """A TrafficTarget rule. ``matches is None`` means every match of the route."""

    kind: SmiKind
    name: str
    matches: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TrafficTarget(SmiObject):
    """access.smi-spec.io TrafficTarget, all versions.

    ``port`` is the v1alpha1/v1alpha2 ``destination.port``: when set it
    restricts every rule to that port and must never be dropped.
    """

    destination: Identity = field(default_factory=lambda: Identity("", ""))
    port: int | None = None
    sources: tuple[Identity, ...] = ()
    rules: tuple[Rule, ...] = ()
    # "rules" from v1alpha2 on, "specs" in v1alpha1: findings name the real field.
    rules_field: str = "rules"

    @property
    def kind(self) -> str:
        return SmiKind.TRAFFIC_TARGET.value

    def port_path(self) -> str:
        """Field path of the destination port."""
        return self.path("destination.port")


# ---- context: core Kubernetes objects --------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service."""

    port: int
    name: str = ""
    protocol: str = "TCP"
    app_protocol: str = ""
    # The pods' port: a number, a container port name, or None (= ``port``).
    target_port: int | str | None = None

    @property
    def is_http(self) -> bool:
        """Whether the port carries HTTP, by appProtocol or Istio's name prefixes."""
        proto = self.app_protocol.lower()
        if proto:
            return proto in ("http", "http2", "grpc", "h2c", "kubernetes.io/h2c", "kubernetes.io/http")
        return self.name.split("-", 1)[0] in ("http", "http2", "grpc", "h2c")


@dataclass(frozen=True, slots=True)
class Service:
    """A core/v1 Service, as context."""

    meta: Meta
    selector: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[ServicePort, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """One ``containerPort`` a workload's pods declare."""

    port: int
    name: str = ""
    protocol: str = "TCP"
    # Index of its container in the pod spec: consul-k8s proxies the ports of
    # the first container when no annotation names one.
    container: int = 0


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A core/v1 ServiceAccount, as context: an identity that exists in a namespace."""

    meta: Meta


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """A Linkerd ServiceProfile (``linkerd.io``), as context.

    While one named ``<svc>.<ns>.svc.<cluster-domain>`` with routes or
    dstOverrides exists, Linkerd routes the Service by it and ignores
    HTTPRoutes for it; linkerd-smi wrote such profiles for TrafficSplits. *managed* says it carries smi2mesh's
    managed-by label (the operator still checks ownership before touching it).
    """

    meta: Meta
    api_version: str = "linkerd.io/v1alpha2"
    managed: bool = False
    # The authorities of its dstOverrides, for messages.
    overrides: tuple[str, ...] = ()
    routes: int = 0

    @property
    def overrides_routes(self) -> bool:
        """Whether Linkerd's proxy follows it instead of the Service's HTTPRoutes.

        Only a profile with routes or dstOverrides does (``should_override_policy``:
        ``has_routes_or_targets``, linkerd/linkerd2-proxy
        linkerd/app/outbound/src/http/logical/profile.rs).
        """
        return bool(self.routes or self.overrides)


@dataclass(frozen=True, slots=True)
class Workload:
    """Anything that runs pods as a ServiceAccount: Pod, Deployment, StatefulSet, ...

    *selector* is the workload's own ``spec.selector.matchLabels`` (None for a
    bare Pod); *pod_labels* are the labels its pods carry.
    """

    kind: str
    meta: Meta
    service_account: str
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    selector: Mapping[str, str] | None = None
    # Ports of every container of the pod template, in declaration order
    # (Consul registers the first one when no annotation names a port).
    container_ports: tuple[ContainerPort, ...] = ()
    pod_annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """Everything one translation reads: SMI objects plus their context.

    Lookups are indexed once, so translators can resolve references without
    scanning.
    """

    splits: tuple[TrafficSplit, ...] = ()
    targets: tuple[TrafficTarget, ...] = ()
    http_route_groups: tuple[HTTPRouteGroup, ...] = ()
    port_routes: tuple[PortRoute, ...] = ()
    services: tuple[Service, ...] = ()
    workloads: tuple[Workload, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()
    service_profiles: tuple[ServiceProfile, ...] = ()
    # Names of ServiceAccounts and Services outside these objects, with their
    # namespaces: the operator's view of the whole cluster, which translating
    # one namespace at a time does not otherwise have.
    other_identities: Mapping[str, Iterable[str]] = field(default_factory=dict)
    _groups: dict[tuple[str, str], HTTPRouteGroup] = field(init=False, repr=False)
    _routes: dict[tuple[SmiKind, str, str], PortRoute] = field(init=False, repr=False)
    _services: dict[tuple[str, str], Service] = field(init=False, repr=False)
    _selecting: dict[str, list[Service]] = field(init=False, repr=False)
    _by_sa: dict[tuple[str, str], list[Workload]] = field(init=False, repr=False)
    _by_ns: dict[str, list[Workload]] = field(init=False, repr=False)
    _by_label: dict[tuple[str, str, str], list[Workload]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_groups", {(g.meta.namespace, g.meta.name): g for g in self.http_route_groups}
        )
        object.__setattr__(
            self,
            "_routes",
            {(SmiKind(r.kind), r.meta.namespace, r.meta.name): r for r in self.port_routes},
        )
        object.__setattr__(
            self, "_services", {(s.meta.namespace, s.meta.name): s for s in self.services}
        )
        selecting: dict[str, list[Service]] = {}
        for svc in self.services:
            if svc.selector:  # a Service without a selector selects no pods
                selecting.setdefault(svc.meta.namespace, []).append(svc)
        object.__setattr__(self, "_selecting", selecting)
        by_sa: dict[tuple[str, str], list[Workload]] = {}
        by_ns: dict[str, list[Workload]] = {}
        by_label: dict[tuple[str, str, str], list[Workload]] = {}
        for w in self.workloads:
            by_sa.setdefault((w.meta.namespace, w.service_account), []).append(w)
            by_ns.setdefault(w.meta.namespace, []).append(w)
            for k, v in w.pod_labels.items():
                by_label.setdefault((w.meta.namespace, k, v), []).append(w)
        object.__setattr__(self, "_by_sa", by_sa)
        object.__setattr__(self, "_by_ns", by_ns)
        object.__setattr__(self, "_by_label", by_label)

    @classmethod
    def of(cls, objects: Iterable[object],
           other_identities: Mapping[str, Iterable[str]] | None = None) -> Inputs:
        """Sort a mixed iterable of parsed objects into an Inputs."""
        buckets: dict[type, list[object]] = {}
        for obj in objects:
            buckets.setdefault(type(obj), []).append(obj)

        def take(t: type) -> tuple:  # type: ignore[type-arg]
            return tuple(buckets.get(t, ()))

        return cls(
            splits=take(TrafficSplit),
            targets=take(TrafficTarget),
            http_route_groups=take(HTTPRouteGroup),
            port_routes=take(PortRoute),
            services=take(Service),
            workloads=take(Workload),
            service_accounts=take(ServiceAccount),
            service_profiles=take(ServiceProfile),
            # An empty view still records what is read, so keep it even when empty.
            other_identities={} if other_identities is None else other_identities,
        )

    def http_route_group(self, namespace: str, name: str) -> HTTPRouteGroup | None:
        """The HTTPRouteGroup *namespace*/*name*, if present."""
        return self._groups.get((namespace, name))

    def port_route(self, kind: SmiKind, namespace: str, name: str) -> PortRoute | None:
        """The TCPRoute or UDPRoute *namespace*/*name*, if present."""
        return self._routes.get((kind, namespace, name))

    def service(self, namespace: str, name: str) -> Service | None:
        """The Service *namespace*/*name*, if present."""
        return self._services.get((namespace, name))

    def service_profile(self, namespace: str, name: str) -> ServiceProfile | None:
        """The ServiceProfile *namespace*/*name*, if present (the newest version read wins)."""
        found = [sp for sp in self.service_profiles if (sp.meta.namespace, sp.meta.name) == (namespace, name)]
        return found[-1] if found else None

    def workloads_of(self, namespace: str, service_account: str) -> list[Workload]:
        """Workloads whose pods run as *service_account* in *namespace*."""
        return self._by_sa.get((namespace, service_account), [])

    def workloads_selected(self, namespace: str, selector: Mapping[str, str]) -> list[Workload]:
        """Workloads in *namespace* whose pods carry every label of *selector*."""
        if not selector:
            return self.workloads_in(namespace)
        lists = [self._by_label.get((namespace, k, v), []) for k, v in selector.items()]
        smallest = min(lists, key=len)
        items = selector.items()
        return [w for w in smallest if items <= w.pod_labels.items()]

    def workloads_in(self, namespace: str) -> list[Workload]:
        """All workloads in *namespace*."""
        return self._by_ns.get(namespace, [])

    def services_selecting(self, w: Workload) -> list[Service]:
        """Services of *w*'s namespace whose selector picks its pods, in input order."""
        labels = w.pod_labels.items()
        return [s for s in self._selecting.get(w.meta.namespace, []) if s.selector.items() <= labels]

    def namespaces_with_identity(self, name: str) -> set[str]:
        """Namespaces where *name* is an identity: a ServiceAccount, a Service, a workload's
        ServiceAccount, a TrafficTarget's source or destination, or one of *other_identities*.

        Consul CE has no namespaces: a source name there is one identity
        across the cluster, so a name found in several namespaces is ambiguous.
        """
        index: dict[str, set[str]] | None = getattr(self, "_identities", None)
        if index is None:
            index = {}
            pairs: list[tuple[str, str]] = [(sa.meta.name, sa.meta.namespace)
                                            for sa in self.service_accounts]
            pairs.extend((s.meta.name, s.meta.namespace) for s in self.services)
            pairs.extend((w.service_account, w.meta.namespace) for w in self.workloads)
            for tt in self.targets:
                pairs.extend((i.name, i.namespace) for i in (tt.destination, *tt.sources))
            for n, ns in pairs:
                index.setdefault(n, set()).add(ns)
            # Built on first use: most targets never ask.
            object.__setattr__(self, "_identities", index)
        return index.get(name, set()) | set(self.other_identities.get(name, ()))
