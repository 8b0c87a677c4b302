"""What the translator unit tests share: YAML text in, one target's result out."""

from __future__ import annotations

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options, TranslationResult


def translate_yaml(text: str, mesh: str, options: Options | None = None) -> TranslationResult:
    """Parse *text* as one YAML stream and translate it for *mesh*."""
    inputs = parse_documents(yamlio.load_documents("test.yaml", text))
    return translate(inputs, mesh, options)
