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
  only: HTTP rules, port-scoped rules and UDP rules fail closed.

Prerequisites Kuma needs and SMI does not carry are reported as findings:
references to MeshService ports resolve only with ``meshServices.mode``
enabled on the Mesh, and SPIFFE IDs of the form
``spiffe://<trust domain>/ns/<ns>/sa/<sa>`` are issued only by a
MeshIdentity (Kuma's default trust domain is ``<mesh>.<zone>.mesh.local``,
not the ``--trust-domain`` used here).
"""

from __future__ import annotations

import re
from typing import ClassVar

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import HTTPMatch, Identity, Protocol, ServicePort, TrafficSplit, TrafficTarget
from smi2mesh.regex import MatchType, classify_value
from smi2mesh.translators.base import (
    Emitter,
    Grant,
    Obj,
    OutputKind,
    Translator,
    grants,
    split_matches,
)
from smi2mesh.translators.gateway_api import is_tcp_only, root_ports, route_matches

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
    )

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
        allowed = [g for g in grants(tt, em) if self._expressible(tt, g, em)]
        if not allowed:
            return
        td = em.options.trust_domain
        if not _TRUST_DOMAIN.match(td):
            em.finding(tt, tt.path("sources"), FindingReason.ACCESS_FAIL_CLOSED,
                       f"trust domain {td!r} is not a valid SPIFFE trust domain; nothing is allowed")
            return
        dest = tt.destination
        sources = sorted(set(tt.sources), key=lambda s: (s.namespace, s.name))
        spec: Obj = {
            "targetRef": {"kind": "Dataplane", "labels": {SA_LABEL: dest.name}},
            "rules": [{"default": {"allow": [
                {"spiffeID": {"type": "Exact", "value": spiffe_id(s, td)}} for s in sources
            ]}}],
        }
        em.finding(tt, tt.path("sources"), FindingReason.PREREQUISITE,
                   f"Kuma enforces MeshTrafficPermission only with mTLS, and issues SPIFFE IDs "
                   f"spiffe://{td}/ns/<namespace>/sa/<serviceaccount> only from a MeshIdentity with "
                   f"trust domain {td} (Kuma's default is <mesh>.<zone>.mesh.local); otherwise "
                   "these sources are not recognised and are denied")
        em.emit(KUMA_V1ALPHA1, "MeshTrafficPermission", dest.namespace, tt.meta.name, spec, [tt],
                extra_labels=kuma_labels())

    def _expressible(self, tt: TrafficTarget, g: Grant, em: Emitter) -> bool:
        """Whether a grant is an all-port TCP allow; anything narrower is reported, not widened."""
        if g.protocol is Protocol.UDP:
            em.finding(tt, g.field, FindingReason.ACCESS_FAIL_CLOSED,
                       "Kuma's data plane proxies only TCP, MeshTrafficPermission cannot allow UDP; "
                       "not allowed")
            return False
        if g.http is not None:
            for field in sorted(set(g.http_fields)):
                em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                           "MeshTrafficPermission allows whole connections by identity only; it cannot "
                           "restrict HTTP methods, paths or headers, so this HTTP rule is not allowed")
            return False
        if g.ports:
            field = tt.port_path() if tt.port is not None else g.field
            em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                       f"MeshTrafficPermission cannot restrict ports {list(g.ports)} exactly (a Dataplane "
                       "targetRef.sectionName names an inbound by its container port name when it has "
                       "one); not allowed")
            return False
        return True
