"""The registry of target meshes. Adding a mesh adds one entry here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from smi2mesh.translators.base import Translator
from smi2mesh.translators.gamma import GammaTranslator

# registry-imports

TRANSLATORS: Mapping[str, Translator] = MappingProxyType({
    t.name: t
    for t in (
        # registry-entries
        GammaTranslator(),
    )
})

__all__ = ["TRANSLATORS", "Translator"]
