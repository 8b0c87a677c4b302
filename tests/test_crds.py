"""The project's SMI CRDs: generated, structural, and accepting every golden input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from smi2mesh import crdgen, smi, yamlio
from tests import golden
from tests.crd_schema import CrdIndex

CRDS = Path(__file__).resolve().parents[1] / "crds"


def test_crds_are_generated_from_the_models() -> None:
    expected = {f"{c['metadata']['name']}.yaml": crdgen.render(c) for c in crdgen.crds()}
    actual = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert actual == expected, "crds/ is stale: run `python -m smi2mesh.crdgen crds`"


def test_every_version_is_served_with_one_storage() -> None:
    served = set()
    for crd in crdgen.crds():
        versions = crd["spec"]["versions"]
        assert sum(v["storage"] for v in versions) == 1
        assert all(v["served"] and v["subresources"] == {"status": {}} for v in versions)
        served |= {(f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])
                   for v in versions}
    assert served == set(smi.VERSIONS)


def _untyped_nodes(node: dict[str, Any], path: str) -> list[str]:
    if node.get("x-kubernetes-int-or-string") or (
        node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node
    ):
        return []
    out = [] if "type" in node else [path]
    for name, sub in node.get("properties", {}).items():
        out += _untyped_nodes(sub, f"{path}.{name}")
    if "items" in node:
        out += _untyped_nodes(node["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("crd", crdgen.crds(), ids=lambda c: c["metadata"]["name"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    for v in crd["spec"]["versions"]:
        assert _untyped_nodes(v["schema"]["openAPIV3Schema"], v["name"]) == []


SMI_INPUTS = [
    (case, source, doc)
    for case in golden.cases()
    for source, doc in yamlio.read_sources([str(case.path / "input.yaml")])
    if isinstance(doc, dict) and doc["apiVersion"].split("/")[0] in smi.SMI_API_GROUPS
]


@pytest.mark.parametrize(("case", "source", "doc"), SMI_INPUTS, ids=[s for _, s, _ in SMI_INPUTS])
def test_project_crds_accept_every_golden_input(case: golden.Case, source: str,
                                                doc: dict[str, Any]) -> None:
    assert CrdIndex.load(CRDS).validate(doc) == []


def test_project_crds_reject_what_the_parser_rejects() -> None:
    index = CrdIndex.load(CRDS)
    bad = yaml.safe_load("""
        apiVersion: split.smi-spec.io/v1alpha4
        kind: TrafficSplit
        metadata: {name: x, namespace: y}
        spec:
          service: web
          backends: [{service: a, weight: 1.5}]
    """)
    assert index.validate(bad) != []
    missing = yaml.safe_load("""
        apiVersion: access.smi-spec.io/v1alpha3
        kind: TrafficTarget
        metadata: {name: x, namespace: y}
        spec:
          sources: []
    """)
    assert any("destination" in e for e in index.validate(missing))
