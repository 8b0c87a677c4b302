"""Fixtures for the fault scenarios: a dedicated control plane and the results file.

The plane is module-scoped and lives in a tmp folder of its own: the scenarios
kill and restart its kube-apiserver and etcd, which must never happen to the
session-wide ``envtest`` fixture other tests share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.envtest import envtest as lib
from tests.envtest import fixtures
from tests.reliability.plane import Plane

RESULTS = lib.REPO_ROOT / "benchmarks" / "results" / "reliability.json"
# Only the mesh CRDs the scenarios' target (istio) writes; installing every
# upstream CRD would cost time and prove nothing more here.
ISTIO_CRDS = ("virtualservices.networking.istio.io", "authorizationpolicies.security.istio.io")


def istio_crds() -> list[dict[str, Any]]:
    docs = [d for d in fixtures.upstream_crd_documents(fixtures.mesh_crds_dir())
            if d["metadata"]["name"] in ISTIO_CRDS]
    if len(docs) != len(ISTIO_CRDS):
        pytest.fail(f"istio CRDs not found under {fixtures.mesh_crds_dir()} (set MESH_CRDS_DIR)",
                    pytrace=False)
    return docs


def install_crds(http: lib.KubeHTTP, docs: list[dict[str, Any]]) -> None:
    """Apply CRDs and wait until Established.

    Like :func:`tests.envtest.fixtures.install_crds`, but tolerant of the moment
    right after the apply when ``status.conditions`` is still null.
    """
    for doc in docs:
        body = {k: v for k, v in doc.items() if k != "status"}
        fixtures.server_side_apply(http, body, field_manager=fixtures.TEST_FIELD_MANAGER, strict=False)

    def established(name: str) -> bool:
        got = http.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = ((got.json() or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    deadline = time.monotonic() + fixtures.CRD_ESTABLISH_TIMEOUT
    pending = {d["metadata"]["name"] for d in docs}
    while pending := {n for n in pending if not established(n)}:
        if time.monotonic() > deadline:
            raise lib.EnvtestError(f"CRDs not Established: {sorted(pending)}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def plane(envtest_binaries: lib.Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """etcd + kube-apiserver + kube-controller-manager of our own, with the CRDs installed."""
    directory = tmp_path_factory.mktemp("faults-plane")
    try:
        env = lib.start(directory, envtest_binaries)
    except lib.EnvtestError as error:
        pytest.fail(f"cannot start the dedicated control plane in {directory}:\n{error}", pytrace=False)
    try:
        http = env.http()
        install_crds(http, fixtures.crd_documents_in(fixtures.project_crds_dir()))
        install_crds(http, istio_crds())
        yield Plane(env)
    finally:
        lib.stop(directory)


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Add one scenario's figures to benchmarks/results/reliability.json (best effort)."""
    try:
        data = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    except ValueError:
        data = {}
    data.setdefault("scenarios", {})[scenario] = {**figures,
                                                  "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                            time.gmtime())}
    data["about"] = ("tests/reliability/test_faults.py: the operator (mesh istio) against a dedicated "
                     "envtest control plane on a shared 2-core machine; seconds are wall time")
    try:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError:
        pass

