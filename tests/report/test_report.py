"""``smi2mesh report``: counts agree with translate's findings, ranking, output formats, golden."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi2mesh import report, yamlio
from smi2mesh.findings import Finding, FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options
from tests.golden import SHARED_CASES
from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_CASE = "access-v1alpha1-port"
MESHES = ("istio", "linkerd", "consul", "kuma", "cilium", "gamma")


def _report_json(*args: str) -> Any:
    code, out, err = run(["report", "-o", "json", *args])
    assert (code, err) == (0, "")
    return json.loads(out)


def _entry(*args: str) -> Any:
    """The one mesh's entry of a report asked for one mesh."""
    [entry] = _report_json(*args)["meshes"]
    return entry


@pytest.mark.parametrize("mesh", MESHES)
def test_counts_match_translate_on_the_examples(mesh: str) -> None:
    """Every count is what `translate` itself reports for the same files."""
    data = _report_json("-f", str(EXAMPLES), "--mesh", mesh)
    [entry] = data["meshes"]
    code, out, err = run(["translate", "--mesh", mesh, "-f", str(EXAMPLES), "-o", "json"])
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    by_reason = collections.Counter(line.rsplit("[", 1)[1].rstrip("]") for line in warnings)
    assert entry["findings"] == len(warnings) > 0
    assert {r: v["count"] for r, v in entry["findingsByReason"].items()} == dict(by_reason)
    assert entry["generatedObjects"] == len(json.loads(out))
    assert len(entry["access"]["failedClosed"]) == by_reason.get("AccessFailClosed", 0)
    assert sum(p["count"] for p in entry["prerequisites"]) <= by_reason.get("Prerequisite", 0)
    # Carried exactly: the SMI objects no changing finding names.
    named = {line.split(": ", 2)[1] for line in warnings
             if not line.endswith(("[Rewritten]", "[Prerequisite]"))}
    assert entry["smiObjects"] == data["smiObjects"] == 21
    assert entry["carriedExactly"] == 21 - len(named)
    assert entry["notCarriedExactly"] == sorted(named)


def test_every_mesh_has_a_table_and_the_summary_ranks_them() -> None:
    code, out, err = run(["report", "-f", str(EXAMPLES)])
    assert (code, err) == (0, "")
    for mesh in MESHES:
        assert f"\n## {mesh} (rank " in out
    assert "## smi " not in out  # the smi target only on request
    summary = out.split("## Summary", 1)[1].split("\n\n")[1].splitlines()[2:]
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in summary]
    assert sorted(r[1] for r in rows) == sorted(MESHES)
    ranks = [int(r[0]) for r in rows]
    assert ranks == sorted(ranks)
    exact = [int(r[2].split(" of ")[0]) for r in rows]
    assert exact == sorted(exact, reverse=True)


def test_ranking_prefers_exact_then_fewer_access_losses_and_ties_share_a_rank() -> None:
    def finding(reason: FindingReason, kind: str = "TrafficTarget") -> Finding:
        return Finding("ns", kind, "t", "spec", reason, "m")

    a = report.MeshReport("a", 3, ["x", "y"], 1, [finding(FindingReason.ACCESS_FAIL_CLOSED)])
    b = report.MeshReport("b", 3, ["x", "y"], 1, [finding(FindingReason.NOT_EXPRESSIBLE, "TrafficSplit")])
    c = report.MeshReport("c", 3, ["x", "y", "z"], 1, [])
    d = report.MeshReport("d", 3, ["x", "y"], 1, [finding(FindingReason.NOT_EXPRESSIBLE, "TrafficSplit")])
    report._rank([a, b, c, d])
    assert (c.rank, b.rank, d.rank, a.rank) == (1, 2, 2, 4)
    assert (len(a.not_enforced), len(a.failed_closed)) == (0, 1)


def test_prerequisites_are_grouped_with_counts_and_objects() -> None:
    entry = _entry("-f", str(EXAMPLES), "--mesh", "kuma")
    mesh_services = [p for p in entry["prerequisites"] if "MeshService" in p["message"]]
    assert len(mesh_services) == 1
    assert mesh_services[0]["count"] == 4 == len(mesh_services[0]["objects"])
    assert all("/TrafficSplit/" in o for o in mesh_services[0]["objects"])


def test_not_enforced_access_is_told_apart_from_failed_closed() -> None:
    entry = _entry("-f", str(EXAMPLES), "--mesh", "gamma")
    assert len(entry["access"]["notEnforced"]) == 6
    assert entry["access"]["failedClosed"] == []


def test_smi_target_on_request_with_its_versions() -> None:
    data = _report_json("-f", str(SHARED_CASES / "split-v1alpha4-three-way.yaml"), "--mesh", "smi",
                        "--mesh", "istio", "--smi-profile", "traefik")
    assert [m["mesh"] for m in data["meshes"]] == ["smi", "istio"]
    code, _, err = run(["report", "-f", str(SHARED_CASES / "split-tcp.yaml"), "--smi-profile", "osm"])
    assert code == 2
    assert "apply only to --mesh smi" in err


def test_translation_options_are_shared_with_translate() -> None:
    """--trust-domain reaches the translators (Kuma names it in a prerequisite)."""
    path = str(SHARED_CASES / "access-v1alpha3-l4.yaml")
    entry = _entry("-f", path, "--mesh", "kuma", "--trust-domain", "prod.example")
    assert any("spiffe://prod.example/" in p["message"] for p in entry["prerequisites"])


def test_invalid_input_is_exit_1_with_nothing_on_stdout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: x}\n"
                   "spec: {service: a, backends: [{service: b, weight: -1}]}\n")
    code, out, err = run(["report", "-f", str(bad)])
    assert (code, out) == (1, "")
    assert err.startswith("error: ")
    assert run(["report", "-f", str(tmp_path / "missing.yaml")])[0] == 2


def test_build_is_the_translate_result() -> None:
    inputs = parse_documents(yamlio.read_sources([str(EXAMPLES)]))
    built = report.build(inputs, ["consul"], lambda _m: Options())
    result = translate(inputs, "consul", Options())
    assert built.meshes[0].findings == list(result.findings)
    assert built.meshes[0].generated == len(result.objects)


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_golden(fmt: str, update_golden: bool) -> None:
    """The whole report for one shared input, as a reviewer would read it."""
    code, out, err = run(["report", "-f", str(SHARED_CASES / f"{GOLDEN_CASE}.yaml"), "-o", fmt])
    assert (code, err) == (0, "")
    expected = GOLDEN / GOLDEN_CASE / ("report.md" if fmt == "markdown" else "report.json")
    if update_golden:
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text(out)
    assert out == expected.read_text()


def test_options_added_to_translate_reach_report() -> None:
    """report shares translate's options: Consul namespace mirroring changes Consul's findings."""
    path = str(SHARED_CASES / "access-v1alpha2-http.yaml")
    args = ["-f", path, "--mesh", "consul"]
    for extra in (["--consul-namespaces", "mirror"], ["--widen-l7-to-l4"]):
        code, out, _ = run(["translate", "--mesh", "consul", "-f", path, *extra])
        assert code == 0
        assert _entry(*args, *extra)["generatedObjects"] == len(list(yaml.safe_load_all(out)))
    mirrored = _entry(*args, "--consul-namespaces", "mirror")
    assert _entry(*args)["prerequisites"] != mirrored["prerequisites"]


def test_widened_grants_are_counted() -> None:
    """Kuma with --widen-l7-to-l4 grants HTTP rules at L4: each is listed as widened, not failed closed."""
    args = ["-f", str(SHARED_CASES / "access-v1alpha2-http.yaml"), "--mesh", "kuma"]
    strict, widened = _entry(*args), _entry(*args, "--widen-l7-to-l4")
    assert strict["access"]["widened"] == []
    assert len(widened["access"]["widened"]) == widened["findingsByReason"]["Widened"]["count"] > 0
    assert len(widened["access"]["failedClosed"]) < len(strict["access"]["failedClosed"])
