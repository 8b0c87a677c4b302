"""Target ``smi``: re-emit SMI at exactly the versions a mesh serves.

Some meshes consume SMI directly but serve only particular versions (Open
Service Mesh, Traefik Mesh, Flomesh FSM), while producers such as Flagger and
Argo Rollouts write the versions they know. This target converts every SMI
object, through the internal model, into the requested versions:

* Conversion is lossless where the versions allow it. Weights keep their
  exact ratios in both directions (v1alpha1 Quantities as milli-values).
* Where a version cannot hold the input, there is a finding, and the result
  is never broader: a v1alpha1/v1alpha2 ``destination.port`` becomes a
  generated TCPRoute (specs v1alpha4) scoping the target; route ports that
  specs v1alpha1-v1alpha3 cannot hold become ``destination.port``, one
  TrafficTarget per port; a split with ``matches`` is not written as a
  version without them (that would split every request), nor when a group
  it names is missing; UDP rules a version cannot hold are left out; a
  TrafficTarget without rules or sources is not written at all (Traefik
  Mesh reads ``rules: []`` as allow-all).
* Names, namespaces, labels and annotations are kept (not kubectl's
  last-applied-configuration, which describes the input), and nothing else
  is added, so the output stays diff-friendly for GitOps. Only objects this
  target generates itself carry a source annotation. Hostnames in splits
  are written as the Service names they resolve to.

The operator never reconciles this target: it would write SMI objects
derived from SMI objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import (
    SMI_GROUPS,
    HTTPRouteGroup,
    PortRoute,
    Protocol,
    Rule,
    SmiKind,
    TrafficSplit,
    TrafficTarget,
)
from smi2mesh.translators.base import (
    SOURCE_ANNOTATION,
    Emitter,
    Obj,
    OutputKind,
    Translator,
    source_ref,
    split_matches,
)

SPLIT, ACCESS, SPECS, UDP = "split", "access", "specs", "udp"
SERVED: Mapping[str, tuple[str, ...]] = {
    SPLIT: ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"),
    ACCESS: ("v1alpha1", "v1alpha2", "v1alpha3"),
    SPECS: ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"),
}
# What each SMI-native mesh serves (its CRDs). UDPRoute exists only in specs
# v1alpha4 and none of these meshes serves it.
PROFILES: Mapping[str, Mapping[str, str]] = {
    "osm": {SPLIT: "v1alpha2", ACCESS: "v1alpha3", SPECS: "v1alpha4", UDP: ""},
    "fsm": {SPLIT: "v1alpha4", ACCESS: "v1alpha3", SPECS: "v1alpha4", UDP: ""},
    "traefik": {SPLIT: "v1alpha3", ACCESS: "v1alpha2", SPECS: "v1alpha3", UDP: ""},
    "latest": {SPLIT: "v1alpha4", ACCESS: "v1alpha3", SPECS: "v1alpha4", UDP: "v1alpha4"},
}
_MAX_WEIGHT = 2**31 - 1


def parse_versions(text: str) -> dict[str, str]:
    """Parse ``split=v1alphaN,access=v1alphaN,specs=v1alphaN``; raise ValueError naming the bad part."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        group, sep, version = part.partition("=")
        if not sep or group not in SERVED:
            raise ValueError(f"{part!r}: expected GROUP=VERSION with GROUP one of {', '.join(SERVED)}")
        if version not in SERVED[group]:
            raise ValueError(f"{part!r}: {group} has versions {', '.join(SERVED[group])}")
        out[group] = version
    missing = [g for g in SERVED if g not in out]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} (give all of split, access and specs)")
    out[UDP] = "v1alpha4" if out[SPECS] == "v1alpha4" else ""
    return out


def _older(version: str, than: str) -> bool:
    return int(version.removeprefix("v1alpha")) < int(than.removeprefix("v1alpha"))


@dataclass(frozen=True)
class _Versions:
    split: str
    access: str
    specs: str
    udp: str

    @classmethod
    def of(cls, options: Mapping[str, str]) -> _Versions:
        merged = {**PROFILES["latest"], **options}
        return cls(merged[SPLIT], merged[ACCESS], merged[SPECS], merged[UDP])

    def api(self, kind: SmiKind) -> str:
        version = {SmiKind.TRAFFIC_SPLIT: self.split, SmiKind.TRAFFIC_TARGET: self.access,
                   SmiKind.UDP_ROUTE: self.udp}.get(kind, self.specs)
        return f"{SMI_GROUPS[kind]}/{version}"


# kubectl's copy of the last applied input: re-emitted, it would describe the
# input object (another version, maybe another layout), not the output.
_NOT_KEPT = frozenset(("kubectl.kubernetes.io/last-applied-configuration",))
# The longest name the API server accepts (a DNS subdomain).
_MAX_NAME = 253


def _keep_meta(obj: TrafficSplit | TrafficTarget | HTTPRouteGroup | PortRoute,
               source: bool = False) -> dict[str, Any]:
    """Keep the object's own labels and annotations; *source* marks a generated object."""
    notes = {k: v for k, v in obj.meta.annotations.items() if k not in _NOT_KEPT}
    if source:
        notes[SOURCE_ANNOTATION] = source_ref(obj)
    return {"extra_labels": dict(obj.meta.labels), "annotations": notes, "provenance": False}


class SmiTranslator(Translator):
    """SMI in any version -> SMI in the versions a mesh serves."""

    name: ClassVar[str] = "smi"
    description: ClassVar[str] = "SMI itself, re-emitted at the versions a mesh serves (OSM, Traefik, FSM)"
    emits: ClassVar[tuple[OutputKind, ...]] = (
        OutputKind("split.smi-spec.io/v1alpha4", "TrafficSplit", "trafficsplits"),
        OutputKind("access.smi-spec.io/v1alpha3", "TrafficTarget", "traffictargets"),
        OutputKind("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", "httproutegroups"),
        OutputKind("specs.smi-spec.io/v1alpha4", "TCPRoute", "tcproutes"),
        OutputKind("specs.smi-spec.io/v1alpha4", "UDPRoute", "udproutes"),
    )

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        v = _Versions.of(em.options.smi_versions)
        if ts.matches and _older(v.split, "v1alpha3"):
            em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       f"split {v.split} has no matches; written without them it would split every "
                       "request, so it is not emitted")
            return
        if ts.matches and split_matches(ts, em) is None:
            # As on every target: a mesh would resolve a missing group its own
            # way, possibly as "no matches", which moves every request.
            return
        for path, host in ts.hosts():
            # Hosts are resolved already; consumers such as Traefik Mesh and
            # linkerd-smi read a bare Service name, which every version allows.
            em.finding(ts, path, FindingReason.REWRITTEN,
                       f"host {host.text!r} is written as the Service name it names, "
                       f"{host.service(em.options.cluster_domain)!r}")
        milli = [b.weight_milli for b in ts.backends]
        if v.split == "v1alpha1":
            values: list[object] = [weights.milli_to_quantity(w) for w in milli]
        else:
            values = list(weights.relative(milli, limit=_MAX_WEIGHT))
        spec: Obj = {
            "service": ts.service,
            "backends": [{"service": b.service, "weight": w}
                         for b, w in zip(ts.backends, values, strict=True)],
        }
        if ts.matches:
            spec["matches"] = [{"kind": r.kind.value, "name": r.name} for r in ts.matches]
        em.emit(v.api(SmiKind.TRAFFIC_SPLIT), ts.kind, ts.meta.namespace, ts.meta.name, spec, [ts],
                **_keep_meta(ts))

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        v = _Versions.of(em.options.smi_versions)
        if not tt.sources or not tt.rules:
            # It allows nothing, and so does its absence in an SMI mesh; written
            # out, an empty list is worse: Traefik Mesh reads "rules: []" as
            # every request allowed.
            empty = "sources" if not tt.sources else tt.rules_field
            why = ("; an empty list is not written, since Traefik Mesh reads it as allow-all"
                   if tt.sources else "")
            em.finding(tt, tt.path(empty), FindingReason.ACCESS_FAIL_CLOSED,
                       f"no {empty}: it allows nothing, and so does its absence: not emitted{why}")
            return
        rules = self._without_unservable_udp(tt, v, em)
        port = tt.port
        if rules is None:
            return
        ports: list[int | None] = [port]
        if port is not None and not _older(v.access, "v1alpha3"):
            scoped = self._port_as_routes(tt, rules, port, v, em)
            if scoped is None:
                return
            rules, ports = scoped, [None]
        elif _older(v.specs, "v1alpha4") and _older(v.access, "v1alpha3"):
            ports = self._route_ports_as_destination_ports(tt, rules, port, em)
            if not ports:
                return
        elif _older(v.specs, "v1alpha4") and self._route_ports(tt, rules, em):
            em.finding(tt, tt.path(tt.rules_field), FindingReason.ACCESS_FAIL_CLOSED,
                       f"specs {v.specs} routes cannot hold ports and access {v.access} has no "
                       "destination.port; not emitted")
            return
        if ports == [None] and v.access == "v1alpha1":
            # smi-sdk-go's v1alpha1 CRD requires destination.port although the
            # spec makes it optional; the API server would refuse the object.
            em.finding(tt, tt.path("destination"), FindingReason.NOT_EXPRESSIBLE,
                       "access v1alpha1 CRDs require destination.port and this target allows every "
                       "port; not emitted")
            return
        for one in ports:
            dest: Obj = {"kind": "ServiceAccount", "name": tt.destination.name,
                         "namespace": tt.destination.namespace}
            if one is not None:
                dest["port"] = one
            body: Obj = {
                "destination": dest,
                "sources": [{"kind": "ServiceAccount", "name": s.name, "namespace": s.namespace}
                            for s in tt.sources],
                ("specs" if v.access == "v1alpha1" else "rules"): [_rule(r) for r in rules],
            }
            name = tt.meta.name if len(ports) == 1 else f"{tt.meta.name}-{one}"
            em.emit(v.api(SmiKind.TRAFFIC_TARGET), tt.kind, tt.meta.namespace, name, body, [tt],
                    body_key=None if v.access == "v1alpha1" else "spec",
                    **_keep_meta(tt, source=len(ports) > 1))

    def finish(self, em: Emitter) -> None:
        v = _Versions.of(em.options.smi_versions)
        for group in sorted(em.inputs.http_route_groups, key=lambda g: (g.meta.namespace, g.meta.name)):
            self._route_group(group, v, em)
        for route in sorted(em.inputs.port_routes, key=lambda r: (r.meta.namespace, r.meta.name, r.kind)):
            self._port_route(route, v, em)

    # ---- TrafficTarget conversions ----------------------------------------

    def _without_unservable_udp(self, tt: TrafficTarget, v: _Versions, em: Emitter) -> list[Rule] | None:
        """Rules minus UDP rules the target versions cannot hold (narrower); None if none is left."""
        keep: list[Rule] = []
        for i, rule in enumerate(tt.rules):
            if rule.kind is SmiKind.UDP_ROUTE and (not v.udp or _older(v.access, "v1alpha3")):
                em.finding(tt, tt.path(f"{tt.rules_field}[{i}]"), FindingReason.ACCESS_FAIL_CLOSED,
                           f"access {v.access} with specs {v.specs} cannot reference a UDPRoute; "
                           "the rule is left out")
                continue
            keep.append(rule)
        if tt.rules and not keep:
            em.finding(tt, tt.path(tt.rules_field), FindingReason.ACCESS_FAIL_CLOSED,
                       "no rule is left; not emitted")
            return None
        return keep

    def _route_ports(self, tt: TrafficTarget, rules: Sequence[Rule],
                     em: Emitter) -> dict[SmiKind, set[int]] | None:
        """Ports of the port-scoped L4 rules, per kind.

        A kind with any all-port route is left out (it is not scoped). A
        missing route allows nothing in any version, so it adds no port.
        None when nothing is scoped.
        """
        scoped: dict[SmiKind, set[int]] = {}
        unscoped: set[SmiKind] = set()
        for rule in rules:
            if rule.kind is SmiKind.HTTP_ROUTE_GROUP:
                continue
            route = em.inputs.port_route(rule.kind, tt.meta.namespace, rule.name)
            if route is None:
                continue
            if route.ports:
                scoped.setdefault(rule.kind, set()).update(route.ports)
            else:
                unscoped.add(rule.kind)
        return {k: p for k, p in scoped.items() if k not in unscoped} or None

    def _port_as_routes(self, tt: TrafficTarget, rules: list[Rule], port: int, v: _Versions,
                        em: Emitter) -> list[Rule] | None:
        """Carry destination.port in generated routes, for access v1alpha3 (which has no port)."""
        field = tt.port_path()
        if _older(v.specs, "v1alpha4"):
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"access {v.access} has no destination.port and specs {v.specs} routes cannot "
                       "carry ports; not emitted rather than allowing every port")
            return None
        if any(rule.kind is not SmiKind.HTTP_ROUTE_GROUP
               and em.inputs.port_route(rule.kind, tt.meta.namespace, rule.name) is None
               for rule in rules):
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       "a referenced TCPRoute/UDPRoute is missing, so the port cannot be folded into "
                       "it safely; not emitted")
            return None
        out = [r for r in rules if r.kind is SmiKind.HTTP_ROUTE_GROUP]
        for kind, proto in ((SmiKind.TCP_ROUTE, Protocol.TCP), (SmiKind.UDP_ROUTE, Protocol.UDP)):
            of_kind = [r for r in rules if r.kind is kind]
            # TCP scope is needed when HTTP rules exist too: it carries their port.
            if not of_kind and not (kind is SmiKind.TCP_ROUTE and out):
                continue
            routes = [r for r in (em.inputs.port_route(kind, tt.meta.namespace, x.name)
                                  for x in of_kind) if r is not None]
            all_ports = not routes or any(not r.ports for r in routes)
            if not all_ports and port not in {p for r in routes for p in r.ports}:
                em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                           f"port {port} is outside the ports of every {kind.value}; this target "
                           "allows nothing and is not emitted")
                return None
            name = f"{tt.meta.name}-{proto.value.lower()}-{port}"
            em.emit(v.api(kind), kind.value, tt.meta.namespace, name,
                    {"matches": {"ports": [port]}}, [tt], provenance=False,
                    annotations={SOURCE_ANNOTATION: source_ref(tt)})
            out.append(Rule(kind, name))
        em.finding(tt, field, FindingReason.REWRITTEN,
                   f"access {v.access} has no destination.port; port {port} is kept in generated "
                   "routes " + ", ".join(r.name for r in out if r.kind is not SmiKind.HTTP_ROUTE_GROUP))
        return out

    def _route_ports_as_destination_ports(self, tt: TrafficTarget, rules: list[Rule], port: int | None,
                                          em: Emitter) -> list[int | None]:
        """For specs without route ports: carry the route ports as destination.port.

        Returns the destination ports to write, one TrafficTarget each (None:
        every port); several route ports give several TrafficTargets. Empty
        when nothing is allowed (reported).
        """
        scope = self._route_ports(tt, rules, em)
        if not scope:
            return [port]
        ports = sorted(set().union(*scope.values()))
        field = tt.path(tt.rules_field)
        if port is not None:
            if port in ports:
                return [port]  # destination.port already holds the whole scope
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"route ports {ports} do not include destination port {port}; nothing is "
                       "allowed, so it is not emitted")
            return []
        if len(ports) == 1:
            em.finding(tt, field, FindingReason.REWRITTEN,
                       f"routes of this specs version have no ports; port {ports[0]} is kept as "
                       "destination.port")
            return [ports[0]]
        names = [f"{tt.meta.name}-{p}" for p in ports]
        if max(len(n) for n in names) > _MAX_NAME:
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"route ports {ports} need one TrafficTarget per port, but "
                       f"'{tt.meta.name}-<port>' is longer than {_MAX_NAME} characters; not emitted")
            return []
        em.finding(tt, field, FindingReason.REWRITTEN,
                   f"routes of this specs version have no ports; ports {ports} are kept as the "
                   f"destination.port of one TrafficTarget per port: {', '.join(names)}")
        return list(ports)

    # ---- routes --------------------------------------------------------------

    def _route_group(self, group: HTTPRouteGroup, v: _Versions, em: Emitter) -> None:
        matches: list[Obj] = []
        for i, m in enumerate(group.matches):
            if m.headers and v.specs == "v1alpha1":
                em.finding(group, group.path(f"matches[{i}].headers"), FindingReason.NOT_EXPRESSIBLE,
                           "specs v1alpha1 has no header matches; the match is left out, which narrows "
                           "both splits and access")
                continue
            out: Obj = {"name": m.name}
            if m.methods:
                out["methods"] = list(m.methods)
            if m.path_regex is not None:
                out["pathRegex"] = m.path_regex
            if m.headers:
                # The served CRDs (smi-sdk-go, OSM, FSM) declare a list of maps.
                out["headers"] = [{h.name: h.value} for h in m.headers]
            matches.append(out)
        top = v.specs in ("v1alpha1", "v1alpha2")
        em.emit(v.api(SmiKind.HTTP_ROUTE_GROUP), group.kind, group.meta.namespace, group.meta.name,
                {"matches": matches}, [group], body_key=None if top else "spec", **_keep_meta(group))

    def _port_route(self, route: PortRoute, v: _Versions, em: Emitter) -> None:
        kind = SmiKind(route.kind)
        if kind is SmiKind.UDP_ROUTE and not v.udp:
            em.finding(route, route.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                       "no UDPRoute in these versions; not emitted (rules using it were left out)")
            return
        version = v.api(kind).rsplit("/", 1)[1]
        spec: Obj | None
        if version in ("v1alpha1", "v1alpha2"):
            spec = None
        elif version == "v1alpha3":
            spec = {}
        else:
            # The served CRDs (smi-sdk-go, OSM, FSM) require matches.ports (empty
            # means every port) and have no matches.name, which the spec lists.
            spec = {"matches": {"ports": list(route.ports)}}
            if route.match_name:
                em.finding(route, route.path("matches.name"), FindingReason.NOT_EXPRESSIBLE,
                           "the served TCPRoute/UDPRoute CRDs have no matches.name; left out "
                           "(TrafficTargets cannot select TCP/UDP matches by name)")
        if route.ports and version != "v1alpha4":
            em.finding(route, route.path("matches.ports"), FindingReason.NOT_EXPRESSIBLE,
                       f"specs {version} routes have no ports; TrafficTargets in the input that use "
                       "it carry them as destination.port (one TrafficTarget per port) or are not "
                       "emitted")
        em.emit(v.api(kind), route.kind, route.meta.namespace, route.meta.name, spec, [route],
                body_key=None if spec is None else "spec", **_keep_meta(route))


def _rule(rule: Rule) -> Obj:
    out: Obj = {"kind": rule.kind.value, "name": rule.name}
    if rule.matches is not None:
        out["matches"] = list(rule.matches)
    return out
