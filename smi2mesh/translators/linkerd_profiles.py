"""Linkerd ServiceProfiles: splits for Linkerd before GAMMA, and their precedence over routes.

* Linkerd before GAMMA (< 2.14; the ``2.13`` profile, ``Feature.LINKERD_SERVICE_PROFILES``)
  routes a split only through a ServiceProfile's ``dstOverrides``, which is
  what linkerd-smi wrote: a ServiceProfile named ``<svc>.<ns>.svc.<cluster-domain>``
  in the split's namespace, one override per backend with authority
  ``<backend>.<ns>.svc.<cluster-domain>:<port>`` and the relative weight.
  Overrides apply to every request to the Service, so a split with
  ``matches`` is a finding and is not written (it would move every request),
  and so is a root Service with several ports (an authority names one port).
* On every release, while a ServiceProfile of that name with routes or
  dstOverrides exists, Linkerd routes the Service by it and ignores the
  HTTPRoutes written for it (linkerd2-proxy ``should_override_policy``); one that
  smi2mesh does not manage is reported as a ``Conflict`` (the operator sets
  ``Conflict=True`` and posts an Event), never overwritten or deleted.
"""

from __future__ import annotations

from smi2mesh import weights
from smi2mesh.findings import FindingReason
from smi2mesh.model import ServiceProfile, TrafficSplit
from smi2mesh.translators.base import Emitter, fqdn, split_matches
from smi2mesh.translators.gateway_api import root_ports

PROFILE_GROUP = "linkerd.io"


def foreign_profile(ts: TrafficSplit, em: Emitter) -> ServiceProfile | None:
    """The ServiceProfile of the split's root Service in the input, unless smi2mesh manages it."""
    found = em.inputs.service_profile(ts.meta.namespace, fqdn(ts.service, ts.meta.namespace, em.options))
    return found if found is not None and not found.managed else None


def report_shadowing(ts: TrafficSplit, em: Emitter) -> None:
    """A Conflict finding when a ServiceProfile makes the split's routes inert.

    Only one with routes or dstOverrides does (:attr:`ServiceProfile.overrides_routes`).
    """
    sp = foreign_profile(ts, em)
    if sp is None or not sp.overrides_routes:
        return
    overrides = (f" (its dstOverrides: {', '.join(sp.overrides)})" if sp.overrides
                 else f" (with {sp.routes} route(s))")
    em.finding(ts, ts.path("service"), FindingReason.CONFLICT,
               f"ServiceProfile {sp.meta.namespace}/{sp.meta.name}{overrides} exists: while it does, "
               f"Linkerd routes Service {ts.service} by it and ignores the HTTPRoutes written for it, "
               "so this split has no effect; delete the ServiceProfile (linkerd-smi wrote such "
               "profiles) once the routes should take over")


def legacy_split(ts: TrafficSplit, em: Emitter) -> None:
    """A ServiceProfile with ``dstOverrides`` for one TrafficSplit (Linkerd before GAMMA)."""
    ns = ts.meta.namespace
    name = fqdn(ts.service, ns, em.options)
    if not em.claim(("linkerd-service-profile", ns, ts.service), ts, ts.path("service"),
                    f"ServiceProfile {ns}/{name}"):
        return
    matched = split_matches(ts, em)
    if matched is None:
        return
    if ts.matches:
        em.finding(ts, ts.path("matches"), FindingReason.NOT_EXPRESSIBLE,
                   f"{em.profile.describe()} splits only through ServiceProfile dstOverrides, which "
                   "apply to every request to the Service and cannot match requests; split not emitted")
        return
    ports = root_ports(ts, em, "Linkerd's ServiceProfile")
    if ports is None:
        return
    tcp = [p for p in ports if p.protocol.upper() == "TCP"]
    if len(tcp) != 1:
        em.finding(ts, ts.path("service"), FindingReason.NOT_EXPRESSIBLE,
                   f"Service {ts.service} has {len(tcp)} TCP ports; a ServiceProfile's dstOverrides "
                   "apply to every port of the Service and each authority names one port, so the "
                   "split cannot keep each port's traffic on its port; not emitted")
        return
    sp = foreign_profile(ts, em)
    if sp is not None:
        em.finding(ts, ts.path("service"), FindingReason.CONFLICT,
                   f"ServiceProfile {ns}/{name} exists and is not managed by smi2mesh; it is left "
                   "unchanged and the split is not written")
        return
    port = tcp[0].port
    rel = weights.relative([b.weight_milli for b in ts.backends])
    overrides = [{"authority": f"{fqdn(b.service, ns, em.options)}:{port}", "weight": w}
                 for b, w in zip(ts.backends, rel, strict=True)]
    em.emit(em.profile.api(PROFILE_GROUP, "ServiceProfile"), "ServiceProfile", ns, name,
            {"dstOverrides": overrides}, [ts])
