"""Helpers to render and lint ``charts/smi2mesh`` with Helm's own Go code.

``helm-python-sdk`` (import name ``helm_python``) binds ``libhelm_c``, a C ABI
over the Helm v4 SDK, so rendering, schema validation and lint are exactly
what ``helm template`` / ``helm lint`` do, offline and without a helm binary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "smi2mesh"
RELEASE = "smi2mesh"
RELEASE_NAMESPACE = "smi2mesh-system"

# Meshes the operator can run (the offline-only ``smi`` target is excluded).
OPERATOR_MESHES = ("istio", "linkerd", "consul", "kuma", "cilium", "gamma")

# helm lint severities (helm.sh/helm/v4/pkg/chart/v2/lint/support).
SEVERITY_WARNING = 2


@dataclass(frozen=True)
class Rendered:
    """The objects a chart render produced, plus the raw template outputs."""

    templates: dict[str, str]
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Objects of ``kind``."""
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        """The single object of ``kind``; fails when there are none or several."""
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]


def load_chart() -> helm.Chart:
    """Load the chart (callers close it, or use it as a context manager)."""
    return helm.Chart.load(CHART_DIR)


def render(
    chart: helm.Chart,
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = RELEASE_NAMESPACE,
    release: str = RELEASE,
) -> Rendered:
    """Render like ``helm template --namespace NS RELEASE chart`` (schema validated)."""
    templates = chart.render(dict(values or {}), name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(templates.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path}: not a Kubernetes object: {doc!r:.200}"
            assert doc.get("kind"), f"{path}: object without kind: {doc!r:.200}"
            objects.append(doc)
    return Rendered(templates, objects)


def lint_problems(values: Mapping[str, Any] | None = None) -> list[str]:
    """``helm lint`` findings of severity warning or error, as ``path: message``."""
    report = helm.lint(CHART_DIR, dict(values) if values is not None else None, namespace=RELEASE_NAMESPACE)
    problems = [
        f"{message['path']}: {message['error']}"
        for message in report["messages"]
        if int(message["severity"]) >= SEVERITY_WARNING
    ]
    problems.extend(str(error) for error in report.get("errors") or [])
    return problems


def walk(value: Any) -> Iterator[Any]:
    """Every node of a nested structure of dicts and lists (keys and values)."""
    yield value
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
