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


def test_match_referencing_a_missing_group_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ref.yaml"
    path.write_text(BAD.split("---", maxsplit=1)[0].replace("weight: 0}\n  - {service: b, weight: 0}",
                                                 "weight: 1}"))
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(path)])
    assert (code, out) == (1, "")
    assert err == ("error: TrafficSplit shop/bad: spec.matches[0]: "
                   "HTTPRouteGroup shop/missing does not exist\n")


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1, 2\n", "invalid YAML"),
    ("- just\n- a list\n", "document must be a mapping"),
    ("kind: TrafficSplit\n", "document has no apiVersion and kind"),
])
def test_malformed_documents(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, out, err = run(["translate", "--mesh", "gamma", "-f", str(path)])
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {path}:1: ")
    assert message in err


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
