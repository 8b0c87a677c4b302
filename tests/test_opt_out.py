"""The opt-out annotation ``smi2mesh.io/ignore: "true"`` on the command line.

An ignored SMI object is passed over by ``translate``, ``report`` and
``translate --from-cluster`` with no finding and no error, even when its
spec is invalid; an ignored route is as if absent. The operator's side is in
tests/operator/test_reconcile.py and test_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi2mesh import inputs, migration
from tests.golden import SHARED_CASES
from tests.test_cli import run

SPLIT = SHARED_CASES / "split-v1alpha2-canary.yaml"
ACCESS = SHARED_CASES / "access-v1alpha2-http.yaml"


def docs_of(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def annotate(docs: list[dict[str, Any]], kind: str, value: str | None) -> list[dict[str, Any]]:
    """*docs* with every object of *kind* annotated ignore=*value* (None: removed)."""
    out = []
    for original in docs:
        doc = json.loads(json.dumps(original))
        if doc["kind"] == kind and value is not None:
            doc["metadata"].setdefault("annotations", {})[inputs.IGNORE_ANNOTATION] = value
        out.append(doc)
    return out


def write(tmp_path: Path, docs: list[dict[str, Any]], name: str = "in.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true "])
def test_an_ignored_split_gives_nothing_and_says_nothing(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, annotate(docs_of(SPLIT), "TrafficSplit", value))
    assert run(["translate", "--mesh", "istio", "--strict", "-f", path]) == (0, "", "")


@pytest.mark.parametrize("value", ["false", "", "yes", "1", "truthy"])
def test_any_other_value_is_not_an_opt_out(tmp_path: Path, value: str) -> None:
    plain = run(["translate", "--mesh", "istio", "-f", str(SPLIT)])
    path = write(tmp_path, annotate(docs_of(SPLIT), "TrafficSplit", value))
    code, out, err = run(["translate", "--mesh", "istio", "-f", path])
    assert (code, out, err) == plain
    assert "VirtualService" in out


def test_an_ignored_object_is_not_even_validated(tmp_path: Path) -> None:
    docs = annotate(docs_of(SPLIT), "TrafficSplit", None)
    docs[1]["spec"]["backends"] = [{"service": "x", "weight": "lots"}]
    bad = write(tmp_path, docs, "bad.yaml")
    assert run(["translate", "--mesh", "istio", "-f", bad])[0] == 1
    ignored = write(tmp_path, annotate(docs, "TrafficSplit", "true"), "ignored.yaml")
    assert run(["translate", "--mesh", "istio", "-f", ignored]) == (0, "", "")


def test_an_ignored_route_is_as_if_absent(tmp_path: Path) -> None:
    docs = docs_of(ACCESS)
    absent = write(tmp_path, [d for d in docs if d["kind"] != "HTTPRouteGroup"], "absent.yaml")
    ignored = write(tmp_path, annotate(docs, "HTTPRouteGroup", "true"), "ignored.yaml")
    for mesh in ("istio", "linkerd", "cilium"):
        code, out, err = run(["translate", "--mesh", mesh, "-f", ignored])
        assert (code, out, err) == run(["translate", "--mesh", mesh, "-f", absent])
        assert "catalog-api" in err
        assert "[UnresolvedReference]" in err
        assert run(["translate", "--mesh", mesh, "-f", str(ACCESS)])[2].count("catalog-api") == 0


def test_report_leaves_ignored_objects_out(tmp_path: Path) -> None:
    docs = [*docs_of(SPLIT), *docs_of(ACCESS)]
    full = json.loads(run(["report", "-o", "json", "-f", write(tmp_path, docs, "all.yaml")])[1])
    code, out, err = run(["report", "-o", "json", "-f",
                          write(tmp_path, annotate(docs, "TrafficSplit", "true"), "some.yaml")])
    assert (code, err) == (0, "")
    some = json.loads(out)
    assert (full["smiObjects"], full["byKind"]["TrafficSplit"]) == (3, 1)
    assert (some["smiObjects"], some["byKind"].get("TrafficSplit")) == (2, None)
    for before, after in zip(full["meshes"], some["meshes"], strict=True):
        assert after["smiObjects"] == before["smiObjects"] - 1
        assert not any("TrafficSplit" in ref for ref in after["notCarriedExactly"])


class _FakeCluster:
    """What ``Connection.read_documents`` returns: SMI objects and context as documents."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def read_documents(self, extra: object = (), *, smi_required: bool = True) -> list[tuple[str, object]]:
        return [(f"cluster:{d['kind']}", d) for d in self.docs]


def test_from_cluster_honours_it_and_a_file_copy_wins(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs = annotate(docs_of(SPLIT), "TrafficSplit", "true")
    monkeypatch.setattr(migration, "connection", lambda args, shown=None: _FakeCluster(docs))
    assert run(["translate", "--mesh", "gamma", "--from-cluster"]) == (0, "", "")
    # The file's copy (not ignored) wins over the cluster's (ignored): it is translated.
    split = write(tmp_path, annotate(docs_of(SPLIT), "TrafficSplit", None)[1:])
    code, out, _ = run(["translate", "--mesh", "gamma", "--from-cluster", "-f", split])
    assert code == 0
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["HTTPRoute"]
