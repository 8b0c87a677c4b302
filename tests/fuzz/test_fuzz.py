"""Generated SMI document sets through the real pipeline, for every target.

The number of examples per target comes from ``SMI2MESH_FUZZ_EXAMPLES``
(default 20, small enough for the normal test run); ``scripts/fuzz`` sets it
to 10,000 or more. The quick tier is derandomized so the normal test run is
reproducible; the long job explores freshly every time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.properties import STATS, TARGETS, Target, check
from tests.fuzz.strategies import document_sets

EXAMPLES = int(os.environ.get("SMI2MESH_FUZZ_EXAMPLES", "20"))
# Below this the run is the quick tier of the normal test suite.
_LONG_RUN = 1000

fuzz_settings: Callable[[Any], Any] = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < _LONG_RUN,
    # Derandomized runs cannot use it, and long runs should explore afresh, not replay.
    database=None,
    suppress_health_check=list(HealthCheck),
    # Shrinking whole document sets can take many minutes; long runs report the
    # first failing example (and its seed) as found.
    phases=[p for p in Phase if p is not Phase.shrink or EXAMPLES < _LONG_RUN],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the CLI property writes its input files (module-scoped: hypothesis reruns)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("target", TARGETS, ids=[t.id for t in TARGETS])
@fuzz_settings
@given(docs=document_sets(), data=st.data())
def test_pipeline_on_generated_documents(target: Target, docs: list[Any], data: st.DataObject,
                                         workdir: Path) -> None:
    check(target, docs, data, workdir)


def test_generated_inputs_are_mostly_valid() -> None:
    """The properties above are not vacuous: enough examples parsed (aim: at least 40 %)."""
    runs = [s for s in STATS.values() if s["examples"]]
    if not runs:
        pytest.skip("no fuzz examples ran in this session (deselected)")
    examples = sum(s["examples"] for s in runs)
    valid = sum(s["valid"] for s in runs)
    assert valid >= 0.3 * examples, f"only {valid} of {examples} generated document sets parsed"
    assert sum(s["mesh_allowed"] for s in runs) > 0, "no mesh ever allowed a generated request"
