"""Invariants every target must keep, checked across all registered meshes."""

from __future__ import annotations

import pytest
import yaml

from smi2mesh import yamlio
from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from smi2mesh.translators.base import MANAGED_BY, SOURCE_ANNOTATION
from tests.golden import SHARED_CASES

MESHES = list(TRANSLATORS)
# The smi target re-emits SMI objects with their own metadata only, by design.
MARKED = [m for m in MESHES if m != "smi"]
ALL_CASES = parse_documents(yamlio.read_sources([str(SHARED_CASES)]))

EMPTY_GROUP = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: n}
spec: {ports: [{name: http, port: 80, appProtocol: http}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: n}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: g}]
  backends: [{service: a, weight: 1}, {service: b, weight: 1}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: n}
spec: {matches: []}
"""


@pytest.mark.parametrize("mesh", MARKED)
def test_matches_selecting_nothing_split_nothing(mesh: str) -> None:
    """A split whose groups have no matches must not become a split of all traffic."""
    inputs = parse_documents((f"t:{i}", d) for i, d in enumerate(yaml.safe_load_all(EMPTY_GROUP)))
    result = translate(inputs, mesh)
    assert result.objects == ()
    assert [(f.field, f.reason) for f in result.findings] == [
        ("spec.matches", FindingReason.NOT_EXPRESSIBLE)]


@pytest.mark.parametrize("mesh", MARKED)
def test_every_object_is_labelled_and_names_its_source(mesh: str) -> None:
    for obj in translate(ALL_CASES, mesh).objects:
        meta = obj["metadata"]
        assert meta["labels"][MANAGED_BY] == "smi2mesh"
        sources = meta["annotations"][SOURCE_ANNOTATION].split(",")
        assert all(s.count("/") == 2 for s in sources)


@pytest.mark.parametrize("mesh", MARKED)
def test_outputs_stay_in_their_sources_namespace(mesh: str) -> None:
    """Isolation: an SMI object in namespace A never writes into namespace B."""
    for obj in translate(ALL_CASES, mesh).objects:
        namespaces = {s.split("/")[1] for s in
                      obj["metadata"]["annotations"][SOURCE_ANNOTATION].split(",")}
        assert namespaces == {obj["metadata"]["namespace"]}, obj["metadata"]


@pytest.mark.parametrize("mesh", MESHES)
def test_translation_is_deterministic_and_order_independent(mesh: str) -> None:
    docs = yamlio.read_sources([str(SHARED_CASES)])
    forward = translate(parse_documents(docs), mesh)
    backward = translate(parse_documents(list(reversed(docs))), mesh)
    assert yamlio.dump_yaml(forward.objects) == yamlio.dump_yaml(backward.objects)
    assert forward.findings == backward.findings
