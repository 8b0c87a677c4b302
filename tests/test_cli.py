"""The CLI contract: exit codes, stdout/stderr formats, stdin, directories, --strict."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from smi2mesh import cli
from tests.golden import SHARED_CASES

SPLIT = SHARED_CASES / "split-v1alpha2-canary.yaml"
ACCESS = SHARED_CASES / "access-v1alpha2-http.yaml"


def run(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    """Run the CLI in-process with captured streams."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        try:
            code = cli.main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def test_translate_file_to_yaml_stream() -> None:
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(SPLIT)])
    assert (code, err) == (0, "")
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["HTTPRoute"]
    assert docs[0]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "smi2mesh"}
    assert docs[0]["metadata"]["annotations"] == {"smi2mesh.io/source": "TrafficSplit/test/podinfo"}


def test_stdin_is_the_default_and_dash_works() -> None:
    text = SPLIT.read_text()
    assert run(["translate", "--mesh", "gamma"], stdin=text)[1] == run(
        ["translate", "--mesh", "gamma", "-f", "-"], stdin=text)[1] != ""


def test_json_output_is_a_list() -> None:
    code, out, _ = run(["translate", "--mesh", "gamma", "-f", str(SPLIT), "-o", "json"])
    assert code == 0
    assert [o["kind"] for o in json.loads(out)] == ["HTTPRoute"]


def test_directory_is_read_recursively_and_output_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "split.yml").write_text(SPLIT.read_text())
    (tmp_path / "a.yaml").write_text((SHARED_CASES / "split-tcp.yaml").read_text())
    (tmp_path / "notes.txt").write_text("not yaml: [")
    code, out, _ = run(["translate", "--mesh", "gamma", "-f", str(tmp_path)])
    assert code == 0
    keys = [(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"])
            for d in yaml.safe_load_all(out)]
    assert keys == sorted(keys) == [("HTTPRoute", "test", "podinfo"),
                                    ("TCPRoute", "data", "db-migration")]


def test_findings_go_to_stderr_and_strict_exits_3() -> None:
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(ACCESS)])
    assert (code, out) == (0, "")
    assert err.startswith("warning: store/TrafficTarget/frontend-reads-catalog: spec.destination: ")
    code, out, err = run(["translate", "--mesh", "gamma", "--strict", "-f", str(ACCESS)])
    assert code == 3
    assert "error: 1 finding(s) with --strict" in err


def test_output_is_deterministic() -> None:
    args = ["translate", "--mesh", "gamma", "-f", str(SHARED_CASES)]
    assert run(args)[1] == run(args)[1]


BAD = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: bad, namespace: shop}
spec:
  service: web
  backends:
  - {service: a, weight: 0}
  - {service: b, weight: 0}
  matches:
  - {kind: HTTPRouteGroup, name: missing}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: re, namespace: shop}
spec:
  matches:
  - {name: look, pathRegex: "/a(?=b)"}
---
apiVersion: split.smi-spec.io/v1alpha9
kind: TrafficSplit
metadata: {name: future, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ok, namespace: shop}
spec:
  service: web
  backends: [{service: a, weight: 1}]
"""


def test_invalid_input_reports_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(path)])
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert f"error: {path}:1: TrafficSplit shop/bad: spec.backends: all backend weights are zero; " \
           "at least one must be positive" in lines
    assert any(line.startswith(f"error: {path}:2: HTTPRouteGroup shop/re: spec.matches[0].pathRegex: "
                               "invalid RE2 regex") for line in lines)
    assert any(line.startswith(f"error: {path}:3: TrafficSplit shop/future: apiVersion: unknown SMI")
               for line in lines)
    assert "Traceback" not in err


def test_match_referencing_a_missing_group_is_a_finding_not_a_failed_run(tmp_path: Path) -> None:
    """A pre-commit hook passes only the changed files: the group may be elsewhere."""
    path = tmp_path / "ref.yaml"
    path.write_text(BAD.split("---", maxsplit=1)[0].replace("weight: 0}\n  - {service: b, weight: 0}",
                                                 "weight: 1}") + "---\n" + SPLIT.read_text())
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(path)])
    assert code == 0
    assert [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out)] == [
        ("HTTPRoute", "podinfo")]
    assert err == ("warning: shop/TrafficSplit/bad: spec.matches[0]: HTTPRouteGroup shop/missing does "
                   "not exist; split not emitted [UnresolvedReference]\n")
    assert run(["translate", "--mesh", "gamma", "--strict", "-f", str(path)])[0] == 3


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1, 2\n", "invalid YAML"),
    ("- just\n- a list\n", "document must be a mapping"),
    ("kind: TrafficSplit\nmetadata: {name: s, namespace: n}\n",
     "TrafficSplit n/s: apiVersion: document has no apiVersion"),
    ("apiVersion: v1\nmetadata: {name: s}\n", " default/s: kind: document has no kind"),
    ("metadata: {name: s}\n", ": default/s: apiVersion: document has no apiVersion and no kind"),
    ("apiVersion: 1\nkind: TrafficSplit\n", "apiVersion: apiVersion must be a string, got int"),
    ("apiVersion: v1alpha1\nkind: HTTPRouteGroup\nmetadata: {name: g, namespace: n}\n",
     "HTTPRouteGroup n/g: apiVersion: 'v1alpha1' has no API group, but HTTPRouteGroup is an SMI "
     "kind; did you mean specs.smi-spec.io/v1alpha1?"),
])
def test_malformed_documents(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(path)])
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {path}:1: ")
    assert message in err, err
    assert err.count("\n") == 1


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_smi_kind_with_a_groupless_api_version_is_never_passed_over(tmp_path: Path,
                                                                    strict: list[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(SPLIT.read_text() + "---\napiVersion: v1\nkind: TrafficTarget\n"
                    "metadata: {name: t, namespace: n}\n")
    code, out, err = run(["translate", "--mesh", "gamma", *strict, "-f", str(path)])
    assert (code, out) == (1, "")
    assert err == (f"error: {path}:3: TrafficTarget n/t: apiVersion: 'v1' has no API group, but "
                   "TrafficTarget is an SMI kind; it is served as access.smi-spec.io/v1alpha1, "
                   "access.smi-spec.io/v1alpha2, access.smi-spec.io/v1alpha3\n")


def test_usage_errors_exit_2_and_name_the_value(tmp_path: Path) -> None:
    code, _, err = run(["translate", "--mesh", "nginx"])
    assert code == 2
    assert "'nginx'" in err
    code, _, err = run(["translate", "--mesh", "gamma", "-f", str(tmp_path / "nope.yaml")])
    assert code == 2
    assert "nope.yaml: no such file or directory" in err


def test_console_script_runs_without_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "smi2mesh.cli", "translate", "--mesh", "gamma"],
                          input="kind: [", capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def test_trailing_paths_are_read_like_f(tmp_path: Path) -> None:
    """Pre-commit passes file names as trailing arguments."""
    args = ["translate", "--mesh", "gamma", str(SPLIT), str(SHARED_CASES / "split-tcp.yaml")]
    code, out, _ = run(args)
    assert code == 0
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["HTTPRoute", "TCPRoute"]


def test_mesh_and_gateway_api_versions_choose_the_api_versions() -> None:
    tcp = str(SHARED_CASES / "split-tcp.yaml")
    code, out, err = run(["translate", "--mesh", "linkerd", "-f", tcp])
    assert code == 0
    assert [d["apiVersion"] for d in yaml.safe_load_all(out)] == ["gateway.networking.k8s.io/v1alpha2"]
    assert "[Prerequisite]" in err
    code, out, _ = run(["translate", "--mesh", "gamma", "--gateway-api-version", "1.5", "-f", tcp])
    assert [d["apiVersion"] for d in yaml.safe_load_all(out)] == ["gateway.networking.k8s.io/v1alpha2"]
    code, out, _ = run(["translate", "--mesh", "istio", "--mesh-version", "1.21.4", "-f", str(SPLIT)])
    assert (code, [d["apiVersion"] for d in yaml.safe_load_all(out)]) == (
        0, ["networking.istio.io/v1beta1"])


@pytest.mark.parametrize(("args", "message"), [
    (["--mesh", "istio", "--mesh-version", "1.19"],
     "istio version '1.19' is not supported; supported: 1.30,"),
    (["--mesh", "linkerd", "--gateway-api-version", "1.6.1"], "supported: 1.2.1-1.5.1"),
    (["--mesh", "consul", "--gateway-api-version", "1.5.1"], "consul writes no Gateway API routes"),
    (["--mesh", "gamma", "--mesh-version", "1.6"], "gamma has no mesh version"),
])
def test_unsupported_versions_are_usage_errors(args: list[str], message: str) -> None:
    code, out, err = run(["translate", *args, "-f", str(SPLIT)])
    assert (code, out) == (2, "")
    assert message in err


GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def test_consul_namespaces_chooses_ce_or_mirror_sources() -> None:
    case = str(GOLDEN_DIR / "consul" / "consul-mirror" / "input.yaml")
    default = run(["translate", "--mesh", "consul", case])
    mirror = run(["translate", "--mesh", "consul", "--consul-namespaces", "mirror", case])
    assert default[0] == mirror[0] == 0
    sources = [yaml.safe_load(out[1])["spec"]["sources"] for out in (default, mirror)]
    assert {"name": "*", "action": "deny"} in sources[0]  # off (CE) is the default
    assert all("namespace" not in s for s in sources[0])
    assert {"name": "*", "namespace": "*", "action": "deny"} in sources[1]
    assert mirror[1] == (GOLDEN_DIR / "consul" / "consul-mirror" / "output.yaml").read_text()
    code, _, err = run(["translate", "--mesh", "consul", "--consul-namespaces", "prefix", case])
    assert code == 2
    assert "prefix" in err


def test_widening_is_off_by_default_and_strict_fails_on_it() -> None:
    case = str(GOLDEN_DIR / "kuma" / "kuma-widen" / "input.yaml")
    code, out, err = run(["translate", "--mesh", "kuma", case])
    assert code == 0
    assert "[Widened]" not in err
    assert "[AccessFailClosed]" in err
    code, out, err = run(["translate", "--mesh", "kuma", "--widen-l7-to-l4", case])
    assert code == 0
    assert err.count("[Widened]") == 2
    assert out == (GOLDEN_DIR / "kuma" / "kuma-widen" / "output.yaml").read_text()
    code, out, err = run(["translate", "--mesh", "kuma", "--widen-l7-to-l4", "--strict", case])
    assert code == 3
    assert out
    assert "[Widened]" in err
