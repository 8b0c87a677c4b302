"""Discovery and I/O of golden cases: ``tests/golden/<mesh>/<case>/``.

Each case folder holds ``input.yaml``, ``output.yaml`` and ``findings.yaml``.
Cases named like a file in ``tests/cases/`` share that input with every
mesh; the copy in the folder must stay identical (checked by a test, synced
by ``--update-golden``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Inputs

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
SHARED_CASES = TESTS / "cases"


@dataclass(frozen=True)
class Case:
    """One golden case of one mesh."""

    mesh: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.mesh}/{self.path.name}"

    @property
    def shared_input(self) -> Path | None:
        shared = SHARED_CASES / f"{self.path.name}.yaml"
        return shared if shared.is_file() else None

    def inputs(self) -> Inputs:
        return parse_documents(yamlio.read_sources([str(self.path / "input.yaml")]))

    def expected_objects(self) -> list[Any]:
        return [d for d in yaml.safe_load_all((self.path / "output.yaml").read_text()) if d]

    def expected_findings(self) -> list[Any]:
        return yaml.safe_load((self.path / "findings.yaml").read_text()) or []


def cases(mesh: str | None = None) -> list[Case]:
    """Every golden case, optionally of one mesh, in a stable order."""
    out: list[Case] = []
    for mesh_dir in sorted(GOLDEN.iterdir()) if GOLDEN.is_dir() else []:
        if not mesh_dir.is_dir() or (mesh is not None and mesh_dir.name != mesh):
            continue
        out.extend(Case(mesh_dir.name, d) for d in sorted(mesh_dir.iterdir()) if d.is_dir())
    return out


def dump_findings(findings: list[dict[str, str]]) -> str:
    return yaml.safe_dump(findings, sort_keys=False, width=1 << 16) if findings else "[]\n"
