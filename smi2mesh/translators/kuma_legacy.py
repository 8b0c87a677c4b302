"""Target ``kuma``, legacy profile: TrafficRoute and TrafficPermission (``kuma.io/v1alpha1``).

Written for Kuma before 2.10 (and on any 2.x with ``--mesh-version 2.N+legacy``;
see :mod:`smi2mesh.translators.profiles`), re-expressed from Kuma v2.14.3,
which still serves and applies them:

* Both kinds are cluster-scoped: no namespace, the mesh in the top-level
  ``mesh`` field, names unique cluster-wide. Names end in ``.<namespace>``
  (namespaces hold no dot, so the last segment names it and two sources
  never share a name); the part before holds the SMI name and the port.
* Services are named by the ``kuma.io/service`` tag Kuma gives each Service
  port, ``<svc>_<ns>_svc_<port>`` (``ServiceTag``,
  pkg/plugins/runtime/k8s/util/util.go:164-170).
* TrafficSplit -> one TrafficRoute per TCP port of the root Service: every
  source (``kuma.io/service: '*'``, a source selector must name the service
  tag: traffic_route_validator.go:16-24), destination the root's tag (exactly
  that one tag: :28), ``conf.split`` by relative weight; with matches,
  ``conf.http`` entries split the matching requests and ``conf.destination``
  keeps the rest on the root.
* TrafficTarget -> TrafficPermission. Kuma applies one TrafficPermission per
  inbound, the one whose destination selector matches the inbound's tags
  most specifically (``SelectInboundConnectionPolicy``,
  pkg/core/policy/connection_matcher.go:143-195), so grants are merged per
  inbound of the destination's pods: one policy per (pod selector, inbound)
  listing every source allowed there, and a policy allowing only a source
  no proxy carries where nothing is granted (the deny-by-default).
  Sources and destinations are matched by tags: the pod labels (without
  ``kuma.io/`` keys or empty values) and ``k8s.kuma.io/namespace``, which
  Kuma puts on every inbound (``InboundTagsForService``,
  pkg/plugins/runtime/k8s/controllers/inbound_converter.go:243-280) and into
  each proxy's certificate as ``kuma://<tag>/<value>`` URIs, which the RBAC
  filter matches (pkg/core/ca/issuer/issuer.go:58-77,
  pkg/xds/envoy/listeners/v3/network_rbac_configurer.go:84-135).
  TrafficPermission is L4/identity only: HTTP rules fail closed, or are
  widened to L4 with ``--widen-l7-to-l4`` (a ``Widened`` finding), as in
  :mod:`smi2mesh.translators.kuma`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import HTTPMatch, Identity, ServicePort, TrafficSplit, TrafficTarget
from smi2mesh.regex import MatchType, classify_path, classify_value
from smi2mesh.translators.base import (
    Emitter,
    Obj,
    OutputKind,
    PodSet,
    Translator,
    destination_pods,
    expand_methods,
    identity_l4_grants,
    split_matches,
    target_port,
)
from smi2mesh.translators.gateway_api import is_tcp_only, root_ports

KUMA_GROUP = "kuma.io"
# The mesh the policies belong to (the Mesh Kuma creates; kuma.py writes the same).
MESH = "default"
SERVICE_TAG = "kuma.io/service"
NAMESPACE_TAG = "k8s.kuma.io/namespace"
# Kuma routes HTTP only for these kuma.io/protocol values (core_meta.HTTPBasedProtocols).
HTTP_PROTOCOLS = frozenset({"http", "http2", "grpc"})
# No Kubernetes namespace is named "-" (namespaces are DNS labels), so no proxy
# of the cluster carries this tag: a policy allowing only it allows nobody.
NOBODY = {NAMESPACE_TAG: "-"}
_MAX_NAME = 253
LEGACY_DEFAULT = ("Kuma's default applies to it: with mTLS, an inbound no TrafficPermission selects is "
                  "denied, unless a broader one allows it (allow-all-<mesh>, created by default before "
                  "Kuma 2.6); without mTLS everything is allowed")


def service_tag(service: str, namespace: str, port: int) -> str:
    """The ``kuma.io/service`` tag of one Service port."""
    return f"{service}_{namespace}_svc_{port}"


def usable_tags(labels: Mapping[str, str]) -> dict[str, str] | None:
    """Pod labels as the inbound tags Kuma copies them to; None if one is not copied.

    Kuma drops labels whose key contains ``kuma.io/`` and empty values
    (inbound_converter.go:247-256), so a selector holding one selects nothing.
    """
    if any("kuma.io/" in k or not v for k, v in labels.items()):
        return None
    return dict(labels)


def identity_tags(identity: Identity, em: Emitter) -> list[dict[str, str]] | str:
    """Tag selectors that match exactly the proxies running as *identity*, or why there are none.

    One per workload selector (its ``matchLabels``, else its pod labels) that
    picks no pod of another ServiceAccount of the namespace.
    """
    workloads = em.inputs.workloads_of(identity.namespace, identity.name)
    if not workloads:
        return (f"no workload in the input runs as ServiceAccount {identity.namespace}/{identity.name}, "
                "so the tags of its proxies are unknown")
    out: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for w in workloads:
        chosen = None
        for candidate in (w.selector, w.pod_labels):
            tags = usable_tags(candidate or {})
            if tags and all(o.service_account == identity.name
                            for o in em.inputs.workloads_selected(identity.namespace, tags)):
                chosen = tags
                break
        if chosen is None:
            return (f"no pod labels of {w.kind} {w.meta.namespace}/{w.meta.name} pick its pods without "
                    "pods of another ServiceAccount (labels with kuma.io/ keys or empty values are not "
                    "tags)")
        selector = {NAMESPACE_TAG: identity.namespace, **chosen}
        out[tuple(sorted(selector.items()))] = selector
    return [out[k] for k in sorted(out)]


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound of the destination's proxies: its Service port tag and container port."""

    tag: str
    port: int


def inbounds(pods: PodSet, em: Emitter) -> list[Inbound] | str:
    """The inbounds Kuma gives *pods*: one per TCP port of every Service selecting them.

    The container port is the one the Service's targetPort resolves to (a
    name looks up a container port; none: no inbound), as in
    :func:`smi2mesh.translators.kuma.inbounds`.
    """
    out: dict[str, Inbound] = {}
    for w in pods.workloads:
        selecting = em.inputs.services_selecting(w)
        if not selecting:
            return f"no Service in the input selects the pods of {w.kind} {w.meta.namespace}/{w.meta.name}"
        for svc in selecting:
            for sp in svc.ports:
                found = target_port(sp, w) if sp.protocol.upper() == "TCP" else None
                if found is not None:
                    tag = service_tag(svc.meta.name, svc.meta.namespace, sp.port)
                    out[tag] = Inbound(tag, found[0])
    return [out[t] for t in sorted(out)]


@dataclass
class _Permission:
    """One TrafficPermission to write: an inbound of one pod selector and who may reach it."""

    namespace: str
    service_account: str
    selector: dict[str, str]
    inbound: Inbound
    index: int
    count: int
    sources: dict[tuple[tuple[str, str], ...], dict[str, str]] = field(default_factory=dict)
    targets: list[TrafficTarget] = field(default_factory=list)


@dataclass
class _Run:
    permissions: dict[tuple[str, tuple[tuple[str, str], ...], str], _Permission] = field(default_factory=dict)
    routes: TrafficSplit | None = None
    access: TrafficTarget | None = None


def legacy_name(base: str, namespace: str) -> str:
    """A cluster-wide unique name: ``<base>.<namespace>`` (see the module docstring)."""
    return f"{base}.{namespace}"


class KumaLegacyTranslator(Translator):
    """TrafficSplit -> TrafficRoute; TrafficTarget -> TrafficPermission (cluster-scoped)."""

    name: ClassVar[str] = "kuma"
    description: ClassVar[str] = "Kuma legacy TrafficRoute/TrafficPermission (cluster-scoped)"
    emits: ClassVar[tuple[OutputKind, ...]] = (
        OutputKind("kuma.io/v1alpha1", "TrafficRoute", "trafficroutes", namespaced=False),
        OutputKind("kuma.io/v1alpha1", "TrafficPermission", "trafficpermissions", namespaced=False),
    )

    # ---- TrafficSplit ------------------------------------------------------

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        ns = ts.meta.namespace
        if not em.claim(("kuma-root", ns, ts.service), ts, ts.path("service"), f"Service {ns}/{ts.service}"):
            return
        matched = split_matches(ts, em)
        if matched is None:
            return
        ports = root_ports(ts, em, "Kuma")
        if ports is None:
            return
        scoped = bool(ts.matches)
        http = self._http(ts, matched, em)
        if scoped and not http:
            return  # every match was inexpressible (each reported)
        api = em.profile.api(KUMA_GROUP, "TrafficRoute")
        for p in ports:
            if p.protocol.upper() != "TCP":
                em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                           f"port {p.port}/{p.protocol} of Service {ts.service}: Kuma proxies only TCP; "
                           "not split")
                continue
            if scoped and not self._routes_http(ts, p, em):
                continue
            name = legacy_name(f"{ts.meta.name}-{p.port}", ns)
            if len(name) > _MAX_NAME:
                em.finding(ts, "metadata.name", FindingReason.NOT_EXPRESSIBLE,
                           f"TrafficRoute name {name!r} is longer than {_MAX_NAME} characters; not emitted")
                continue
            split = self._split(ts, p.port)
            conf: Obj = {"split": split}
            if scoped:
                # Matching requests are split; the rest keep going to the root.
                conf = {"http": [{"match": m, "split": split} for m in http],
                        "destination": {SERVICE_TAG: service_tag(ts.service, ns, p.port)}}
            em.emit(api, "TrafficRoute", "", name, {"mesh": MESH, "spec": {
                "sources": [{"match": {SERVICE_TAG: "*"}}],
                "destinations": [{"match": {SERVICE_TAG: service_tag(ts.service, ns, p.port)}}],
                "conf": conf}}, [ts], body_key=None)
            run = em.state(_Run)
            if run.routes is None:
                run.routes = ts

    @staticmethod
    def _split(ts: TrafficSplit, port: int) -> list[Obj]:
        rel = weights.relative([b.weight_milli for b in ts.backends])
        return [{"weight": w, "destination": {SERVICE_TAG: service_tag(b.service, ts.meta.namespace, port)}}
                for b, w in zip(ts.backends, rel, strict=True)]

    @staticmethod
    def _routes_http(ts: TrafficSplit, port: ServicePort, em: Emitter) -> bool:
        """Whether Kuma routes HTTP on *port* (its kuma.io/protocol tag comes from appProtocol)."""
        proto = port.app_protocol.lower()
        if proto in HTTP_PROTOCOLS:
            return True
        if is_tcp_only(port) or proto:
            em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       f"port {port.port} of Service {ts.service} is not HTTP for Kuma (appProtocol "
                       f"{port.app_protocol or 'unset'}, name {port.name or 'unset'}), so HTTP matches "
                       "cannot apply; no route emitted for it")
            return False
        em.finding(ts, ts.path("service"), FindingReason.PREREQUISITE,
                   f"Kuma treats port {port.port} of Service {ts.service} as tcp until it sets appProtocol: "
                   "http (or http2, grpc); until then the TrafficRoute's http section does not apply and "
                   "every request goes to the root Service")
        return True

    def _http(self, ts: TrafficSplit, matched: list[tuple[int, HTTPMatch]], em: Emitter) -> list[Obj]:
        """Legacy HTTP matches, one per method; inexpressible matches are left out and reported."""
        out: list[Obj] = []
        for i, m in matched:
            names = [h.name.lower() for h in m.headers]
            if len(set(names)) != len(names):
                em.finding(ts, ts.path(f"matches[{i}]"), FindingReason.NOT_EXPRESSIBLE,
                           f"match {m.name!r} has several conditions on one header; a TrafficRoute holds "
                           "one per header name, so the match is left out and its requests go to the "
                           "root Service")
                continue
            base: Obj = {}
            path = _path(m.path_regex)
            if path is not None:
                base["path"] = path
            if m.headers:
                base["headers"] = {h.name: _value(h.value) for h in m.headers}
            for method in expand_methods(m):
                entry = dict(base)
                if method is not None:
                    entry["method"] = {"exact": method}
                # A match needs a path, method or header (traffic_route_validator.go:174-177).
                out.append(entry or {"path": {"prefix": "/"}})
        return out

    # ---- TrafficTarget -----------------------------------------------------

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        run = em.state(_Run)
        if run.access is None:
            run.access = tt
        pod_sets = destination_pods(tt, em, LEGACY_DEFAULT)
        scoped = [(p, t, inbounds(p, em)) for p in pod_sets
                  if (t := usable_tags(p.selector)) is not None or self._untagged(tt, p, em)]
        everywhere, ports = self._scopes(tt, em)
        sources = self._sources(tt, em) if everywhere or ports else []
        for index, (_, tags, found) in enumerate(scoped):
            if tags is None:
                continue
            if isinstance(found, str):
                em.finding(tt, tt.path("destination"), FindingReason.ACCESS_FAIL_CLOSED,
                           f"the inbounds of the destination's proxies are unknown ({found}), so no "
                           f"TrafficPermission selects them; {LEGACY_DEFAULT}")
                continue
            for inbound in found:
                key = (tt.destination.namespace, tuple(sorted(tags.items())), inbound.tag)
                perm = run.permissions.setdefault(key, _Permission(
                    tt.destination.namespace, tt.destination.name, tags, inbound, index, len(scoped)))
                perm.targets.append(tt)
                if everywhere or inbound.port in ports:
                    for s in sources:
                        perm.sources[tuple(sorted(s.items()))] = s
            granted = {i.port for i in found}
            for port in sorted(ports - granted):
                em.finding(tt, tt.port_path() if tt.port is not None else tt.path(tt.rules_field),
                           FindingReason.ACCESS_FAIL_CLOSED,
                           f"port {port} is no inbound of the destination's proxies (the target ports of "
                           "the Services selecting its pods), so Kuma's mesh cannot reach it; the grant "
                           "for it allows nothing")

    @staticmethod
    def _untagged(tt: TrafficTarget, pods: PodSet, em: Emitter) -> bool:
        em.finding(tt, tt.path("destination"), FindingReason.ACCESS_FAIL_CLOSED,
                   f"the pod selector {pods.selector} holds a label Kuma does not copy to tags (a kuma.io/ "
                   f"key or an empty value), so no TrafficPermission can select these pods; {LEGACY_DEFAULT}")
        return False

    @staticmethod
    def _sources(tt: TrafficTarget, em: Emitter) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for i, s in enumerate(tt.sources):
            found = identity_tags(s, em)
            if isinstance(found, str):
                em.finding(tt, tt.path(f"sources[{i}]"), FindingReason.ACCESS_FAIL_CLOSED,
                           f"Kuma matches sources by the tags of their proxies, and {found}; this source "
                           "is not allowed")
                continue
            out.extend(found)
        return out

    @staticmethod
    def _scopes(tt: TrafficTarget, em: Emitter) -> tuple[bool, set[int]]:
        """Whether some grant covers every port, and the container ports granted otherwise."""
        everywhere = False
        ports: set[int] = set()
        for g in identity_l4_grants(tt, em, "Kuma", "TrafficPermission"):
            if not g.ports:
                everywhere = True
            ports.update(g.ports)
        return everywhere, ports

    def finish(self, em: Emitter) -> None:
        """One TrafficPermission per inbound, and the prerequisites once per run."""
        run = em.state(_Run)
        api = em.profile.api(KUMA_GROUP, "TrafficPermission") if run.permissions else ""
        for _, perm in sorted(run.permissions.items()):
            base = f"{perm.service_account}.{perm.inbound.tag.replace('_', '-')}"
            if perm.count > 1:
                base = f"{base}-{perm.index + 1}"
            name = legacy_name(base.lower(), perm.namespace)
            sources = [perm.sources[k] for k in sorted(perm.sources)] or [dict(NOBODY)]
            if len(name) > _MAX_NAME or not _dns_subdomain(name):
                for tt in perm.targets:
                    em.finding(tt, tt.path("destination"), FindingReason.ACCESS_FAIL_CLOSED,
                               f"TrafficPermission name {name!r} is not a valid object name; nothing is "
                               f"emitted for inbound {perm.inbound.tag}; {LEGACY_DEFAULT}")
                continue
            em.emit(api, "TrafficPermission", "", name, {"mesh": MESH, "spec": {
                "sources": [{"match": s} for s in sources],
                "destinations": [{"match": {SERVICE_TAG: perm.inbound.tag, **perm.selector}}]}},
                _unique(perm.targets), body_key=None)
        if run.routes is not None:
            em.finding(run.routes, run.routes.path("service"), FindingReason.PREREQUISITE,
                       "Kuma applies TrafficRoutes (and every legacy policy) only while the Mesh has a "
                       "TrafficRoute, and routes only the services some TrafficRoute selects: keep a "
                       "catch-all one (route-all-<mesh>; from Kuma 2.6 created only with "
                       "KUMA_DEFAULTS_CREATE_MESH_ROUTING_RESOURCES=true)")
        if run.access is not None:
            em.finding(run.access, run.access.path("sources"), FindingReason.PREREQUISITE,
                       "Kuma enforces TrafficPermission only with mTLS on the Mesh, and only on proxies no "
                       "MeshTrafficPermission selects; sources are matched by the tags of their proxies "
                       "(pod labels and k8s.kuma.io/namespace), which Kuma gives only pods a Service "
                       "selects")


def _unique(targets: Iterable[TrafficTarget]) -> list[TrafficTarget]:
    return list({(t.meta.namespace, t.meta.name): t for t in targets}.values())


def _dns_subdomain(name: str) -> bool:
    return all(part and part[0].isalnum() and part[-1].isalnum()
               and all(c.isalnum() or c == "-" for c in part) for part in name.split("."))


def _path(path_regex: str | None) -> Obj | None:
    """Legacy path matcher for an SMI (prefix-anchored) path regex; None: any path."""
    if path_regex is None:
        return None
    pat = classify_path(path_regex)
    if pat.type is MatchType.ANY:
        return None
    if pat.type is MatchType.EXACT:
        return {"exact": pat.value}
    if pat.type is MatchType.PREFIX and pat.value:
        # Envoy's path prefix is a plain string prefix, as SMI's is.
        return {"prefix": pat.value}
    return {"regex": pat.full_regex()}


def _value(value: str) -> Obj:
    """Legacy header matcher: exact and prefix stay readable, the rest full-matches a regex."""
    pat = classify_value(value)
    if pat.type is MatchType.EXACT:
        return {"exact": pat.value}
    if pat.type is MatchType.PREFIX and pat.value:
        return {"prefix": pat.value}
    return {"regex": pat.full_regex()}


LEGACY = KumaLegacyTranslator()
