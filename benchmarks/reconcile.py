"""Operator reconcile cost at scale (issue 6 sections 2-4), against a private envtest.

Run ``python benchmarks/reconcile.py [--rounds 5] [--policies 1000] [--sizes 1000,10000]``.
Every figure is a ratio to a baseline measured in the same run, rounds
interleaved (operator, baseline, operator, baseline ...), reported as the
median and the spread (min-max). The operator always runs as a child process
(``smi2mesh run --mesh istio -A``), so its memory and CPU are its own.

Section 2, reconcile efficiency. Context (Services, Deployments) and route
groups of ``--policies`` applications are created first; the clock starts
when the benchmark starts creating the TrafficSplits and TrafficTargets
(``--policies`` of each, from ``benchmarks/corpus.py``) and stops when a
watch has seen every VirtualService and AuthorizationPolicy ``translate()``
says should exist. Baseline: the same client server-side-applies those
precomputed mesh objects (with the labels and ownerReferences the operator
adds) into a twin set of namespaces, clocked the same way. Both sides write
with ``--threads`` threads. Goal: operator within 1.3x. The operator side
also pays for the client's own SMI writes, which the baseline never makes;
``--catchup`` adds a side doing exactly the baseline's work: the SMI objects
are created with no operator running, then the operator is launched, and the
clock runs from its launch (Python start, imports, listing, translation)
until every mesh object is seen.

Section 3, restart with nothing changed. With N SMI objects and their
outputs in place, the operator is restarted; the figure is the time from
launching the process until /readyz (ready = the first reconcile pass over
every namespace), and its writes (the ``writes`` of its "reconciled" log
lines, plus resourceVersions compared before and after). Baseline: a
process that LISTs the same kinds with the same client. Goals: zero writes,
time within 1.5x.

Section 4, memory: VmRSS of the operator process once ready (and settled)
at 0 objects and at each size. Goals: idle < 150 MiB, slope < 10 MiB per
1,000 SMI objects. ``--tracemalloc`` adds a run of the operator in-process
under tracemalloc at the largest size, listing where its memory is
allocated (file:line).

Prints the tables and writes ``benchmarks/results/reconcile.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import kubebench as kb
from benchmarks.corpus import corpus, smi_count
from smi2mesh.inputs import parse_documents
from smi2mesh.operator.config import MESH_LABEL
from smi2mesh.operator.kube import Kube
from smi2mesh.translate import translate
from smi2mesh.translators.base import MANAGER, SOURCE_ANNOTATION

Doc = dict[str, Any]
USER = "bench-user"
SETTLE = 8.0  # seconds after ready before RSS is read (see restart_rounds)
POLICY = ("TrafficSplit", "TrafficTarget")
OUTPUT_PATHS = ("/apis/networking.istio.io/v1/virtualservices",
                "/apis/security.istio.io/v1/authorizationpolicies")
# What the operator lists at start-up, and so what the bare-LIST baseline lists.
LIST_KINDS = [
    ("split.smi-spec.io/v1alpha4", "TrafficSplit"), ("access.smi-spec.io/v1alpha3", "TrafficTarget"),
    ("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup"), ("specs.smi-spec.io/v1alpha4", "TCPRoute"),
    ("specs.smi-spec.io/v1alpha4", "UDPRoute"), ("v1", "Service"), ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("v1", "Pod"), ("v1", "Namespace"),
    ("networking.istio.io/v1", "VirtualService"), ("security.istio.io/v1", "AuthorizationPolicy"),
]
BARE_LIST = """
import sys, time
sys.path.insert(0, {root!r})
from smi2mesh.operator.kube import Kube
kube = Kube.from_environment()
n = 0
for api_version, kind in {kinds!r}:
    res = kube.served(api_version)[kind]
    n += len(kube.list(res))
print(n)
"""


# ---- corpus in namespaces of our choosing ---------------------------------------------------------


def relabel(docs: Iterable[Doc], prefix: str) -> list[Doc]:
    """A copy of *docs* with every ``team-NNN`` namespace renamed ``<prefix>team-NNN``."""
    out = []
    for original in docs:
        d = copy.deepcopy(original)
        d["metadata"]["namespace"] = prefix + d["metadata"]["namespace"]
        if d["kind"] == "TrafficTarget":
            spec = d["spec"]
            spec["destination"]["namespace"] = prefix + spec["destination"]["namespace"]
            for s in spec["sources"]:
                s["namespace"] = prefix + s["namespace"]
        out.append(d)
    return kb.headless(out)


def namespaces_of(docs: Iterable[Doc]) -> list[str]:
    return sorted({d["metadata"]["namespace"] for d in docs})


def expected_outputs(docs: list[Doc], uids: dict[tuple[str, str, str], str]) -> list[Doc]:
    """translate()'s objects, with the mesh label and ownerReferences the operator adds."""
    result = translate(parse_documents((f"bench:{i}", d) for i, d in enumerate(docs)), "istio")
    out = []
    for obj in result.objects:
        obj["metadata"]["labels"][MESH_LABEL] = "istio"
        refs = []
        for i, src in enumerate(s for s in obj["metadata"]["annotations"][SOURCE_ANNOTATION].split(",") if s):
            kind, ns, name = src.split("/")
            api = "split.smi-spec.io/v1alpha4" if kind == "TrafficSplit" else "access.smi-spec.io/v1alpha3"
            refs.append({"apiVersion": api, "kind": kind, "name": name, "uid": uids[(kind, ns, name)],
                         "controller": i == 0})
        obj["metadata"]["ownerReferences"] = refs
        out.append(obj)
    return out


def key_of(obj: Doc) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])


class Seen:
    """Watches the output kinds cluster-wide and notes when every expected object has appeared."""

    def __init__(self, kubeconfig: Path, expected: set[tuple[str, str, str]]) -> None:
        self.expected = set(expected)
        self.missing = set(expected)
        self.done = threading.Event()
        self.at = 0.0
        self.lock = threading.Lock()
        self.watches = [kb.Watch(kubeconfig, p, self.on_event).start() for p in OUTPUT_PATHS]

    def on_event(self, type_: str, body: Doc, now: float) -> None:
        if type_ not in ("ADDED", "MODIFIED"):
            return
        with self.lock:
            self.missing.discard(key_of(body))
            if not self.missing and not self.done.is_set():
                self.at = now
                self.done.set()

    def wait(self, timeout: float) -> bool:
        ok = self.done.wait(timeout)
        for w in self.watches:
            w.stop()
        return ok


# ---- section 2 ---------------------------------------------------------------------------------


def setup_side(kube: Kube, res: kb.Resources, docs: list[Doc], threads: int,
               with_policies: bool) -> dict[tuple[str, str, str], str]:
    """Namespaces, context and routes (and the policies when *with_policies*); returns SMI uids."""
    kb.ensure_namespaces(kube, namespaces_of(docs))
    first = [d for d in docs if d["kind"] not in POLICY]
    bodies = kb.apply_all(kube, res, first, USER, threads)
    if with_policies:
        policies = [d for d in docs if d["kind"] in POLICY]
        bodies += kb.apply_all(kube, res, policies, USER, threads)
    return {key_of(b): b["metadata"]["uid"] for b in bodies if "uid" in b.get("metadata", {})}


def efficiency_round(env_kubeconfig: Path, kube: Kube, res: kb.Resources, base: list[Doc], r: int,
                     threads: int, log_dir: Path, modes: list[str], catchup: bool = False) -> dict[str, Any]:
    """One interleaved round of section 2: each operator side, then the bare side."""
    out: dict[str, Any] = {"round": r}
    for mode in modes:
        if mode == "bare":
            continue
        docs = relabel(base, f"{mode[0]}{r}-")
        setup_side(kube, res, docs, threads, with_policies=False)
        # Scoped to this round's namespaces: earlier rounds' objects stay in the cluster (deleting
        # namespaces of thousands of objects kept the API server busy for minutes into the next round).
        scope = [a for ns in namespaces_of(docs) for a in ("--namespace", ns)]
        op = kb.OperatorProcess(env_kubeconfig, ["--mesh", "istio", *scope], fixed=mode == "fixed",
                                log_path=log_dir / f"efficiency-{mode}-{r}.log").start()
        try:
            op.wait_ready()
            # Expected names only depend on the SMI objects, not on uids.
            expected = {key_of(o) for o in expected_outputs(docs, _AnyUid())}
            seen = Seen(env_kubeconfig, expected)
            t0 = time.perf_counter()
            kb.apply_all(kube, res, [d for d in docs if d["kind"] in POLICY], USER, threads)
            created = time.perf_counter()
            ok = seen.wait(900)
            out[f"{mode}_s"] = (seen.at if ok else time.perf_counter()) - t0
            out[f"{mode}_create_s"] = created - t0
            out[f"{mode}_complete"] = ok
            out["expected_objects"] = len(expected)
            op.wait_quiet(2.0, 300)  # let the status writes finish, so they are counted
            lines = [d for _, d in op.reconciled() if d.get("namespace", "").startswith(f"{mode[0]}{r}-")]
            out[f"{mode}_writes"] = {k: sum(int(d.get(k, 0)) for d in lines)
                                     for k in ("creates", "applies", "deletes", "statuses")}
            passes = [d for d in lines if d.get("msg") == "reconciled"]
            out[f"{mode}_reconciles"] = len(passes)
            out[f"{mode}_reconcile_ms_max"] = max((float(d["duration_ms"]) for d in passes), default=0.0)
        finally:
            op.stop()
    if catchup:
        # The same work as the bare side: the SMI objects exist, the operator starts, and the
        # clock runs from its launch (imports and listing included) to the last mesh object.
        docs_c = relabel(base, f"c{r}-")
        setup_side(kube, res, docs_c, threads, with_policies=True)
        seen = Seen(env_kubeconfig, {key_of(o) for o in expected_outputs(docs_c, _AnyUid())})
        scope = [a for ns in namespaces_of(docs_c) for a in ("--namespace", ns)]
        t0 = time.perf_counter()
        op = kb.OperatorProcess(env_kubeconfig, ["--mesh", "istio", *scope],
                                log_path=log_dir / f"efficiency-catchup-{r}.log").start()
        try:
            ok = seen.wait(900)
            out["catchup_s"] = (seen.at if ok else time.perf_counter()) - t0
            out["catchup_complete"] = ok
            op.wait_quiet(2.0, 300)
            lines = [d for _, d in op.reconciled() if d.get("namespace", "").startswith(f"c{r}-")]
            out["catchup_writes"] = {k: sum(int(d.get(k, 0)) for d in lines)
                                     for k in ("creates", "applies", "deletes", "statuses")}
        finally:
            op.stop()
    # -- bare client
    docs_b = relabel(base, f"b{r}-")
    uids = setup_side(kube, res, docs_b, threads, with_policies=True)
    objs = expected_outputs(docs_b, uids)
    seen = Seen(env_kubeconfig, {key_of(o) for o in objs})
    t0 = time.perf_counter()
    kb.apply_all(kube, res, objs, MANAGER, threads)
    ok = seen.wait(900)
    out["bare_s"] = (seen.at if ok else time.perf_counter()) - t0
    out["bare_complete"] = ok
    for mode in [*modes[:-1], *(["catchup"] if catchup else [])]:
        out[f"{mode}_ratio"] = out[f"{mode}_s"] / out["bare_s"]
    return out


class _AnyUid(dict[tuple[str, str, str], str]):
    def __missing__(self, key: tuple[str, str, str]) -> str:
        return "-"


# ---- sections 3 and 4 ------------------------------------------------------------------------------


def resource_versions(kube: Kube, res: kb.Resources) -> dict[tuple[str, str, str], str]:
    out = {}
    for api_version, kind in LIST_KINDS[:5] + LIST_KINDS[-2:]:
        for b in kube.list(res(api_version, kind)):
            out[(kind, b["metadata"]["namespace"], b["metadata"]["name"])] = b["metadata"]["resourceVersion"]
    return out


def settle(op: kb.OperatorProcess, quiet: float = 3.0, timeout: float = 900.0) -> None:
    """Wait until the operator has logged no write for *quiet* seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        busy = [t for t, d in op.reconciled() if int(d.get("writes", 0))]
        last = max(busy, default=op.launched)
        if time.perf_counter() - last > quiet:
            return
        time.sleep(0.5)


def restart_rounds(kubeconfig: Path, kube: Kube, res: kb.Resources, rounds: int, log_dir: Path,
                   label: str, modes: list[str]) -> list[dict[str, Any]]:
    """Section 3 (and 4) at the current cluster state: restart each operator vs a bare LIST, interleaved."""
    out = []
    script = BARE_LIST.format(root=str(kb.ROOT), kinds=LIST_KINDS)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    for r in range(rounds):
        row: dict[str, Any] = {"round": r + 1}
        for mode in modes[:-1]:
            before = resource_versions(kube, res)
            op = kb.OperatorProcess(kubeconfig, ["--mesh", "istio", "-A"], fixed=mode == "fixed",
                                    log_path=log_dir / f"restart-{label}-{mode}-{r}.log").start()
            try:
                ready = op.wait_ready(1800)
                # Late watch events could still cause passes (their writes count too), and kopf
                # keeps a worker per object, holding its last raw body, until it idles out
                # (settings.queueing.idle_timeout, 0.5 s here): RSS is read once those have gone.
                time.sleep(SETTLE)
                rss = op.rss_mib()
                lines = [d for _, d in op.reconciled()]
            finally:
                op.stop()
            after = resource_versions(kube, res)
            changed = (sum(1 for k, v in after.items() if before.get(k) != v)
                       + len(before.keys() - after.keys()))
            row.update({f"{mode}_ready_s": ready, f"{mode}_rss_mib": rss,
                        f"{mode}_logged_writes": sum(int(d.get("writes", 0)) for d in lines),
                        f"{mode}_logged_statuses": sum(int(d.get("statuses", 0)) for d in lines),
                        f"{mode}_changed_resource_versions": changed,
                        f"{mode}_reconciles": sum(d.get("msg") == "reconciled" for d in lines)})
        t = time.perf_counter()
        listed = subprocess.run([kb.VENV_PY, "-c", script], env=env, capture_output=True, text=True,
                                check=True)
        bare = time.perf_counter() - t
        # The fixed part of a restart: starting Python and importing the operator (kopf, pydantic, ...).
        t = time.perf_counter()
        subprocess.run([kb.VENV_PY, "-c", "import smi2mesh.cli, smi2mesh.operator.runtime"], check=True,
                       cwd=kb.ROOT)
        row.update({"bare_list_s": bare, "import_s": time.perf_counter() - t,
                    "listed_objects": int(listed.stdout.strip() or 0)})
        text = []
        for mode in modes[:-1]:
            row[f"{mode}_ratio"] = row[f"{mode}_ready_s"] / bare
            text.append(f"{mode} ready {row[f'{mode}_ready_s']:.2f}s ({row[f'{mode}_ratio']:.2f}x), "
                        f"writes {row[f'{mode}_logged_writes']}, changed RVs "
                        f"{row[f'{mode}_changed_resource_versions']}, RSS {row[f'{mode}_rss_mib']:.0f} MiB")
        print(f"  restart {label} round {r + 1}: bare LIST {bare:.2f}s, imports {row['import_s']:.2f}s; "
              + "; ".join(text), flush=True)
        out.append(row)
    return out


def populate(kube: Kube, res: kb.Resources, kubeconfig: Path, docs: list[Doc], threads: int,
             log_dir: Path, label: str, fixed: bool) -> float:
    """Create *docs* and let an operator write every output and status; returns seconds taken."""
    t = time.perf_counter()
    setup_side(kube, res, docs, threads, with_policies=True)
    # Untimed set-up: the fixed operator (when measured at all) writes the same objects, faster.
    op = kb.OperatorProcess(kubeconfig, ["--mesh", "istio", "-A"], fixed=fixed,
                            log_path=log_dir / f"populate-{label}.log").start()
    try:
        op.wait_ready(1800)
        settle(op)
    finally:
        op.stop()
    return time.perf_counter() - t


def idle_memory(kubeconfig: Path, rounds: int, log_dir: Path) -> list[float]:
    out = []
    for r in range(rounds):
        op = kb.OperatorProcess(kubeconfig, ["--mesh", "istio", "-A"],
                                log_path=log_dir / f"idle-{r}.log").start()
        try:
            op.wait_ready()
            time.sleep(SETTLE)
            out.append(op.rss_mib())
        finally:
            op.stop()
    return out


TRACEMALLOC_CHILD = """
import sys, time, tracemalloc, linecache
sys.path.insert(0, {root!r})
import kopf, kubernetes, aiohttp
from smi2mesh.operator import runtime
from smi2mesh.operator.config import OperatorConfig
from tests.operator.harness import RunningOperator
tracemalloc.start(int(sys.argv[2]))  # after the imports: only what the running operator holds
if sys.argv[3] == "fixed":  # same memory, a much faster first pass under tracemalloc's overhead
    from benchmarks import fixes
    fixes.apply()
base = tracemalloc.take_snapshot()
op = RunningOperator(OperatorConfig(mesh="istio"), sys.argv[1]).start(timeout=1800)
time.sleep(8)
snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
total = sum(s.size for s in snap.statistics("filename"))
print(f"TOTAL traced {{total / 2**20:.1f}} MiB; store objects "
      f"{{sum(len(v) for by_ns in op.operator.store.objects.values() for v in by_ns.values())}}, "
      f"parser cache entries {{len(op.operator.parser._cache)}}")
for kind in ("filename", "lineno"):
    print(f"-- top by {{kind}} (growth since start-up)")
    for s in snap.compare_to(base, kind)[:25]:
        print(f"{{s.size_diff / 2**20:8.2f}} MiB {{s.count_diff:9}} blocks  {{s.traceback[0]}}")
print("-- top tracebacks")
for s in snap.statistics("traceback")[:8]:
    print(f"{{s.size / 2**20:8.2f}} MiB {{s.count}} blocks")
    for line in s.traceback.format()[-12:]:
        print("    " + line)
op.stop()
"""


def tracemalloc_run(kubeconfig: Path, fixed: bool, depth: int = 6) -> str:
    script = TRACEMALLOC_CHILD.format(root=str(kb.ROOT))
    proc = subprocess.run([kb.VENV_PY, "-c", script, str(kubeconfig), str(depth), "fixed" if fixed else ""],
                          capture_output=True,
                          text=True, check=False, cwd=kb.ROOT, timeout=3600)
    return proc.stdout + (proc.stderr[-3000:] if proc.returncode else "")


# ---- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--policies", type=int, default=1000,
                        help="section 2: TrafficSplits and TrafficTargets (each)")
    parser.add_argument("--sizes", default="1000,10000",
                        help="sections 3-4: SMI objects (all kinds) in the cluster, ascending")
    parser.add_argument("--threads", type=int, default=4, help="writer threads on both sides")
    parser.add_argument("--skip", default="", help="sections to skip, e.g. 2 or 3")
    parser.add_argument("--tracemalloc", action="store_true", help="section 4: where memory goes")
    parser.add_argument("--catchup", action="store_true",
                        help="section 2: also time an operator started after the SMI objects exist")
    parser.add_argument("--output", default="reconcile", help="results file benchmarks/results/<output>.json")
    parser.add_argument("--with-fixes", action="store_true",
                        help="also measure an operator with benchmarks/fixes.py applied (side 'fixed')")
    args = parser.parse_args()
    modes = ["operator", *(["fixed"] if args.with_fixes else []), "bare"]
    log_dir = Path(tempfile.mkdtemp(prefix="smi2mesh-bench-reconcile-"))
    print(f"operator logs in {log_dir}")
    report: dict[str, Any] = {"rounds": args.rounds, "threads": args.threads, "modes": modes}
    if "2" not in args.skip:
        with kb.envtest_cluster() as env:
            kube = kb.kube_for(env.kubeconfig, pool=args.threads + 2)
            res = kb.Resources(kube)
            base = corpus(args.policies, args.policies)
            report["efficiency"] = {"policies": args.policies, "smi_objects": smi_count(base), "rounds": []}
            for r in range(args.rounds):
                row = efficiency_round(env.kubeconfig, kube, res, base, r + 1, args.threads, log_dir, modes,
                                       args.catchup)
                print(f"section 2 round {r + 1}: bare {row['bare_s']:.2f}s; " + "; ".join(
                    f"{m} {row[f'{m}_s']:.2f}s ({row[f'{m}_ratio']:.2f}x; creating the SMI objects "
                    f"{row[f'{m}_create_s']:.2f}s), writes {row[f'{m}_writes']}" for m in modes[:-1])
                    + (f"; catch-up {row['catchup_s']:.2f}s ({row['catchup_ratio']:.2f}x), writes "
                       f"{row['catchup_writes']}" if args.catchup else ""), flush=True)
                report["efficiency"]["rounds"].append(row)
    # Sections 3-4 in a cluster of their own: the -A operator must see exactly the N objects.
    with kb.envtest_cluster() as env:
        kube = kb.kube_for(env.kubeconfig, pool=args.threads + 2)
        res = kb.Resources(kube)
        idle = idle_memory(env.kubeconfig, 3, log_dir)
        report["idle_rss_mib"] = idle
        print(f"idle operator RSS: {kb.median_spread(idle, '{:.1f}')} MiB")
        if "3" not in args.skip:
            report["restart"] = []
            have = 0
            for i, size in enumerate(int(s) for s in args.sizes.split(",")):
                # corpus(k, k) holds about 3.83k SMI objects; add a batch in new namespaces to reach size.
                k = max(1, round((size - have) / 3.833))
                batch = relabel(corpus(k, k, seed=42 + i), f"s{i}-")
                took = populate(kube, res, env.kubeconfig, batch, args.threads, log_dir, str(size),
                                args.with_fixes)
                have += smi_count(batch)
                print(f"section 3: {have} SMI objects in place ({took:.0f}s to create and reconcile)",
                      flush=True)
                rows = restart_rounds(env.kubeconfig, kube, res, args.rounds, log_dir, str(size), modes)
                report["restart"].append({"smi_objects": have, "populate_s": took, "rounds": rows})
            if args.tracemalloc:
                text = tracemalloc_run(env.kubeconfig, args.with_fixes)
                report["tracemalloc"] = text
                print(text)
    summarize(report)
    print(f"wrote {kb.write_results(args.output, report)}")


def summarize(report: dict[str, Any]) -> None:
    modes = report["modes"][:-1]
    print(f"\n{report['rounds']} interleaved rounds; median (min-max)")
    eff = report.get("efficiency")
    if eff and eff["rounds"]:
        rows = eff["rounds"]
        bare = [x["bare_s"] for x in rows]
        print(f"section 2: {eff['policies']} TrafficSplits + {eff['policies']} TrafficTargets "
              f"({eff['smi_objects']} SMI objects with routes), {rows[0]['expected_objects']} mesh objects")
        print(f"  {'bare SSA of the mesh objects':44} {kb.median_spread(bare)} s")
        eff["summary"] = {"bare_s": statistics.median(bare)}
        for m in modes:
            op, ratio, created = ([x[f"{m}_{k}"] for x in rows] for k in ("s", "ratio", "create_s"))
            print(f"  {m + ' (create SMI -> all mesh objects)':44} {kb.median_spread(op)} s "
                  f"[the client creating the SMI objects: {kb.median_spread(created)} s]")
            print(f"  {m + '/bare':44} {kb.median_spread(ratio)}x (goal <= 1.3x); "
                  f"writes {rows[0][f'{m}_writes']}")
            eff["summary"][m] = {"s": statistics.median(op), "ratio": statistics.median(ratio)}
        if "catchup_s" in rows[0]:
            op, ratio = ([x[f"catchup_{k}"] for x in rows] for k in ("s", "ratio"))
            print(f"  {'operator started after the SMI objects exist':44} {kb.median_spread(op)} s")
            print(f"  {'catch-up/bare':44} {kb.median_spread(ratio)}x (goal <= 1.3x); "
                  f"writes {rows[0]['catchup_writes']}")
            eff["summary"]["catchup"] = {"s": statistics.median(op), "ratio": statistics.median(ratio)}
    idle = report.get("idle_rss_mib") or []
    points: dict[str, list[tuple[int, float]]] = {m: [(0, statistics.median(idle))] if idle else []
                                                   for m in modes}
    for size in report.get("restart") or []:
        rows = size["rounds"]
        bare, imports = ([x[k] for x in rows] for k in ("bare_list_s", "import_s"))
        print(f"section 3 at {size['smi_objects']} SMI objects ({rows[0]['listed_objects']} objects listed): "
              f"bare LIST process {kb.median_spread(bare)} s; starting Python and importing the operator "
              f"alone {kb.median_spread(imports)} s")
        for m in modes:
            ready, ratio, writes, changed, rss = ([x[f"{m}_{k}"] for x in rows] for k in (
                "ready_s", "ratio", "logged_writes", "changed_resource_versions", "rss_mib"))
            points[m].append((size["smi_objects"], statistics.median(rss)))
            print(f"  {m}: restart to ready {kb.median_spread(ready)} s, {kb.median_spread(ratio)}x "
                  f"(goal <= 1.5x); writes {kb.median_spread(writes, '{:.0f}')}, changed resourceVersions "
                  f"{kb.median_spread(changed, '{:.0f}')} (goal 0); "
                  f"RSS {kb.median_spread(rss, '{:.1f}')} MiB")
    report["memory"] = {}
    for m in modes:
        pts = points[m]
        if len(pts) > 1:
            slope = (pts[-1][1] - pts[0][1]) / (pts[-1][0] / 1000)
            print(f"section 4 ({m}): VmRSS once ready: "
                  + ", ".join(f"{n} SMI objects {v:.1f} MiB" for n, v in pts)
                  + f"; idle {pts[0][1]:.1f} MiB (goal < 150); slope {slope:.1f} MiB per 1,000 SMI objects "
                  "(goal < 10)")
            report["memory"][m] = {"points": pts, "slope_mib_per_1000": slope}


if __name__ == "__main__":
    main()
