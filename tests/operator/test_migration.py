"""The migration workflow against the real API server: ``translate --from-cluster`` and ``plan``.

``translate --from-cluster`` must equal the translation of the same objects
as files; ``plan`` must list exactly the creates, updates and deletes the
operator then makes (on a fresh namespace and on a swap) and write nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi2mesh.operator import reconcile
from smi2mesh.operator.config import MESH_LABEL, OPERATOR_MESHES, OperatorConfig
from smi2mesh.operator.store import CONTEXT_KINDS, SMI_KINDS
from smi2mesh.translators.base import MANAGED_BY, MANAGER
from tests.envtest import envtest as lib
from tests.operator.conftest import Cluster, OperatorFactory
from tests.test_cli import run

pytestmark = pytest.mark.envtest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ALL_MESHES = OperatorConfig(mesh="istio", enabled_meshes=frozenset(OPERATOR_MESHES))


def examples_in(namespace: str, folder: Path) -> Path:
    """The examples moved to *namespace*, one file each, as a user's repository holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        (folder / path.name).write_text(path.read_text().replace("namespace: bookstore",
                                                                 f"namespace: {namespace}"))
    return folder


def apply_files(cluster: Cluster, folder: Path, namespace: str) -> None:
    """Apply each document in the version it is written in (as Flagger or kubectl would)."""
    for path in sorted(folder.glob("*.yaml")):
        cluster.apply(path.read_text(), namespace)


def snapshot(cluster: Cluster, namespace: str) -> dict[tuple[str, str, str], str]:
    """resourceVersion of every object smi2mesh reads or writes in *namespace*, and of the namespace."""
    kinds: set[tuple[str, str]] = {(f"{g}/{v}", k) for (g, _), k in SMI_KINDS.items()
                                   for v in ["v1alpha4" if g != "access.smi-spec.io" else "v1alpha3"]}
    kinds |= {("v1" if not g else f"{g}/v1", k) for (g, _), k in CONTEXT_KINDS.items()}
    kinds |= set(reconcile.output_resources(ALL_MESHES))
    out: dict[tuple[str, str, str], str] = {}
    for api_version, kind in sorted(kinds):
        served = cluster.kube.served(api_version) or {}
        if kind not in served:
            continue
        for body in cluster.objects(api_version, kind, namespace):
            out[(api_version, kind, body["metadata"]["name"])] = body["metadata"]["resourceVersion"]
    ns = cluster.get("v1", "Namespace", "", namespace)
    assert ns is not None
    out[("v1", "Namespace", namespace)] = ns["metadata"]["resourceVersion"]
    return out


def ours(cluster: Cluster, namespace: str) -> dict[tuple[str, str], str]:
    """(kind, name) -> resourceVersion of every generated object in *namespace*."""
    out: dict[tuple[str, str], str] = {}
    for api_version, kind in sorted(reconcile.output_resources(ALL_MESHES)):
        if kind not in (cluster.kube.served(api_version) or {}):
            continue
        for body in cluster.objects(api_version, kind, namespace):
            if (body["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER:
                out[(kind, body["metadata"]["name"])] = body["metadata"]["resourceVersion"]
    return out


def settled(cluster: Cluster, namespace: str, quiet: float = 2.0,
            timeout: float = 60.0) -> dict[tuple[str, str], str]:
    """Generated objects once they stopped changing for *quiet* seconds."""
    deadline = time.monotonic() + timeout
    last, since = ours(cluster, namespace), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = ours(cluster, namespace)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"generated objects still changing after {timeout}s")


def plan_json(kubeconfig: Path, namespace: str, mesh: str, *extra: str) -> tuple[int, Any, str]:
    code, out, err = run(["plan", "--mesh", mesh, "-n", namespace, "--kubeconfig", str(kubeconfig),
                          "-o", "json", *extra])
    return code, json.loads(out) if out else None, err


def planned(plan: Any, action: str) -> set[tuple[str, str]]:
    return {(c["kind"], c["name"]) for c in plan[action]}


@pytest.mark.parametrize("mesh", ["istio", "linkerd", "consul", "kuma", "cilium", "gamma"])
def test_translate_from_cluster_equals_the_files(mesh: str, cluster: Cluster, namespace: str,
                                                 envtest: lib.Environment, tmp_path: Path) -> None:
    files = examples_in(namespace, tmp_path / "repo")
    apply_files(cluster, files, namespace)
    from_files = run(["translate", "--mesh", mesh, "-f", str(files)])
    from_cluster = run(["translate", "--mesh", mesh, "--from-cluster", "-n", namespace,
                        "--kubeconfig", str(envtest.kubeconfig)])
    assert from_files[0] == 0
    assert from_cluster == from_files
    assert from_files[1].count("\n---") >= 3


def test_files_win_for_smi_objects_and_the_cluster_fills_in_context(
        cluster: Cluster, namespace: str, envtest: lib.Environment, tmp_path: Path) -> None:
    files = examples_in(namespace, tmp_path / "repo")
    apply_files(cluster, files, namespace)
    # The repository's version of one split differs from the cluster's; it comes without
    # its HTTPRouteGroup and Services.
    source = files / "04-header-routing-v1alpha4.yaml"
    docs = list(yaml.safe_load_all(source.read_text()))
    docs[0]["spec"]["backends"][0]["weight"] = 7
    exported = tmp_path / "export.yaml"
    exported.write_text(yaml.safe_dump(docs[0]))
    merged = run(["translate", "--mesh", "linkerd", "-f", str(exported), "--from-cluster",
                  "--kubeconfig", str(envtest.kubeconfig)])
    source.write_text(yaml.safe_dump_all(docs))
    expected = run(["translate", "--mesh", "linkerd", "-f", str(files)])
    assert merged == expected
    assert "weight: 7" in merged[1]
    # Without the cluster the exported split names a route group nobody gave: no route.
    _, out, err = run(["translate", "--mesh", "linkerd", "-f", str(exported)])
    assert "HTTPRoute" not in out
    assert f"HTTPRouteGroup {namespace}/internal-writes" in err


def test_cluster_errors_are_one_line_never_a_traceback(tmp_path: Path, envtest: lib.Environment) -> None:
    unreachable = tmp_path / "kubeconfig"
    config = yaml.safe_load(Path(envtest.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable.write_text(yaml.safe_dump(config))
    for args in (["translate", "--mesh", "istio", "--from-cluster", "--kubeconfig", str(unreachable)],
                 ["plan", "--mesh", "istio", "--kubeconfig", str(unreachable)],
                 ["report", "--from-cluster", "--kubeconfig", str(unreachable)]):
        code, out, err = run(args)
        assert (code, out) == (2, "")
        assert err.startswith("error: cannot reach the API server of context ")
        assert len(err.splitlines()) == 1
    code, _, err = run(["plan", "--mesh", "istio", "--kubeconfig", str(envtest.kubeconfig),
                        "--context", "nope"])
    assert code == 2
    assert err == f"error: --context nope: no such context in {envtest.kubeconfig}\n"
    code, _, err = run(["translate", "--mesh", "istio", "-n", "x", "-f", str(EXAMPLES)])
    assert code == 2
    assert "add --from-cluster" in err
    code, _, err = run(["plan", "--mesh", "istio", "--kubeconfig", str(envtest.kubeconfig),
                        "-n", "no-such-namespace"])
    assert (code, err) == (2, f"error: namespace no-such-namespace does not exist in context "
                              f"{_context(envtest)}\n")


def _context(envtest: lib.Environment) -> str:
    config = yaml.safe_load(Path(envtest.kubeconfig).read_text())
    return f"{config['current-context']} ({config['clusters'][0]['cluster']['server']})"


def test_plan_is_what_the_operator_then_does_and_writes_nothing(
        cluster: Cluster, namespace: str, envtest: lib.Environment, tmp_path: Path,
        run_operator: OperatorFactory) -> None:
    apply_files(cluster, examples_in(namespace, tmp_path / "repo"), namespace)
    # Fresh namespace: only creates.
    before = snapshot(cluster, namespace)
    code, plan, err = plan_json(envtest.kubeconfig, namespace, "istio")
    assert snapshot(cluster, namespace) == before
    assert code == 0, err
    assert (planned(plan, "update"), planned(plan, "delete")) == (set(), set())
    assert len(plan["findings"]) == 4
    with run_operator(mesh="istio", enable=("cilium",)):
        istio = settled(cluster, namespace)
    assert set(istio) == planned(plan, "create")

    # An edited split: one update, shown as the server's dry-run diff.
    split = cluster.get("split.smi-spec.io/v1alpha4", "TrafficSplit", namespace, "bookstore-ab")
    assert split is not None
    cluster.patch("split.smi-spec.io/v1alpha4", "TrafficSplit", namespace, "bookstore-ab",
                  {"spec": {"backends": [{"service": "bookstore-v1", "weight": 1},
                                         {"service": "bookstore-v2", "weight": 3}]}})
    before = snapshot(cluster, namespace)
    code, plan, _ = plan_json(envtest.kubeconfig, namespace, "istio")
    assert snapshot(cluster, namespace) == before
    assert planned(plan, "update") == {("VirtualService", "bookstore-ab")}
    [update] = plan["update"]
    assert "-      weight: 100" in update["diff"]
    assert "+      weight: 75" in update["diff"]
    assert "note" not in update  # a real server-side dry run
    assert (planned(plan, "create"), planned(plan, "delete")) == (set(), set())
    with run_operator(mesh="istio", enable=("cilium",)):
        after = settled(cluster, namespace)
    assert {k for k in after if after[k] != istio[k]} == planned(plan, "update")

    # A swap to cilium: cilium's objects created, istio's deleted.
    before = snapshot(cluster, namespace)
    code, plan, _ = plan_json(envtest.kubeconfig, namespace, "cilium")
    assert snapshot(cluster, namespace) == before
    assert planned(plan, "delete") == set(after)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": namespace, "labels": {MESH_LABEL: "cilium"}}}, namespace)
    with run_operator(mesh="istio", enable=("cilium",)):
        swapped = settled(cluster, namespace)
    assert set(swapped) == planned(plan, "create")
    assert set(after) - set(swapped) == planned(plan, "delete")
    assert planned(plan, "update") == set()


def test_plan_shows_conflicts_inert_objects_and_competing_controllers(
        cluster: Cluster, namespace: str, envtest: lib.Environment, tmp_path: Path) -> None:
    apply_files(cluster, examples_in(namespace, tmp_path / "repo"), namespace)
    cluster.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                   "metadata": {"name": "bookstore-ab"},
                   "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "bookstore"}]}},
                  namespace, manager="someone-else")
    cluster.apply({"apiVersion": "linkerd.io/v1alpha2", "kind": "ServiceProfile",
                   "metadata": {"name": f"bookstore.{namespace}.svc.cluster.local"},
                   "spec": {"dstOverrides": [{"authority": f"bookstore-v1.{namespace}.svc.cluster.local",
                                              "weight": "1"}]}}, namespace)
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "smi-adaptor"},
                   "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {
                       "metadata": {"labels": {"app": "a"}},
                       "spec": {"containers": [{"name": "a",
                                                "image": "cr.l5d.io/linkerd/smi-adaptor:v0.2.7"}]}}}},
                  namespace)
    before = snapshot(cluster, namespace)
    code, plan, err = plan_json(envtest.kubeconfig, namespace, "linkerd", "--strict")
    assert snapshot(cluster, namespace) == before
    assert code == 3, err
    (foreign_route, shadowed) = plan["conflicts"]
    assert foreign_route == (f"TrafficSplit/{namespace}/bookstore-ab: HTTPRoute {namespace}/bookstore-ab "
                             "exists and is not managed by smi2mesh; left unchanged")
    # The operator would set Conflict=True on the split whose routes the ServiceProfile overrides.
    assert shadowed.startswith(f"TrafficSplit/{namespace}/bookstore-rollout: spec.service: ServiceProfile "
                               f"{namespace}/bookstore.{namespace}.svc.cluster.local")
    assert ("HTTPRoute", "bookstore-ab") not in planned(plan, "create")
    inert = "\n".join(plan["inert"])
    assert f"ServiceProfile {namespace}/bookstore.{namespace}.svc.cluster.local has dstOverrides" in inert
    assert "planned HTTPRoute for Service bookstore would have no effect" in inert
    assert f"linkerd-smi (smi-adaptor) is running (Deployment {namespace}/smi-adaptor)" in inert
    # The text form says the same, and that nothing was written.
    code, out, _ = run(["plan", "--mesh", "linkerd", "-n", namespace,
                        "--kubeconfig", str(envtest.kubeconfig)])
    assert code == 0
    assert "  ! conflict: " in out
    assert out.rstrip().endswith("Nothing was written.")


def test_kubectl_plugin(cluster: Cluster, namespace: str, envtest: lib.Environment, tmp_path: Path) -> None:
    """`kubectl smi2mesh plan` through the real kubectl, when one is installed."""
    kubectl = shutil.which("kubectl")
    plugin = Path(sys.executable).parent / "kubectl-smi2mesh"
    if kubectl is None or not plugin.exists():
        pytest.fail("kubectl and the kubectl-smi2mesh console script must be installed "
                    f"(kubectl: {kubectl}, plugin: {plugin}; pip install -e . installs the plugin)")
    apply_files(cluster, examples_in(namespace, tmp_path / "repo"), namespace)
    env = {**os.environ, "PATH": f"{plugin.parent}{os.pathsep}{os.environ['PATH']}",
           "KUBECONFIG": str(envtest.kubeconfig)}
    listed = subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, env=env, check=False)
    assert str(plugin) in listed.stdout
    context = yaml.safe_load(Path(envtest.kubeconfig).read_text())["current-context"]
    via_kubectl = subprocess.run([kubectl, "smi2mesh", "plan", "--mesh", "istio", "-n", namespace,
                                  "--context", context], capture_output=True, text=True, env=env,
                                 check=False)
    direct = run(["plan", "--mesh", "istio", "-n", namespace, "--kubeconfig", str(envtest.kubeconfig)])
    assert (via_kubectl.returncode, via_kubectl.stdout) == direct[:2]
    assert "13 to create" in via_kubectl.stdout
    # kubectl's habit of flags before the subcommand, and translate reading the cluster.
    flags_first = subprocess.run([kubectl, "smi2mesh", "-n", namespace, "translate", "--mesh", "istio"],
                                 capture_output=True, text=True, env=env, check=False)
    assert flags_first.returncode == 0, flags_first.stderr
    assert flags_first.stdout == run(["translate", "--mesh", "istio", "-f", str(tmp_path / "repo")])[1]


def test_report_from_cluster_equals_the_files(cluster: Cluster, namespace: str,
                                              envtest: lib.Environment, tmp_path: Path) -> None:
    files = examples_in(namespace, tmp_path / "repo")
    apply_files(cluster, files, namespace)
    from_files = run(["report", "-f", str(files), "-o", "json"])
    from_cluster = run(["report", "--from-cluster", "-n", namespace, "--kubeconfig",
                        str(envtest.kubeconfig), "-o", "json"])
    assert from_cluster == from_files
    assert json.loads(from_files[1])["smiObjects"] == 21
