"""istiod's own validating webhook admits every Istio object smi2mesh emits, without warnings.

The judge is ``istio-validate`` (tests/meshcheck/istio/cmd/validate): the
HTTP handler istiod serves at ``/validate`` (pilot/pkg/bootstrap/validation.go
wiring, pkg/webhooks/validation/server, pkg/config/validation), fed real
AdmissionReviews.  What it reads, translated live so the checks judge today's
translator rather than yesterday's goldens:

* every golden case of every mesh (the Istio cases and the shared inputs
  other meshes keep), translated for Istio with the case's options;
* examples/, as ``smi2mesh translate --mesh istio -f examples/`` does;
* a fixed-seed fuzz sample of at least 500 parsed document sets.

Each corpus goes to the binary in one batch.  A rejection fails, and so does
any warning not in :data:`ALLOWED_WARNINGS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi2mesh import yamlio
from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options
from tests.fuzz.strategies import document_sets, valid_worlds
from tests.golden import GOLDEN, Case
from tests.meshcheck.istio.istiod import Verdict, validate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")
FUZZ_MIN_INPUTS = 500
# Half the draws are the fuzz tier's document sets (40 % of them corrupted on
# purpose, most of those rejected by the parser), half its valid worlds.
FUZZ_MAX_EXAMPLES = 1500

# istiod warnings accepted on purpose: pattern -> why it is not a problem.
# Keep it short; every entry is a known, deliberate divergence.
ALLOWED_WARNINGS: dict[str, str] = {}

Labelled = tuple[str, Mapping[str, Any]]


def _istio_objects(label: str, inputs: Any, options: Options) -> Iterator[Labelled]:
    for obj in translate(inputs, "istio", options).objects:
        yield f"{label}: {obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}", obj


def golden_objects() -> list[Labelled]:
    """Istio objects of every golden case's input, whichever mesh's folder holds it."""
    out: list[Labelled] = []
    seen: set[tuple[str, str]] = set()
    for folder in sorted(GOLDEN.glob("*/*/input.yaml")):
        case = Case(folder.parent.parent.name, folder.parent)
        text = folder.read_text(encoding="utf-8")
        options = case.options() if case.mesh == "istio" else Options()
        key = (text, repr(options))
        if key in seen:  # shared inputs are copied into every mesh's folder
            continue
        seen.add(key)
        try:
            inputs = case.inputs()
        except InputError:
            continue  # cases of invalid input have nothing to translate
        out.extend(_istio_objects(case.id, inputs, options))
    return out


def example_objects() -> list[Labelled]:
    """What ``smi2mesh translate --mesh istio -f examples/`` prints."""
    inputs = parse_documents(yamlio.read_sources([str(EXAMPLES)]))
    return list(_istio_objects("examples", inputs, Options()))


def fuzz_objects() -> tuple[int, list[Labelled]]:
    """Istio objects of a fixed-seed sample of the fuzz tier's document sets.

    Returns how many sets parsed, and their objects.
    """
    parsed = 0
    out: list[Labelled] = []

    @settings(max_examples=FUZZ_MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(docs=st.one_of(valid_worlds(), document_sets()))
    def collect(docs: list[Any]) -> None:
        nonlocal parsed
        if parsed >= FUZZ_MIN_INPUTS + 100 and len(out) >= FUZZ_MIN_INPUTS + 100:
            return
        try:
            inputs = parse_documents([(f"fuzz.yaml:{i + 1}", d) for i, d in enumerate(docs)])
        except InputError:
            return
        parsed += 1
        out.extend(_istio_objects(f"fuzz#{parsed}", inputs, Options()))

    collect()
    return parsed, out


def unallowed_warnings(verdict: Verdict) -> list[str]:
    """Warnings of ``verdict`` that no :data:`ALLOWED_WARNINGS` pattern explains."""
    return [w for w in verdict.warnings if not any(re.search(p, w) for p in ALLOWED_WARNINGS)]


def judge(binary: Path, objects: list[Labelled]) -> list[str]:
    """Problems istiod's webhook finds in ``objects`` (one batch): rejections and warnings."""
    foreign = [label for label, obj in objects if not str(obj.get("apiVersion")).startswith(ISTIO_GROUPS)]
    problems = [f"{label}: not an Istio API group, so istiod's webhook never sees it" for label in foreign]
    verdicts = validate(binary, [obj for _, obj in objects])
    for (label, _), verdict in zip(objects, verdicts, strict=True):
        if not verdict.allowed:
            problems.append(f"{label}: rejected: {'; '.join(verdict.errors)}")
        problems.extend(f"{label}: warning: {w}" for w in unallowed_warnings(verdict))
    return problems


@pytest.fixture(scope="module")
def validator(meshcheck_tool: Callable[[str], Path]) -> Path:
    return meshcheck_tool("istio-validate")


def test_golden_outputs_are_admitted(validator: Path) -> None:
    objects = golden_objects()
    assert len(objects) >= 20, f"only {len(objects)} objects: the golden corpus went missing"
    assert judge(validator, objects) == []


def test_example_outputs_are_admitted(validator: Path) -> None:
    objects = example_objects()
    assert objects, "examples/ translated to nothing for Istio"
    assert judge(validator, objects) == []


def test_fuzz_outputs_are_admitted(validator: Path) -> None:
    parsed, objects = fuzz_objects()
    assert parsed >= FUZZ_MIN_INPUTS, f"only {parsed} fuzz inputs parsed"
    assert len(objects) >= FUZZ_MIN_INPUTS, f"only {len(objects)} objects from {parsed} inputs"
    assert judge(validator, objects) == []


def test_the_judge_rejects_and_warns(validator: Path) -> None:
    """The checker is live: it rejects a broken object and reports the unreachable-rule warning."""
    route = {"destination": {"host": "a.ns.svc.cluster.local"}}
    broken = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "broken", "namespace": "ns"},
              "spec": {"hosts": ["a.ns.svc.cluster.local"],
                       "http": [{"route": [{**route, "weight": 50}, {**route, "weight": -1}]}]}}
    shadowed = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "shadowed", "namespace": "ns"},
                "spec": {"hosts": ["a.ns.svc.cluster.local"],
                         "http": [{"match": [{"port": 80}], "route": [route]},
                                  {"match": [{"port": 80}], "route": [route]}]}}
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "bad", "namespace": "ns"},
            "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/a/{*}x"]}}]}]}}
    first, second, third = validate(validator, [broken, shadowed, deny])
    assert not first.allowed
    assert "weight" in " ".join(first.errors)
    assert second.allowed
    assert any("not used" in w for w in second.warnings)
    assert unallowed_warnings(second), "the allowlist must not hide unreachable rules"
    assert not third.allowed
