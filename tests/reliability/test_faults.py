"""Faults on the real API server (issue 7), one scenario per test.

Each scenario runs the real operator (mesh istio) over a few hundred SMI
objects of every kind in three namespaces of a dedicated control plane,
injects one fault, waits for convergence and checks, with
:func:`tests.reliability.checks.problems`: every expected object exists with
the right content, no orphans, truthful status. Objects that are not ours
(foreign objects created up front, Services, Deployments) must keep their
resourceVersion, and the operator may only have written the status of SMI
objects. The figures (objects, fault, time to converge, writes during
recovery) go to benchmarks/results/reliability.json.

Every wait is a poll with a generous deadline: the machine is shared.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from smi2mesh.inputs import parse_documents
from smi2mesh.model import Identity
from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import ApiError, Kube
from tests.access import HttpRequest, Request, smi_allows
from tests.access import istio as istio_access
from tests.envtest import envtest as lib
from tests.operator import harness
from tests.reliability import checks
from tests.reliability.conftest import ISTIO_CRDS, install_crds, istio_crds, record
from tests.reliability.corpus import (
    ACCESS_API,
    SPECS_API,
    SPLIT_API,
    Change,
    Corpus,
    Doc,
    build,
    burst,
    canary_group,
    key_of,
    problems_of,
)
from tests.reliability.plane import OperatorProcess, Plane, Proxy, kubeconfig_via

pytestmark = [
    pytest.mark.envtest,
    # When the API server or etcd vanishes mid-request, aiohttp (under kopf) can drop a
    # TLS socket without closing it; the ResourceWarning surfaces in a later test as an
    # "unraisable" exception. It is a leak in the client library, not a failure of the
    # operator (which reconnects), so only that warning is let through.
    pytest.mark.filterwarnings("ignore:Exception ignored in. <ssl.SSLSocket"
                               ":pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning"),
]

CONVERGE = 180.0  # seconds; a scenario converges in far less on an idle machine


# ---- scaffolding ---------------------------------------------------------------------


@dataclass
class Scene:
    """One scenario's cluster state: the corpus, a client, and what must not change."""

    plane: Plane
    corpus: Corpus
    kube: Kube
    untouchable: list[Doc] = field(default_factory=list)
    versions: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def operator_config(self) -> OperatorConfig:
        return OperatorConfig(mesh="istio", namespaces=self.corpus.namespaces)

    def finish(self) -> None:
        """The checks every scenario ends with, once converged."""
        assert checks.problems(self.kube, self.corpus, limit=0) == []
        changed = {k: (v, now) for k, v in self.versions.items()
                   if (now := checks.versions(self.kube, [d for d in self.untouchable
                                                          if key_of(d) == k])[k]) != v}
        assert not changed, f"objects that are not ours changed: {changed}"
        assert checks.status_only_writes(self.kube, self.corpus) == []

    def cleanup(self) -> None:
        """Delete the scenario's namespaces (in the background), to keep the plane light."""
        for ns in self.corpus.namespaces:
            checks.retrying(lambda n=ns: self.kube.request("DELETE", f"/api/v1/namespaces/{n}"))  # type: ignore[misc]


def scene(plane: Plane, prefix: str, *, foreign_mesh_objects: bool = True) -> Scene:
    corpus = build(prefix)
    kube = checks.client(str(plane.env.kubeconfig))
    checks.ensure_namespaces(kube, corpus.namespaces)
    foreign = [f for ns in corpus.namespaces for f in checks.foreign_objects(ns)
               if foreign_mesh_objects or f["kind"] == "ConfigMap"]
    context = [d for d in corpus.docs.values() if d["kind"] in checks.CONTEXT]
    checks.apply_all(kube, foreign, workers=2)
    checks.apply_all(kube, corpus.docs.values())
    untouchable = [*foreign, *context]
    return Scene(plane, corpus, kube, untouchable, checks.versions(kube, untouchable))


def api_client(kubeconfig: Path | str) -> kubernetes.client.ApiClient:
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call,unused-ignore]
        config_file=str(kubeconfig))
    return client


@contextmanager
def operator(s: Scene, kubeconfig: Path | str | None = None) -> Iterator[harness.RunningOperator]:
    """The real operator in-process, with a client of its own (never the global default)."""
    with harness.operator(s.operator_config(),
                          api_client=api_client(kubeconfig or s.plane.env.kubeconfig)) as op:
        yield op


def dead(op: harness.RunningOperator) -> str:
    """Why the in-process operator is no longer running ("" while it is)."""
    if op._error is not None:
        return repr(op._error)
    if not op._thread.is_alive():
        return "its thread ended"
    done = [t for t in op.operator._tasks if t.done()]
    return f"loop task ended: {done}" if done else ""


def counters(op: harness.RunningOperator) -> dict[str, int]:
    """Writes so far: every API write, and plan writes by verb."""
    out = {"writes": op.writes}
    for verb in ("create", "apply", "delete"):
        out[verb] = int(op.operator.metrics.writes.labels(verb)._value.get())
    return out


def since(before: dict[str, int], op: harness.RunningOperator) -> dict[str, int]:
    now = counters(op)
    return {k: now[k] - before[k] for k in now}


class Burst:
    """Writes a burst of changes in a thread; each write retries while the plane is down."""

    def __init__(self, kube: Kube, changes: list[Change]) -> None:
        self.changes = changes
        self.done = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(kube,), daemon=True, name="burst")

    def _run(self, kube: Kube) -> None:
        try:
            for c in self.changes:
                checks.write(kube, c)
                self.done += 1
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def start(self) -> Burst:
        self._thread.start()
        return self

    def join(self, timeout: float = 300.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the burst did not finish"
        if self.error is not None:
            raise self.error


def in_process_fault(plane: Plane, prefix: str, seed: int, fault: str,
                     inject: Any) -> dict[str, Any]:
    """Scenarios 1 and 2: converge, start a burst, inject the fault mid-burst, converge again."""
    s = scene(plane, prefix)
    with operator(s) as op:
        checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial", alive=lambda: dead(op))
        # No deletions in this burst: a deletion the operator misses while its watches
        # are down wedges it (see the 410 scenario, which pins that bug down).
        changes = list(burst(s.corpus, seed, deletions=False))
        before = counters(op)
        b = Burst(s.kube, changes).start()
        harness.wait_for(lambda: b.done >= len(changes) // 3 or b.error, 120, "a third of the burst",
                         interval=0.01)
        fault_at = time.monotonic()
        recovered = inject()
        b.join()
        converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, f"after {fault}",
                                          alive=lambda: dead(op))
        writes = since(before, op)
        s.finish()
        assert not dead(op)
    s.cleanup()
    return {"smi_objects": s.corpus.smi_count(), "burst_changes": len(changes), "fault": fault,
            "fault_duration_s": round(recovered - fault_at, 1),
            "converge_after_recovery_s": round(converged - recovered, 1),
            "operator_writes_from_fault_to_converged": writes}


# ---- 1. the API server is SIGKILLed mid-burst ----------------------------------------


def test_apiserver_sigkill_during_a_burst(plane: Plane) -> None:
    figures = in_process_fault(
        plane, "s1", 11, "SIGKILL kube-apiserver mid-burst, restarted after 2 s (same flags, same etcd)",
        lambda: plane.restart(lib.APISERVER, signal.SIGKILL, down_for=2.0))
    record("1-apiserver-sigkill", figures)


# ---- 2. etcd restarts --------------------------------------------------------------------


def test_etcd_restart_while_the_operator_runs(plane: Plane) -> None:
    def inject() -> float:
        plane.restart(lib.ETCD, signal.SIGTERM, down_for=3.0)
        plane.wait_apiserver()
        return time.monotonic()

    figures = in_process_fault(plane, "s2", 22, "etcd stopped mid-burst, started again after 3 s "
                               "(same data dir)", inject)
    record("2-etcd-restart", figures)


# ---- 3. the operator is SIGKILLed mid-apply ---------------------------------------------


def test_operator_sigkill_mid_apply(plane: Plane, tmp_path: Path) -> None:
    s = scene(plane, "s3")
    args = ["--mesh", "istio", *[a for ns in s.corpus.namespaces for a in ("--namespace", ns)]]

    def process(n: int) -> OperatorProcess:
        health = harness.free_port()
        return OperatorProcess([*args, "--metrics-port", str(harness.free_port()),
                                "--health-port", str(health)],
                               plane.env.kubeconfig, tmp_path / f"operator-{n}.log", health)

    def ours() -> int:
        return sum(1 for ns in s.corpus.namespaces for av, kind in checks.OUTPUTS
                   for o in checks.listing(s.kube, av, kind, ns)
                   if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "smi2mesh")

    total = len(s.corpus.expected())
    first = process(1).start()
    try:
        # Kill as soon as it has written some outputs: in the middle of its first pass.
        written = harness.wait_for(lambda: ours() if ours() >= 5 or not first.running() else 0, 120,
                                   "the first operator's first outputs", interval=0.02)
        first.kill()
    finally:
        first.kill()
    assert written < total, "the kill landed after the initial apply; nothing was tested"
    at_kill = ours()
    second = process(2).start()
    try:
        started = time.monotonic()
        converged = checks.wait_converged(
            s.kube, s.corpus, CONVERGE, "after the operator restart",
            alive=lambda: "" if second.running() else f"exited: {second.log.read_text()[-2000:]}")
        s.finish()
        assert second.running()
        assert second.errors() == []
        lines = second.reconcile_lines()
    finally:
        second.stop()
    writes = {k: sum(int(r.get(k, 0)) for r in lines)
              for k in ("writes", "creates", "applies", "deletes", "statuses")}
    # Everything the first one wrote is taken over, none of it duplicated or re-created.
    assert writes["creates"] <= total - at_kill
    s.cleanup()
    record("3-operator-sigkill", {
        "smi_objects": s.corpus.smi_count(), "expected_outputs": total, "outputs_at_kill": at_kill,
        "fault": "SIGKILL of `smi2mesh run` mid-apply, a new process started",
        "converge_after_recovery_s": round(converged - started, 1),
        "operator_writes_from_fault_to_converged": writes})


# ---- 6. the mesh's CRDs are removed and reinstalled ---------------------------------


# Not strict: it fails only when the operator's next pass comes before kopf has
# watched the re-created kinds again (seen in 1 of 2 runs here). The deterministic
# reproduction, strict, is test_races.py::test_409_on_our_own_object_is_not_a_conflict.
def test_mesh_crds_removed_and_reinstalled(plane: Plane) -> None:
    # Deleting a CRD deletes every object of it, foreign ones too: only ConfigMaps here.
    s = scene(plane, "s6", foreign_mesh_objects=False)
    crd = checks.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                          "customresourcedefinitions")
    crd = type(crd)(crd.group, crd.version, crd.plural, crd.kind, namespaced=False)
    docs = istio_crds()
    try:
        figures = _crds_removed_and_reinstalled(s, crd, docs)
    finally:
        # Whatever happened, the next scenarios need the istio CRDs back.
        install_crds(plane.env.http(), docs)
    s.cleanup()
    record("6-mesh-crds-removed", figures)


def _crds_removed_and_reinstalled(s: Scene, crd: Any, docs: list[Doc]) -> dict[str, Any]:
    with operator(s) as op:
        checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial", alive=lambda: dead(op))
        before = counters(op)
        fault_at = time.monotonic()
        for name in ISTIO_CRDS:
            path = crd.path(None, name)
            checks.retrying(lambda p=path: s.kube.request("DELETE", p))  # type: ignore[misc]
        harness.wait_for(lambda: all(s.kube.get(crd, None, n) is None for n in ISTIO_CRDS), 150,
                         "istio CRDs gone", interval=0.5)

        def all_missing() -> bool:
            for ns in s.corpus.namespaces:
                for kind, api in (("TrafficSplit", SPLIT_API), ("TrafficTarget", ACCESS_API)):
                    for o in checks.listing(s.kube, api, kind, ns):
                        ready = {c["type"]: c for c in (o.get("status") or {}).get("conditions", [])}
                        if ready.get("Ready", {}).get("reason") != "MeshCRDsMissing":
                            return False
            return True

        harness.wait_for(lambda: all_missing() or dead(op), 120, "Ready=False/MeshCRDsMissing on "
                         "every TrafficSplit and TrafficTarget", interval=0.5)
        assert not dead(op)
        missing_writes = since(before, op)
        install_crds(s.plane.env.http(), docs)
        recovered = time.monotonic()
        before = counters(op)
        converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, "after the CRDs came back",
                                          alive=lambda: dead(op))
        writes = since(before, op)
        s.finish()
        assert not dead(op)
    return {
        "smi_objects": s.corpus.smi_count(), "fault": "istio CRDs deleted, then reinstalled",
        "crds_absent_s": round(recovered - fault_at, 1),
        "operator_writes_while_missing": missing_writes,
        "converge_after_recovery_s": round(converged - recovered, 1),
        "operator_writes_from_fault_to_converged": writes}


# ---- 7. a referenced HTTPRouteGroup is deleted ---------------------------------------


def requests_for(corpus: Corpus, namespace: str, apps: list[str]) -> list[Request]:
    """Requests aimed at the TrafficTargets of *apps*: their sources, ports and routes, and others."""
    out = []
    for app in apps:
        tt = corpus.docs[("TrafficTarget", namespace, f"{app}-access")]
        svc = corpus.docs[("Service", namespace, app)]
        port = svc["spec"]["ports"][0]["port"]
        sources = [Identity(s["name"], s["namespace"]) for s in tt["spec"]["sources"]]
        sources.append(Identity("stranger", namespace))
        http = [None, *(HttpRequest(m, p, h) for m in ("GET", "POST")
                        for p in ("/items", "/items/7", "/catalog", "/healthz", "/other")
                        for h in ({}, {"x-beta": "true"}))]
        for src in sources:
            for p in (port, 53, 12345):
                for proto in ("TCP", "UDP"):
                    for h in http if proto == "TCP" else [None]:
                        out.append(Request(src, namespace, app, {"app": app, "version": "v1"}, proto, p, h))
    return out


def inputs_of(corpus: Corpus) -> Any:
    return parse_documents(((str(i), d) for i, d in enumerate(corpus.docs.values())))


def test_deleted_route_group_only_narrows_access(plane: Plane) -> None:
    s = scene(plane, "s7")
    ns = s.corpus.namespaces[0]
    apps = s.corpus.app_names(ns)[:10]
    reqs = requests_for(s.corpus, ns, apps)
    original = inputs_of(s.corpus)
    with operator(s) as op:
        checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial", alive=lambda: dead(op))
        policies = checks.listing(s.kube, "security.istio.io/v1", "AuthorizationPolicy", ns)
        allowed_before = {i for i, r in enumerate(reqs) if istio_access.allows(policies, r)}
        assert allowed_before, "the requests exercise nothing"
        before = counters(op)
        fault_at = time.monotonic()
        for app in apps:
            s.corpus.remove(("HTTPRouteGroup", ns, f"{app}-api"))
            checks.delete(s.kube, "HTTPRouteGroup", ns, f"{app}-api")
        converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, "after the route groups went",
                                          alive=lambda: dead(op))
        writes = since(before, op)
        for app in apps:
            target = s.kube.get(checks.resource_of(ACCESS_API, "TrafficTarget"), ns, f"{app}-access")
            assert target is not None
            conds = {c["type"]: c for c in target["status"]["conditions"]}
            assert conds["ResolvedRefs"]["status"] == "False", conds["ResolvedRefs"]
            assert f"{app}-api" in conds["ResolvedRefs"]["message"], conds["ResolvedRefs"]
        policies = checks.listing(s.kube, "security.istio.io/v1", "AuthorizationPolicy", ns)
        allowed_after = {i for i, r in enumerate(reqs) if istio_access.allows(policies, r)}
        s.finish()
    broader = allowed_after - allowed_before
    assert not broader, f"allowed only after the deletion: {[reqs[i] for i in sorted(broader)][:5]}"
    unsound = [reqs[i] for i in sorted(allowed_after) if not smi_allows(original, reqs[i])]
    assert not unsound, f"allowed although SMI never allowed it: {unsound[:5]}"
    s.cleanup()
    record("7-route-group-deleted", {
        "smi_objects": s.corpus.smi_count() + len(apps), "fault": f"{len(apps)} referenced "
        "HTTPRouteGroups deleted", "requests_checked": len(reqs),
        "allowed_before": len(allowed_before), "allowed_after": len(allowed_after),
        "converge_after_recovery_s": round(converged - fault_at, 1),
        "operator_writes_from_fault_to_converged": writes})
    # Narrower than before is not enough: nothing may be allowed that SMI no longer allows.
    current = inputs_of(s.corpus)
    leaked = [reqs[i] for i in sorted(allowed_after) if not smi_allows(current, reqs[i])]
    assert not leaked, f"{len(leaked)} requests still allowed by the deleted route groups: {leaked[:3]}"


# ---- 8. bad input the CRDs accept and the parser rejects --------------------------------


def bad_objects(corpus: Corpus) -> list[tuple[Doc, str]]:
    """(document, field its InvalidSpec message must name): new objects and bad updates."""
    ns, other = corpus.namespaces[0], corpus.namespaces[1]
    apps = corpus.app_names(ns)

    def meta(name: str) -> Doc:
        return {"name": name, "namespace": ns}

    bad: list[tuple[Doc, str]] = [
        ({"apiVersion": SPLIT_API, "kind": "TrafficSplit", "metadata": meta("bad-zero"),
          "spec": {"service": apps[0], "backends": [{"service": "a", "weight": 0},
                                                    {"service": "b", "weight": 0}]}}, "spec.backends"),
        ({"apiVersion": SPLIT_API, "kind": "TrafficSplit", "metadata": meta("bad-duplicate"),
          "spec": {"service": apps[1], "backends": [{"service": "a", "weight": 1},
                                                    {"service": "a", "weight": 2}]}},
         "spec.backends[1].service"),
        ({"apiVersion": SPECS_API, "kind": "HTTPRouteGroup", "metadata": meta("bad-regex"),
          "spec": {"matches": [{"name": "m", "pathRegex": "/a(?=b)"}]}}, "spec.matches[0].pathRegex"),
        ({"apiVersion": SPECS_API, "kind": "HTTPRouteGroup", "metadata": meta("bad-header"),
          "spec": {"matches": [{"name": "m", "headers": {"x-a": "[unclosed"}}]}},
         "spec.matches[0].headers"),
        ({"apiVersion": ACCESS_API, "kind": "TrafficTarget", "metadata": meta("bad-cross-namespace"),
          "spec": {"destination": {"kind": "ServiceAccount", "name": apps[2], "namespace": other},
                   "sources": [{"kind": "ServiceAccount", "name": apps[3], "namespace": ns}],
                   "rules": [{"kind": "TCPRoute", "name": f"{apps[2]}-port"}]}},
         "spec.destination.namespace"),
    ]
    # Existing objects turned bad: the last good output must stay.
    for app in apps[4:7]:
        doc = dict(corpus.docs[("TrafficSplit", ns, f"{app}-split")])
        doc["spec"] = {**doc["spec"], "backends": [{"service": f"{app}-v1", "weight": 0},
                                                   {"service": f"{app}-v2", "weight": 0}]}
        bad.append((doc, "spec.backends"))
    tt = dict(corpus.docs[("TrafficTarget", ns, f"{apps[7]}-access")])
    tt["spec"] = {**tt["spec"], "destination": {**tt["spec"]["destination"], "namespace": other}}
    bad.append((tt, "spec.destination.namespace"))
    for doc, where in bad:
        assert any(where in p for p in problems_of(doc)), (doc["metadata"]["name"], problems_of(doc))
    return bad


def test_bad_input_is_reported_and_everything_else_served(plane: Plane) -> None:
    s = scene(plane, "s8")
    with operator(s) as op:
        checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial", alive=lambda: dead(op))
        bad = bad_objects(s.corpus)
        # Bad objects arrive mixed with good changes, as from one GitOps sync.
        good = list(burst(s.corpus, 88, size=30))
        for doc, _ in bad:
            s.corpus.put(doc)
        before = counters(op)
        fault_at = time.monotonic()
        mixed = [Change(key_of(d), d) for d, _ in bad]
        mixed = [c for pair in zip(good, mixed, strict=False) for c in pair] + good[len(mixed):]
        for c in mixed:
            checks.write(s.kube, c)
        converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, "with bad input",
                                          alive=lambda: dead(op))
        writes = since(before, op)
        events = s.kube.request("GET", f"/api/v1/namespaces/{s.corpus.namespaces[0]}/events")[1]["items"]
        for doc, where in bad:
            name = doc["metadata"]["name"]
            res = checks.resource_of(doc["apiVersion"], doc["kind"])
            live = s.kube.get(res, doc["metadata"]["namespace"], name)
            assert live is not None
            ready = {c["type"]: c for c in live["status"]["conditions"]}["Ready"]
            assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), ready
            assert where in ready["message"], ready
            assert any(e["involvedObject"]["name"] == name and e["reason"] == "InvalidSpec"
                       and where in e["message"] for e in events), f"no InvalidSpec Event for {name}"
        s.finish()
        assert not dead(op)
    s.cleanup()
    record("8-bad-input", {
        "smi_objects": s.corpus.smi_count(), "fault": f"{len(bad)} invalid SMI objects (5 new, "
        f"{len(bad) - 5} valid ones turned invalid) mixed with {len(good)} good changes",
        "converge_after_recovery_s": round(converged - fault_at, 1),
        "operator_writes_from_fault_to_converged": writes})


# ---- 5. watches drop and resume from a compacted resourceVersion ("410 Gone") ----------


class _Restarts(logging.Handler):
    """Counts kopf's "Restarting the watch-stream" (its reaction to 410 Gone)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Restarting the watch-stream" in record.getMessage():
            self.count += 1


COMPACTING = {"--watch-cache": "false", "--etcd-compaction-interval": "5s"}


def compacting(plane: Plane) -> None:
    """Run the dedicated apiserver without a watch cache and compacting every 5 s.

    A resumed watch then meets a compacted resourceVersion and gets 410 Gone (the
    watch cache would otherwise serve it). These scenarios are last in the module.
    """
    argv = plane.argv(lib.APISERVER)
    if not all(f"{k}={v}" in argv for k, v in COMPACTING.items()):
        plane.restart(lib.APISERVER, signal.SIGKILL, flags=COMPACTING)


@contextmanager
def behind_proxy(plane: Plane, s: Scene, tmp_path: Path) -> Iterator[tuple[Proxy, harness.RunningOperator]]:
    """The operator connected through a :class:`Proxy`, converged on the corpus."""
    proxy = Proxy(("127.0.0.1", int(plane.env.server.rsplit(":", 1)[1])))
    try:
        with operator(s, kubeconfig_via(plane.env.kubeconfig, proxy.port, tmp_path / "via-proxy")) as op:
            checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial", alive=lambda: dead(op))
            yield proxy, op
    finally:
        proxy.close()


def gap(s: Scene, proxy: Proxy, changes: list[Change]) -> tuple[float, float, int]:
    """Cut and refuse the operator's connections, write *changes*, wait until etcd has
    compacted past what the operator saw, reconnect. Returns (cut at, reconnected at,
    connections cut)."""
    ts = checks.resource_of(SPLIT_API, "TrafficSplit")
    ns0 = s.corpus.namespaces[0]
    seen_rv = s.kube.request("GET", ts.path(ns0), query=[("limit", "1")])[1]["metadata"]["resourceVersion"]
    fault_at = time.monotonic()
    proxy.blocked.set()
    dropped = proxy.cut()
    for c in changes:
        checks.write(s.kube, c)

    def compacted() -> bool:
        try:
            s.kube.request("GET", ts.path(ns0), query=[
                ("resourceVersion", seen_rv), ("resourceVersionMatch", "Exact"), ("limit", "1")])
        except ApiError as exc:
            return exc.status == 410
        return False

    harness.wait_for(compacted, 90, f"resourceVersion {seen_rv} compacted (410 Gone)", interval=1.0)
    proxy.blocked.clear()
    return fault_at, time.monotonic(), dropped


def test_watch_drop_and_410_gone_misses_no_change(plane: Plane, tmp_path: Path) -> None:
    compacting(plane)
    s = scene(plane, "s5")
    watching = logging.getLogger("kopf._cogs.clients.watching")
    restarts = _Restarts()
    old_level = watching.level
    watching.addHandler(restarts)
    watching.setLevel(logging.DEBUG)
    try:
        with behind_proxy(plane, s, tmp_path) as (proxy, op):
            before = counters(op)
            restarts.count = 0
            # Updates and creations only; deletions in a gap are the next test.
            changes = list(burst(s.corpus, 55, size=120, deletions=False))
            fault_at, recovered, dropped = gap(s, proxy, changes)
            converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, "after the watches resumed",
                                              alive=lambda: dead(op))
            writes = since(before, op)
            s.finish()
            assert not dead(op)
    finally:
        watching.removeHandler(restarts)
        watching.setLevel(old_level)
    s.cleanup()
    record("5-watch-410", {
        "smi_objects": s.corpus.smi_count(), "burst_changes": len(changes),
        "fault": "every operator connection cut and refused while the changes were made; resumed "
                 "after etcd compacted past the operator's resourceVersions (410 Gone)",
        "connections_cut": dropped, "kopf_watch_restarts_after_410": restarts.count,
        "disconnected_s": round(recovered - fault_at, 1),
        "converge_after_recovery_s": round(converged - recovered, 1),
        "operator_writes_from_fault_to_converged": writes})


def test_deletions_during_a_watch_gap_are_not_missed(plane: Plane, tmp_path: Path) -> None:
    compacting(plane)
    s = scene(plane, "s5b")
    victims = [(ns, app) for ns in s.corpus.namespaces for app in s.corpus.app_names(ns)[:2]]
    with behind_proxy(plane, s, tmp_path) as (proxy, op):
        deletions = []
        for ns, app in victims:
            key = ("TrafficSplit", ns, f"{app}-split")
            s.corpus.remove(key)
            deletions.append(Change(key, None))
        before = counters(op)
        fault_at, recovered, dropped = gap(s, proxy, deletions)
        converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, "after the watches resumed",
                                          alive=lambda: dead(op))
        writes = since(before, op)
        # The route groups the deleted TrafficSplits used change afterwards: an
        # operator that still believes in those splits recomputes them now.
        for ns, app in victims:
            checks.write(s.kube, Change(("HTTPRouteGroup", ns, f"{app}-canary"),
                                        s.corpus.put(canary_group(app, ns, "/after"))))
        checks.wait_converged(s.kube, s.corpus, 90, "after the deleted splits' routes changed",
                              alive=lambda: dead(op))
        # An operator that still believes in the deleted splits writes their outputs
        # again, with ownerReferences to uids that are gone; the garbage collector
        # deletes them, the operator writes them again: orphans come and go, writes
        # never stop. Watch for a while instead of trusting one look.
        orphans: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            quiet_from = op.writes
            orphans |= {p for p in checks.problems(s.kube, s.corpus, limit=0) if p.startswith("orphan")}
            time.sleep(1.0)
        assert not orphans, f"outputs of deleted TrafficSplits keep coming back: {sorted(orphans)}"
        assert op.writes == quiet_from, "the operator keeps writing with nothing changing"
        s.finish()
    s.cleanup()
    record("5b-watch-gap-deletions", {
        "smi_objects": s.corpus.smi_count(), "deleted_in_gap": len(deletions),
        "fault": "every operator connection cut and refused while TrafficSplits were deleted; "
                 "resumed after etcd compacted past the watches (410 Gone)",
        "connections_cut": dropped, "disconnected_s": round(recovered - fault_at, 1),
        "converge_after_recovery_s": round(converged - recovered, 1),
        "operator_writes_from_fault_to_converged": writes})
