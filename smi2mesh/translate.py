"""The single translation entry point shared by the CLI and the operator."""

from __future__ import annotations

import gc

from smi2mesh.model import Inputs
from smi2mesh.translators import TRANSLATORS
from smi2mesh.translators.base import Options, TranslationResult


class UnknownMeshError(ValueError):
    """The requested target is not registered."""


def translate(inputs: Inputs, mesh: str, options: Options | None = None) -> TranslationResult:
    """Translate parsed SMI *inputs* into objects of *mesh*, with findings.

    Pure: no I/O, no clock, no Kubernetes client. The same inputs give the
    same result, object for object.
    """
    translator = TRANSLATORS.get(mesh)
    if translator is None:
        raise UnknownMeshError(f"unknown mesh {mesh!r}; choose one of {', '.join(TRANSLATORS)}")
    # Translation builds plain trees that reference counting frees; the cyclic
    # collector would instead walk every parsed object again and again (it
    # cost 2-3x the translation itself on a 20,000-object corpus).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return translator.translate(inputs, options or Options())
    finally:
        if enabled:
            gc.enable()
