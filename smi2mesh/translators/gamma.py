"""Target ``gamma``: Gateway API routes with Service parents (the GAMMA initiative).

The standard that succeeded SMI. It routes, but has no authorization API
(GEP-3779 is still provisional), so TrafficTargets are reported, not emitted.
"""

from __future__ import annotations

from typing import ClassVar

from smi2mesh.findings import FindingReason
from smi2mesh.model import TrafficSplit, TrafficTarget
from smi2mesh.translators.base import GATEWAY_ROUTES, Emitter, OutputKind, Translator
from smi2mesh.translators.gateway_api import split_routes


class GammaTranslator(Translator):
    """TrafficSplit -> HTTPRoute/TCPRoute; TrafficTarget -> finding."""

    name: ClassVar[str] = "gamma"
    description: ClassVar[str] = "Gateway API HTTPRoute/TCPRoute with Service parentRefs"
    emits: ClassVar[tuple[OutputKind, ...]] = GATEWAY_ROUTES

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        split_routes(ts, em)

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        em.finding(tt, tt.path("destination"), FindingReason.NOT_EXPRESSIBLE,
                   "Gateway API has no authorization API (GEP-3779 is provisional); "
                   "no access policy emitted, enforce it with the mesh's own target")
