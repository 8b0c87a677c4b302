"""The registry of target meshes. Adding a mesh adds one entry here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from smi2mesh.translators.base import Translator
from smi2mesh.translators.cilium import CiliumTranslator
from smi2mesh.translators.consul import ConsulTranslator
from smi2mesh.translators.gamma import GammaTranslator
from smi2mesh.translators.istio import IstioTranslator
from smi2mesh.translators.kuma import KumaTranslator
from smi2mesh.translators.linkerd import LinkerdTranslator
from smi2mesh.translators.smi_native import SmiTranslator

TRANSLATORS: Mapping[str, Translator] = MappingProxyType({
    t.name: t
    for t in (
        IstioTranslator(),
        LinkerdTranslator(),
        ConsulTranslator(),
        KumaTranslator(),
        CiliumTranslator(),
        GammaTranslator(),
        SmiTranslator(),
    )
})

__all__ = ["TRANSLATORS", "Translator"]
