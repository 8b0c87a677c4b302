"""Golden tests: every case of every mesh, output and findings, byte-stable.

Refresh with ``pytest tests/test_golden.py --update-golden``; review the diff.
"""

from __future__ import annotations

import shutil

import pytest

from smi2mesh import smi, yamlio
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from tests import golden

ALL = golden.cases()


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_golden(case: golden.Case, update_golden: bool) -> None:
    if update_golden and case.shared_input is not None:
        shutil.copyfile(case.shared_input, case.path / "input.yaml")
    result = translate(case.inputs(), case.mesh, case.options())
    output = yamlio.dump_yaml(result.objects) if result.objects else ""
    findings = [f.to_dict() for f in result.findings]
    if update_golden:
        (case.path / "output.yaml").write_text(output)
        (case.path / "findings.yaml").write_text(golden.dump_findings(findings))
        return
    assert (case.path / "output.yaml").read_text() == output, "output differs from output.yaml"
    assert case.expected_findings() == findings


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_golden_output_matches_upstream_crds(case: golden.Case) -> None:
    """Every emitted object is valid, strictly, against its mesh's upstream CRD."""
    profile = case.options().profile
    errors = {
        f"{o['kind']} {o['metadata']['name']}": golden.validate_emitted(o, profile)
        for o in case.expected_objects()
    }
    assert {k: v for k, v in errors.items() if v} == {}


@pytest.mark.parametrize("case", [c for c in ALL if c.shared_input], ids=lambda c: c.id)
def test_shared_inputs_are_in_sync(case: golden.Case) -> None:
    assert case.shared_input is not None
    assert (case.path / "input.yaml").read_text() == case.shared_input.read_text(), (
        "input.yaml differs from tests/cases; run with --update-golden"
    )


@pytest.mark.parametrize("mesh", list(TRANSLATORS))
def test_every_mesh_covers_every_smi_version(mesh: str) -> None:
    """Each registered mesh has golden cases, and they use every SMI kind and version."""
    seen: set[tuple[str, str]] = set()
    for case in golden.cases(mesh):
        for _, doc in yamlio.read_sources([str(case.path / "input.yaml")]):
            assert isinstance(doc, dict)
            seen.add((doc["apiVersion"], doc["kind"]))
    missing = sorted(set(smi.VERSIONS) - seen)
    assert missing == [], f"{mesh}: no golden input uses {missing}"


def test_golden_folders_are_registered_meshes() -> None:
    assert {c.mesh for c in ALL} == set(TRANSLATORS)


@pytest.mark.parametrize("mesh", list(TRANSLATORS))
def test_translators_declare_every_kind_they_emit(mesh: str) -> None:
    """The operator's watches and the chart's RBAC come from ``emits``."""
    # The smi target writes whatever version is asked for: only group and kind are fixed.
    def key(api_version: str, kind: str) -> tuple[str, str]:
        return (api_version.split("/", maxsplit=1)[0] if mesh == "smi" else api_version, kind)

    declared = {key(k.api_version, k.kind) for k in TRANSLATORS[mesh].emits}
    emitted = {key(o["apiVersion"], o["kind"]) for c in golden.cases(mesh) for o in c.expected_objects()}
    assert emitted <= declared
    assert emitted, f"{mesh} goldens emit nothing"
