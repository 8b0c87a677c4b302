"""Every finding names a field that exists in the input, in either layout.

A finding's field path is how users find what was lost; one naming a field
they never wrote (``spec.specs`` for a top-level v1alpha1 TrafficTarget)
sends them looking for nothing. Checked on every golden case of every mesh,
as written and with every SMI object moved to the top-level layout (which
every version accepts).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from smi2mesh import smi, yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from tests import golden

_STEP = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def path_exists(doc: Any, path: str) -> bool:
    """Whether ``a.b[0].c`` (or ``metadata.labels[key]``) leads somewhere in *doc*."""
    node = doc
    for key, index in _STEP.findall(path):
        if key:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        elif isinstance(node, list) and index.isdigit() and int(index) < len(node):
            node = node[int(index)]
        elif isinstance(node, dict) and index in node:
            node = node[index]
        else:
            return False
    return True


def test_path_exists_walks_keys_indexes_and_map_keys() -> None:
    doc = {"spec": {"rules": [{"name": "r"}]}, "metadata": {"labels": {"a/b": "c"}}}
    assert path_exists(doc, "spec.rules[0].name")
    assert path_exists(doc, "metadata.labels[a/b]")
    assert not path_exists(doc, "spec.specs")
    assert not path_exists(doc, "spec.rules[1]")
    assert not path_exists(doc, "rules")


def _top_level(doc: Any) -> Any:
    if (isinstance(doc, dict) and str(doc.get("apiVersion", "")).split("/")[0] in smi.SMI_API_GROUPS
            and isinstance(doc.get("spec"), dict) and doc["spec"]):
        return {**{k: v for k, v in doc.items() if k != "spec"}, **doc["spec"]}
    return doc


def _missing_paths(docs: list[Any], mesh: str, case: golden.Case | None = None) -> list[str]:
    by_object = {(d["kind"], d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
                 for d in docs if isinstance(d, dict) and isinstance(d.get("metadata"), dict)}
    inputs = parse_documents((f"doc:{i}", d) for i, d in enumerate(docs))
    result = translate(inputs, mesh, case.options() if case else None)
    return [f"{f.namespace}/{f.kind}/{f.name}: {f.field} ({f.reason.value})" for f in result.findings
            if not path_exists(by_object[(f.kind, f.namespace, f.name)], f.field)]


CASES = golden.cases()


@pytest.mark.parametrize("layout", ["as-written", "top-level"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_findings_name_fields_of_the_input(case: golden.Case, layout: str) -> None:
    docs = [d for _, d in yamlio.read_sources([str(case.path / "input.yaml")])]
    if layout == "top-level":
        docs = [_top_level(d) for d in docs]
    assert _missing_paths(docs, case.mesh, case) == []


V1ALPHA1_TARGET = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: n}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {serviceAccountName: d, containers: [{name: c, image: i}]}
---
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: t, namespace: n}
destination: {kind: ServiceAccount, name: d, port: 8080}
sources: [{kind: ServiceAccount, name: s}]
specs: [{kind: HTTPRouteGroup, name: missing}, {kind: TCPRoute, name: gone}]
"""


@pytest.mark.parametrize("mesh", list(TRANSLATORS))
def test_a_top_level_v1alpha1_target_is_reported_at_its_top_level_specs(mesh: str) -> None:
    docs = list(yaml.safe_load_all(V1ALPHA1_TARGET))
    assert _missing_paths(docs, mesh) == []
    fields = {f.field for f in translate(parse_documents(
        (str(i), d) for i, d in enumerate(docs)), mesh).findings}
    # gamma reports the whole TrafficTarget; smi re-emits the references as they are.
    if mesh not in ("gamma", "smi"):
        assert {"specs[0]", "specs[1]"} <= fields, fields
