"""Every Kuma, Linkerd and Consul output smi2mesh produces passes those meshes' admission rules.

Golden outputs are judged as stored (``tests/golden/<mesh>/*/output.yaml``),
examples as translated now; a Consul output in the namespace mode it was
generated for (``consul_namespaces`` in the case's ``options.yaml``, CE by
default). Kuma's deprecation warnings count as failures too: an output should
not lean on what Kuma is about to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators import profiles
from smi2mesh.translators.base import ConsulNamespaces, Options
from smi2mesh.translators.profiles import Feature
from tests import golden
from tests.meshrules import Verdict, consul, kuma, kuma_legacy, linkerd, linkerd_sp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MESHES = ("kuma", "linkerd", "consul")
CASES = [c for mesh in MESHES for c in golden.cases(mesh)]


def judge(mesh: str, objects: Sequence[dict[str, Any]], consul_mode: str,
          profile: profiles.Profile | None = None) -> dict[str, list[str]]:
    """Errors and warnings per object, for the objects that have any.

    Kuma's legacy kinds and Linkerd's ServiceProfile go to their own modules.
    ``from`` is deprecated from Kuma 2.12 (with ``rules``); releases before
    have no such warning (deprecated.go at 2.11.0 warns only of MeshService sources).
    """
    verdicts: list[Verdict]
    own = {"kuma": (kuma_legacy.KINDS, kuma_legacy.validate_batch),
           "linkerd": (linkerd_sp.KINDS, linkerd_sp.validate_batch)}.get(mesh)
    others = [o for o in objects if own is None or o["kind"] not in own[0]]
    if mesh == "kuma":
        verdicts = kuma.validate_batch(others)
    elif mesh == "linkerd":
        verdicts = linkerd.validate_batch(others)
    else:
        verdicts = consul.validate_batch(others, mode=consul_mode)
    judged = dict(zip(map(id, others), verdicts, strict=True))
    if own is not None:
        mine = [o for o in objects if o["kind"] in own[0]]
        judged.update(zip(map(id, mine), own[1](mine), strict=True))
    skip = {"kuma.deprecated.from"} if profile is not None and mesh == "kuma" and not profile.has(
        Feature.KUMA_MTP_RULES) else set()
    report = {}
    for obj in objects:
        verdict = judged[id(obj)]
        problems = verdict.errors + [f"warning: {w}" for w in verdict.warnings
                                     if not any(w.endswith(f"[{r}]") for r in skip)]
        if problems:
            meta = obj["metadata"]
            report[f"{obj['kind']} {meta.get('namespace')}/{meta['name']}"] = problems
    return report


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_outputs_pass_admission(case: golden.Case) -> None:
    options = case.options()
    objects = case.expected_objects()
    assert judge(case.mesh, objects, str(options.consul_namespaces), options.profile) == {}


@pytest.mark.parametrize(
    ("mesh", "mode"), [("kuma", "off"), ("linkerd", "off"), ("consul", "off"), ("consul", "mirror")]
)
def test_example_outputs_pass_admission(mesh: str, mode: str) -> None:
    inputs = parse_documents(yamlio.read_sources([str(EXAMPLES)]))
    objects = translate(inputs, mesh, Options(consul_namespaces=ConsulNamespaces(mode))).objects
    assert objects, f"{mesh} produced nothing from examples/"
    assert judge(mesh, objects, mode) == {}


def test_every_golden_output_kind_is_judged() -> None:
    """A kind the rules do not cover would raise NotCovered; this shows the tier saw every mesh's kinds."""
    kinds = {o["kind"] for c in CASES for o in c.expected_objects()}
    assert {
        "MeshHTTPRoute",
        "MeshTCPRoute",
        "MeshTrafficPermission",
        "Server",
        "HTTPRoute",
        "AuthorizationPolicy",
        "MeshTLSAuthentication",
        "ServiceIntentions",
        "ServiceSplitter",
        "ServiceRouter",
        "ServiceDefaults",
        "TrafficRoute",
        "TrafficPermission",
        "ServiceProfile",
    } <= kinds


SPLIT = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: checkout, namespace: web}
spec:
  service: website
  backends:
  - {service: website-a, weight: 1034}
  - {service: website-b, weight: 8292}
  - {service: website-c, weight: 674}
"""


def test_consul_splitter_weights_survive_float32(tmp_path: Path) -> None:
    source = tmp_path / "split.yaml"
    source.write_text(SPLIT)
    objects = translate(parse_documents(yamlio.read_sources([str(source)])), "consul", Options()).objects
    assert judge("consul", objects, "off") == {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=7).filter(any))
def test_consul_splitter_weights_pass_float32_for_any_split(raw: list[int]) -> None:
    """Whatever the SMI weights, consul-k8s's float32 sum of the written splits is exactly 100."""
    backends = "".join(f"  - {{service: b{i}, weight: {w}}}\n" for i, w in enumerate(raw))
    doc = ("apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
           "metadata: {name: s, namespace: web}\nspec:\n  service: root\n  backends:\n" + backends)
    objects = translate(parse_documents([("split.yaml", yaml.safe_load(doc))]), "consul", Options()).objects
    splitters = [o for o in objects if o["kind"] == "ServiceSplitter"]
    assert len(splitters) == 1
    written = sorted(s["service"] for s in splitters[0]["spec"]["splits"])
    assert written == sorted(f"b{i}" for i in range(len(raw)))
    assert judge("consul", objects, "off") == {}
