"""examples/ runs: every SMI kind and version, translated by every mesh without errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi2mesh import smi, yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from tests.golden import validate_emitted

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_examples_use_every_smi_kind_and_version() -> None:
    docs = yamlio.read_sources([str(EXAMPLES)])
    used = {(d["apiVersion"], d["kind"]) for _, d in docs if isinstance(d, dict)}
    assert sorted(set(smi.VERSIONS) - used) == []


@pytest.mark.parametrize("mesh", list(TRANSLATORS))
def test_examples_translate_to_valid_objects(mesh: str) -> None:
    inputs = parse_documents(yamlio.read_sources([str(EXAMPLES)]))
    result = translate(inputs, mesh)
    assert result.objects, f"{mesh} produced nothing from examples/"
    errors = {o["metadata"]["name"]: validate_emitted(o) for o in result.objects}
    assert {k: v for k, v in errors.items() if v} == {}
