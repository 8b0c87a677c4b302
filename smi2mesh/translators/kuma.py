"""Target ``kuma``: Kuma's targetRef policies (``kuma.io/v1alpha1``, checked against Kuma 2.14.3).

* TrafficSplit -> MeshHTTPRoute (HTTP ports of the root Service) and/or
  MeshTCPRoute (TCP ports), as *producer* policies in the split's namespace:
  ``to[].targetRef`` is the root MeshService port, so every client in the
  mesh is routed. Kuma appends its own catch-all route to the root service
  to every MeshHTTPRoute rule set (``prepareRoutes`` in
  ``pkg/plugins/policies/meshhttproute/plugin/v1alpha1/listeners.go``), so
  requests matching none of the split's matches keep going to the root.
* TrafficTarget -> MeshTrafficPermission in the destination namespace,
  selecting the destination's Dataplanes by the ``k8s.kuma.io/service-account``
  label and allowing each source by its exact SPIFFE ID. It is L4/identity
  only: HTTP rules and UDP rules fail closed (``--widen-l7-to-l4`` grants HTTP
  rules at L4 instead, reported as ``Widened``). A port restriction is exact
  when every inbound of the destination is inside it, or per inbound with
  ``targetRef.sectionName`` (Kuma 2.14.3 accepts it on a Dataplane targetRef of
  an inbound policy: ``ValidateTargetRef``, pkg/core/resources/apis/mesh/validators.go:386-395).
* Every destination gets a deny-by-default policy (see :meth:`KumaTranslator.finish`).
* Releases without MeshTrafficPermission ``rules`` (Kuma 2.10-2.11) get ``from``
  entries instead, naming each source by the tags of its proxies (pod labels,
  ``k8s.kuma.io/namespace``; :func:`smi2mesh.translators.kuma_legacy.identity_tags`),
  and a ``from`` Mesh Deny as the deny-by-default. The legacy profile
  (TrafficRoute/TrafficPermission) is :mod:`smi2mesh.translators.kuma_legacy`.

Prerequisites Kuma needs and SMI does not carry are reported as findings:
references to MeshService ports resolve only with ``meshServices.mode``
enabled on the Mesh, and SPIFFE IDs of the form
``spiffe://<trust domain>/ns/<ns>/sa/<sa>`` are issued only by a
MeshIdentity (Kuma's default trust domain is ``<mesh>.<zone>.mesh.local``,
not the ``--trust-domain`` used here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import (
    HTTPMatch,
    Identity,
    Inputs,
    ServicePort,
    TrafficSplit,
    TrafficTarget,
)
from smi2mesh.regex import MatchType, classify_value
from smi2mesh.translators import kuma_legacy, profiles
from smi2mesh.translators.base import (
    Emitter,
    Obj,
    Options,
    OutputKind,
    TranslationResult,
    Translator,
    identity_l4_grants,
    split_matches,
    target_port,
)
from smi2mesh.translators.gateway_api import is_tcp_only, root_ports, route_matches
from smi2mesh.translators.profiles import Feature

KUMA_V1ALPHA1 = "kuma.io/v1alpha1"
MESH_LABEL = "kuma.io/mesh"
# Kuma reads a policy's mesh from this label only, defaulting to "default"
# (MeshTrafficPermission.GetMesh); set it explicitly so the object says so.
MESH = "default"
SA_LABEL = "k8s.kuma.io/service-account"
# Kuma's MeshService copies a port's appProtocol verbatim, defaulting to tcp;
# only these make it route HTTP (core_meta.HTTPBasedProtocols).
KUMA_HTTP_PROTOCOLS = frozenset({"http", "http2", "grpc"})
# spiffeid.FromString: the trust domain of a SPIFFE ID the webhook accepts.
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")


def kuma_labels() -> dict[str, str]:
    """Labels every emitted Kuma policy carries besides the managed-by label."""
    return {MESH_LABEL: MESH}


def section_name(port: ServicePort) -> str:
    """Kuma's MeshService port name: the Service port's name, else its number."""
    return port.name or str(port.port)


def spiffe_id(identity: Identity, trust_domain: str) -> str:
    """SPIFFE ID a Kubernetes MeshIdentity issues with its default path template."""
    return f"spiffe://{trust_domain}/ns/{identity.namespace}/sa/{identity.name}"


def header_matches(match: HTTPMatch) -> list[Obj]:
    """Kuma header matches; literal, prefix and presence forms stay readable."""
    out: list[Obj] = []
    for h in match.headers:
        pat = classify_value(h.value)
        if pat.type is MatchType.EXACT:
            out.append({"type": "Exact", "name": h.name, "value": pat.value})
        elif pat.type is MatchType.PREFIX:
            out.append({"type": "Prefix", "name": h.name, "value": pat.value})
        elif pat.type is MatchType.ANY:
            # ".*" full-matches any value, but only of a header that is sent.
            out.append({"type": "Present", "name": h.name})
        else:
            out.append({"type": "RegularExpression", "name": h.name, "value": pat.full_regex()})
    return out


def backend_refs(ts: TrafficSplit, port: int) -> list[Obj]:
    """Weighted MeshService backendRefs; a port makes Kuma resolve a real MeshService."""
    rel = weights.relative([b.weight_milli for b in ts.backends])
    return [
        {"kind": "MeshService", "name": b.service, "namespace": ts.meta.namespace, "port": port,
         "weight": w}
        for b, w in zip(ts.backends, rel, strict=True)
    ]


def _root_ref(ts: TrafficSplit, port: ServicePort) -> Obj:
    return {"kind": "MeshService", "name": ts.service, "namespace": ts.meta.namespace,
            "sectionName": section_name(port)}


class KumaTranslator(Translator):
    """TrafficSplit -> MeshHTTPRoute/MeshTCPRoute; TrafficTarget -> MeshTrafficPermission."""

    name: ClassVar[str] = "kuma"
    description: ClassVar[str] = (
        "Kuma MeshHTTPRoute/MeshTCPRoute on MeshServices, MeshTrafficPermission by SPIFFE ID")
    emits: ClassVar[tuple[OutputKind, ...]] = (
        OutputKind("kuma.io/v1alpha1", "MeshHTTPRoute", "meshhttproutes"),
        OutputKind("kuma.io/v1alpha1", "MeshTCPRoute", "meshtcproutes"),
        OutputKind("kuma.io/v1alpha1", "MeshTrafficPermission", "meshtrafficpermissions"),
        *kuma_legacy.LEGACY.emits,
    )

    def translate(self, inputs: Inputs, options: Options) -> TranslationResult:
        """The new policies, or the legacy ones where the profile asks for them."""
        if (options.profile or profiles.default(self.name)).has(Feature.KUMA_LEGACY):
            return kuma_legacy.LEGACY.translate(inputs, options)
        return super().translate(inputs, options)

    # ---- TrafficSplit ------------------------------------------------------

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        ns = ts.meta.namespace
        # Kuma merges every route that targets a MeshService; two splits of one
        # root would blend their backends, so the first one owns the root.
        if not em.claim(("kuma-root", ns, ts.service), ts, ts.path("service"),
                        f"Service {ns}/{ts.service}"):
            return
        matched = split_matches(ts, em)
        if matched is None:
            return
        ports = root_ports(ts, em, "Kuma")
        if ports is None:
            return
        # Whether the split is scoped by matches comes from the SMI field, not
        # from what the groups hold: a group without matches matches nothing.
        scoped = bool(ts.matches)
        matches = self._matches(ts, matched, em)
        if scoped and not matches:
            # Every match was inexpressible (each reported); splitting without
            # them would move every request.
            return
        http_tos: list[Obj] = []
        tcp_tos: list[Obj] = []
        for p in ports:
            if p.protocol.upper() != "TCP":
                em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                           f"port {p.port}/{p.protocol} of Service {ts.service}: Kuma's MeshService "
                           "has only TCP ports; not split")
                continue
            proto = p.app_protocol.lower()
            if proto in KUMA_HTTP_PROTOCOLS:
                http = True
            elif is_tcp_only(p) or proto:
                http = False
                if scoped:
                    em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                               f"port {p.port} of Service {ts.service} is not HTTP for Kuma "
                               f"(appProtocol {p.app_protocol or 'unset'}, name {p.name or 'unset'}), "
                               "so HTTP matches cannot apply; no route emitted for it")
                    continue
            elif scoped:
                http = True
                em.finding(ts, ts.path("service"), FindingReason.PREREQUISITE,
                           f"Kuma treats port {p.port} of Service {ts.service} as tcp until it sets "
                           "appProtocol: http (or http2, grpc); until then the MeshHTTPRoute does not "
                           "apply and every request goes to the root Service")
            else:
                # Kuma's default for a port without appProtocol is tcp, and a
                # MeshTCPRoute also applies to HTTP ports that have no
                # MeshHTTPRoute, so the split holds whatever Kuma decides.
                http = False
            if not http:
                tcp_tos.append({"targetRef": _root_ref(ts, p),
                                "rules": [{"default": {"backendRefs": backend_refs(ts, p.port)}}]})
                continue
            rule_matches = matches or [{"path": {"type": "PathPrefix", "value": "/"}}]
            http_tos.append({"targetRef": _root_ref(ts, p),
                             "rules": [{"matches": rule_matches,
                                        "default": {"backendRefs": backend_refs(ts, p.port)}}]})
        if not http_tos and not tcp_tos:
            return
        em.finding(ts, ts.path("service"), FindingReason.PREREQUISITE,
                   "Kuma resolves MeshService references only when the Mesh sets "
                   "spec.meshServices.mode (Exclusive or Everywhere); with the default (Disabled) "
                   "the route has no effect")
        top = {"kind": "Mesh"}
        if http_tos:
            em.emit(KUMA_V1ALPHA1, "MeshHTTPRoute", ns, ts.meta.name, {"targetRef": top, "to": http_tos},
                    [ts], extra_labels=kuma_labels())
        if tcp_tos:
            em.emit(KUMA_V1ALPHA1, "MeshTCPRoute", ns, ts.meta.name, {"targetRef": top, "to": tcp_tos},
                    [ts], extra_labels=kuma_labels())

    def _matches(self, ts: TrafficSplit, matched: list[tuple[int, HTTPMatch]], em: Emitter) -> list[Obj]:
        """Kuma matches of every SMI match, leaving out (and reporting) the inexpressible ones."""
        out: list[Obj] = []
        for i, m in matched:
            names = [h.name for h in m.headers]
            if len(set(names)) != len(names):
                # Kuma keeps only the first condition per header name, which
                # would route more requests to the backends than SMI does.
                em.finding(ts, ts.path(f"matches[{i}]"), FindingReason.NOT_EXPRESSIBLE,
                           f"match {m.name!r} has several conditions on one header; Kuma keeps only "
                           "the first, so the match is left out and its requests go to the root Service")
                continue
            out.extend(route_matches(m, header_matches))
        return out

    # ---- TrafficTarget -----------------------------------------------------

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        run = em.state(_KumaRun)
        dest = tt.destination
        run.destinations.setdefault((dest.namespace, dest.name), []).append(tt)
        everywhere, sections = self._scopes(tt, em)
        if not everywhere and not sections:
            return
        td = em.options.trust_domain
        rules_mode = em.profile.has(Feature.KUMA_MTP_RULES)
        if rules_mode and not _TRUST_DOMAIN.match(td):
            em.finding(tt, tt.path("sources"), FindingReason.ACCESS_FAIL_CLOSED,
                       f"trust domain {td!r} is not a valid SPIFFE trust domain; the TrafficTarget "
                       "grants nothing")
            return
        if run.anchor is None:
            run.anchor = tt
        sources = sorted(set(tt.sources), key=lambda s: (s.namespace, s.name))
        grant: Obj = {"rules": [{"default": {"allow": [
            {"spiffeID": {"type": "Exact", "value": spiffe_id(s, td)}} for s in sources]}}]}
        if not rules_mode:
            allowed = _from_sources(tt, em)
            if not allowed:
                return
            grant = {"from": allowed}
        selector = {"kind": "Dataplane", "labels": {SA_LABEL: dest.name}}
        if everywhere:
            em.emit(KUMA_V1ALPHA1, "MeshTrafficPermission", dest.namespace, tt.meta.name,
                    {"targetRef": selector, **grant}, [tt], extra_labels=kuma_labels())
            return
        for port, section in sorted(sections.items()):
            em.emit(KUMA_V1ALPHA1, "MeshTrafficPermission", dest.namespace, f"{tt.meta.name}-{port}",
                    {"targetRef": {**selector, "sectionName": section}, **grant}, [tt],
                    extra_labels=kuma_labels())

    def _scopes(self, tt: TrafficTarget, em: Emitter) -> tuple[bool, dict[int, str]]:
        """Where the TrafficTarget's grants apply: every inbound, and/or inbounds by port.

        Anything narrower than an inbound (HTTP rules, a port that is not an
        inbound or cannot be named) is reported, not widened, unless
        ``--widen-l7-to-l4`` asks for HTTP rules at L4.
        """
        everywhere = False
        sections: dict[int, str] = {}
        for g in identity_l4_grants(tt, em, "Kuma", "MeshTrafficPermission"):
            if not g.ports:
                everywhere = True
                continue
            field = tt.port_path() if tt.port is not None else g.field
            found = inbounds(tt.destination, em)
            if isinstance(found, str):
                em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                           f"MeshTrafficPermission cannot limit a grant to port(s) "
                           f"{', '.join(map(str, g.ports))} without knowing the destination's "
                           f"inbounds ({found}); not emitted")
                continue
            if {i.port for i in found} <= set(g.ports):
                # Every inbound is inside the grant: a Dataplane-wide policy is exact.
                everywhere = True
                continue
            for port in g.ports:
                section = _section(found, port)
                if section is None:
                    em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                               f"port {port} is no inbound of the destination's Dataplanes (the "
                               "ports of the Services selecting its pods), so Kuma's mesh cannot "
                               "reach it; the grant for it allows nothing")
                elif not section:
                    em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                               f"the inbounds on port {port} are named differently on the "
                               "destination's Dataplanes, or their name names another port too, so "
                               "no targetRef.sectionName selects exactly them; not emitted")
                else:
                    sections[port] = section
        return everywhere, sections

    def finish(self, em: Emitter) -> None:
        """A deny-by-default per destination, and the prerequisites once per run."""
        run = em.state(_KumaRun)
        td = em.options.trust_domain
        rules_mode = em.profile.has(Feature.KUMA_MTP_RULES)
        bad_td = rules_mode and not _TRUST_DOMAIN.match(td)
        for (ns, name), tts in sorted(run.destinations.items()):
            policy = f"{name}-smi-default-deny"
            if bad_td or len(policy) > _MAX_NAME:
                why = ("the trust domain is not a valid SPIFFE trust domain"
                       if bad_td else f"{policy!r} is too long a name")
                for tt in tts:
                    em.finding(tt, tt.path("destination"), FindingReason.ACCESS_FAIL_CLOSED,
                               f"no deny-by-default is emitted for {ns}/{name} ({why}); {KUMA_DEFAULT}")
                continue
            # Once a `rules` policy selects an inbound, Kuma's RBAC denies whatever
            # no allow matches (on_no_match deny, rbac_configurer.go createMatcher),
            # and legacy `from` policies and TrafficPermissions no longer apply to it
            # (plugin.go Apply). The deny names the bare trust-domain SPIFFE ID, which
            # no workload carries, so it denies nothing itself and never outweighs
            # an allow (every deny wins over every allow).
            spec = {"targetRef": {"kind": "Dataplane", "labels": {SA_LABEL: name}},
                    "rules": [{"default": {"deny": [
                        {"spiffeID": {"type": "Exact", "value": f"spiffe://{td}"}}]}}]}
            if not rules_mode:
                # `from` entries merge by specificity: every MeshSubset allow
                # outranks this Mesh-wide deny for the clients it names.
                spec = {"targetRef": spec["targetRef"],
                        "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Deny"}}]}
            em.emit(KUMA_V1ALPHA1, "MeshTrafficPermission", ns, policy, spec, tts,
                    extra_labels=kuma_labels())
            if run.anchor is None:
                run.anchor = tts[0]
        if run.anchor is not None and not rules_mode:
            em.finding(run.anchor, run.anchor.path("sources"), FindingReason.PREREQUISITE,
                       "Kuma enforces MeshTrafficPermission only with mTLS; `from` matches sources by "
                       "the tags of their proxies (pod labels and k8s.kuma.io/namespace), which Kuma "
                       "gives only pods a Service selects")
        elif run.anchor is not None:
            em.finding(run.anchor, run.anchor.path("sources"), FindingReason.PREREQUISITE,
                       f"Kuma enforces MeshTrafficPermission only with mTLS, and issues SPIFFE IDs "
                       f"spiffe://{td}/ns/<namespace>/sa/<serviceaccount> only from a MeshIdentity with "
                       f"trust domain {td} (Kuma's default is <mesh>.<zone>.mesh.local); otherwise "
                       "the sources are not recognised and are denied")


# Kubernetes object names (DNS-1123 subdomains) are at most this long.
_MAX_NAME = 253


def _from_sources(tt: TrafficTarget, em: Emitter) -> list[Obj]:
    """``from`` allow entries naming each source by its proxies' tags; unmatchable ones reported."""
    out: list[Obj] = []
    for i, s in enumerate(tt.sources):
        found = kuma_legacy.identity_tags(s, em)
        if isinstance(found, str):
            em.finding(tt, tt.path(f"sources[{i}]"), FindingReason.ACCESS_FAIL_CLOSED,
                       f"{em.profile.describe()} names sources by the tags of their proxies (no "
                       f"MeshTrafficPermission rules before Kuma 2.12), and {found}; this source is "
                       "not allowed")
            continue
        out.extend({"targetRef": {"kind": "MeshSubset", "tags": tags}, "default": {"action": "Allow"}}
                   for tags in found)
    return out
KUMA_DEFAULT = ("Kuma's default applies to it: with mTLS, an inbound no MeshTrafficPermission "
                "`rules` select is denied, unless a TrafficPermission exists (such as "
                "allow-all-<mesh>, created when kuma-cp's createMeshRoutingResources is on), "
                "which then allows; without mTLS everything is allowed")


@dataclass
class _KumaRun:
    """What the access part of one run gathers for :meth:`KumaTranslator.finish`."""

    destinations: dict[tuple[str, str], list[TrafficTarget]] = field(default_factory=dict)
    anchor: TrafficTarget | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound of a Dataplane: the container port and the name Kuma gives it."""

    port: int
    section: str


def inbounds(dest: Identity, em: Emitter) -> list[Inbound] | str:
    """The inbounds Kuma gives the Dataplanes of ServiceAccount *dest*, or why they are unknown.

    Re-expressed from Kuma v2.14.3: one inbound per TCP port of every Service
    selecting the pod (``inboundForService``,
    pkg/plugins/runtime/k8s/controllers/inbound_converter.go:59-104), on the
    container port the Service's targetPort resolves to: a name looks up a
    container port of that name and protocol (none: no inbound), a number is
    itself, named after a container port with that number if there is one
    (``FindPort``, pkg/plugins/runtime/k8s/util/util.go:73-107). The inbound's
    ``sectionName`` is that name, else the port number
    (``Dataplane_Networking_Inbound.GetSectionName``, api/mesh/v1alpha1/dataplane_helpers.go:434).
    """
    workloads = em.inputs.workloads_of(dest.namespace, dest.name)
    if not workloads:
        return f"no workload in the input runs as ServiceAccount {dest.namespace}/{dest.name}"
    out: list[Inbound] = []
    for w in workloads:
        selecting = em.inputs.services_selecting(w)
        if not selecting:
            return f"no Service in the input selects the pods of {w.kind} {w.meta.namespace}/{w.meta.name}"
        for svc in selecting:
            for sp in svc.ports:
                found = target_port(sp, w) if sp.protocol.upper() == "TCP" else None
                if found is not None:
                    port, name = found
                    out.append(Inbound(port, name or str(port)))
    return out


def _section(found: list[Inbound], port: int) -> str | None:
    """The sectionName selecting exactly the inbounds on *port*: None if there is none,
    "" if no name does (named differently on different Dataplanes, or shared with another port)."""
    names = {i.section for i in found if i.port == port}
    if not names:
        return None
    if len(names) > 1:
        return ""
    (name,) = names
    return name if all(i.port == port for i in found if i.section == name) else ""
