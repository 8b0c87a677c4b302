"""Operator latency: from an SMI change to the mesh object written (issue 4, issue 6 section 5).

Run ``python benchmarks/operator_latency.py [--rounds 5] [--rates 10,100]``.
It starts a private envtest API server with the SMI and Istio CRDs and runs
the real operator as a child process (``smi2mesh run --mesh istio
--namespace lat-op``). A writer changes TrafficSplit weights at a fixed,
open-loop rate, cycling over ``--splits`` splits; a raw watch on
VirtualServices timestamps the event carrying each change's expected
content (computed with ``translate()``). Latency = watch event received
minus the moment the SMI write was sent.

Baseline, interleaved with every operator run (operator, bare, operator,
bare ...): a bare client server-side-applies the same precomputed
VirtualServices at the same rate into another namespace, measured by the
same watch. So the baseline is one API write plus watch delivery; the
operator adds the SMI write's watch delivery, the debounce, a reconcile and
its own write.

Goals: p99 < 100 ms at 10 changes/s, and operator/bare within 1.5x. Prints
a table and writes ``benchmarks/results/operator_latency.json``. Timing
never fails the script.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import kubebench as kb
from benchmarks.corpus import corpus
from smi2mesh.inputs import parse_documents
from smi2mesh.operator.config import MESH_LABEL
from smi2mesh.operator.kube import Kube
from smi2mesh.translate import translate
from smi2mesh.translators.base import MANAGER

OP_NS = "lat-op"
FIX_NS = "lat-fix"
BARE_NS = "lat-bare"
USER = "bench-user"  # the field manager of the "user" changing SMI objects
VS_PATH = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"

Doc = dict[str, Any]


def split_docs(n: int, ns: str) -> tuple[list[Doc], list[Doc]]:
    """(context docs, TrafficSplits) of *n* applications in namespace *ns*."""
    docs = kb.headless(corpus(n, 0))
    for d in docs:
        d["metadata"]["namespace"] = ns
    splits = [d for d in docs if d["kind"] == "TrafficSplit"]
    return [d for d in docs if d["kind"] != "TrafficSplit"], splits


def with_weight(split: Doc, w1: int) -> Doc:
    """The split with backend weights (w1, 100 - w1): percentages are then exactly w1/100-w1."""
    out = copy.deepcopy(split)
    out["spec"]["backends"][0]["weight"] = w1
    out["spec"]["backends"][1]["weight"] = 100 - w1
    return out


@dataclass
class Namespace:
    """One side of the benchmark: its splits, their context, and the watch bookkeeping."""

    name: str
    context: list[Doc]
    splits: list[Doc]
    uids: dict[str, str] = field(default_factory=dict)
    seq: int = 0  # changes so far; change s sets split s % n to weight 1 + (s // n) % 99
    # Changes sent but not yet seen, per VirtualService name: sequence -> (expected spec, time sent).
    pending: dict[str, dict[int, tuple[str, float]]] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    superseded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def context_for(self, split: Doc) -> list[Doc]:
        app = split["spec"]["service"]
        return [d for d in self.context if d["metadata"]["name"] in (app, f"{app}-canary")]

    def next_change(self) -> tuple[Doc, int, int]:
        n = len(self.splits)
        split = self.splits[self.seq % n]
        w1 = 1 + (self.seq // n) % 99
        self.seq += 1
        return split, w1, self.seq

    def sent(self, name: str, seq: int, spec: str, at: float) -> None:
        with self.lock:
            self.pending.setdefault(name, {})[seq] = (spec, at)

    def on_event(self, type_: str, body: Doc, now: float) -> None:
        """Resolve the change this content belongs to, and any earlier change it superseded.

        The operator coalesces: when a split changes twice within one
        reconcile, only the second content is ever written. The first change
        is then done when the second is visible, so it gets that latency
        (counted as superseded), rather than being dropped from the samples.
        """
        if type_ not in ("ADDED", "MODIFIED"):
            return
        name = body["metadata"]["name"]
        spec = json.dumps(body.get("spec"), sort_keys=True)
        with self.lock:
            waiting = self.pending.get(name, {})
            hits = [seq for seq, (want, _) in waiting.items() if want == spec]
            if not hits:
                return
            last = max(hits)
            for seq in [s for s in waiting if s <= last]:
                _, at = waiting.pop(seq)
                self.samples.append(now - at)
                self.superseded += seq != last

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.pending.values())


@cache
def expected_vs(ns: str, split_json: str, context_json: str) -> Doc:
    """The VirtualService translate() makes of one split (what the operator must write)."""
    docs = [*json.loads(context_json), json.loads(split_json)]
    result = translate(parse_documents((f"bench:{i}", d) for i, d in enumerate(docs)), "istio")
    (vs,) = [o for o in result.objects if o["kind"] == "VirtualService"]
    return vs


def vs_for(side: Namespace, split: Doc, w1: int) -> Doc:
    changed = with_weight(split, w1)
    vs = copy.deepcopy(expected_vs(side.name, json.dumps(changed, sort_keys=True),
                                   json.dumps(side.context_for(split), sort_keys=True)))
    # What the operator adds to translate()'s output, so the bare write has the same size.
    vs["metadata"]["labels"][MESH_LABEL] = "istio"
    vs["metadata"]["ownerReferences"] = [{
        "apiVersion": split["apiVersion"], "kind": "TrafficSplit", "name": split["metadata"]["name"],
        "uid": side.uids[split["metadata"]["name"]], "controller": True}]
    return vs


def run_once(side: Namespace, kube: Kube, resources: kb.Resources, rate: float, seconds: float,
             operator: bool, threads: int) -> dict[str, Any]:
    """One timed run: *rate* changes/s for *seconds*, open loop; returns its samples and counts."""
    count = int(rate * seconds)
    # Bodies are built before the clock starts, so the writer's own CPU is not in the samples.
    plan: list[tuple[str, int, str, Doc]] = []
    for _ in range(count):
        split, w1, seq = side.next_change()
        vs = vs_for(side, split, w1)
        plan.append((vs["metadata"]["name"], seq, json.dumps(vs["spec"], sort_keys=True),
                     with_weight(split, w1) if operator else vs))
    with side.lock:
        side.samples = []
        side.superseded = 0
        side.pending.clear()
    lags: list[float] = []
    errors: list[str] = []

    def send(name: str, seq: int, spec: str, body: Doc) -> None:
        res = resources(body["apiVersion"], body["kind"])
        side.sent(name, seq, spec, time.perf_counter())
        try:
            kb.apply(kube, res, body, USER if operator else MANAGER)
        except Exception as exc:  # counted, never fatal: a benchmark reports
            errors.append(str(exc))

    start = time.perf_counter() + 0.05
    with ThreadPoolExecutor(threads) as pool:
        for i, item in enumerate(plan):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            lags.append(time.perf_counter() - due)
            pool.submit(send, *item)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and side.outstanding():
        time.sleep(0.05)
    with side.lock:
        samples = list(side.samples)
        missed = sum(len(v) for v in side.pending.values())
        superseded = side.superseded
        side.pending.clear()
    return {"changes": count, "samples_ms": [s * 1000 for s in samples], "missed": missed,
            "superseded": superseded, "errors": len(errors), "first_error": errors[0] if errors else "",
            "max_sched_lag_ms": max(lags) * 1000 if lags else 0.0}


def setup(kube: Kube, resources: kb.Resources, n: int, names: list[str]) -> list[Namespace]:
    """The namespaces of every side; the last one is the bare side, the others have an operator."""
    kb.ensure_namespaces(kube, names)
    sides = []
    for ns in names:
        context, splits = split_docs(n, ns)
        kb.apply_all(kube, resources, context, USER)
        bodies = kb.apply_all(kube, resources, splits, USER)
        side = Namespace(ns, context, splits)
        side.uids = {b["metadata"]["name"]: b["metadata"]["uid"] for b in bodies}
        sides.append(side)
    bare_side = sides[-1]
    # The bare side starts, like the operator's, with its VirtualServices in place.
    kb.apply_all(kube, resources, [vs_for(bare_side, s, 50) for s in bare_side.splits], MANAGER)
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rates", default="10,100", help="changes per second, comma-separated")
    parser.add_argument("--seconds", default="10:20,100:10",
                        help="seconds per run for each rate (rate:seconds,...); others use 10")
    parser.add_argument("--splits", type=int, default=50, help="TrafficSplits cycled over")
    parser.add_argument("--threads", type=int, default=4, help="writer threads (keeps the load open-loop)")
    parser.add_argument("--with-fixes", action="store_true",
                        help="also run an operator with benchmarks/fixes.py applied (side 'fixed')")
    args = parser.parse_args()
    modes = ["operator", *(["fixed"] if args.with_fixes else []), "bare"]
    names = {"operator": OP_NS, "fixed": FIX_NS, "bare": BARE_NS}
    rates = [float(r) for r in args.rates.split(",")]
    seconds = {float(k): float(v) for k, v in (p.split(":") for p in args.seconds.split(","))}
    log_dir = Path(tempfile.mkdtemp(prefix="smi2mesh-bench-latency-"))
    report: dict[str, Any] = {"rounds": args.rounds, "splits": args.splits, "threads": args.threads,
                              "modes": modes, "runs": []}
    with kb.envtest_cluster() as env:
        kube = kb.kube_for(env.kubeconfig, pool=args.threads + 2)
        resources = kb.Resources(kube)
        sides = dict(zip(modes, setup(kube, resources, args.splits, [names[m] for m in modes]), strict=True))
        ops = {m: kb.OperatorProcess(env.kubeconfig, ["--mesh", "istio", "--namespace", names[m]],
                                     log_path=log_dir / f"{m}.log", fixed=m == "fixed").start()
               for m in modes if m != "bare"}
        watches: list[kb.Watch] = []
        try:
            for m, op in ops.items():
                print(f"{m} operator ready in {op.wait_ready():.2f}s (log {log_dir / f'{m}.log'})")
                # Wait until the operator has written every VirtualService before measuring.
                vs_res = resources("networking.istio.io/v1", "VirtualService")
                while len(kube.list(vs_res, names[m])) < args.splits:
                    time.sleep(0.2)
            for side in sides.values():
                watches.append(kb.Watch(env.kubeconfig, VS_PATH.format(ns=side.name), side.on_event).start())
            for r in range(args.rounds):
                for rate in rates:
                    secs = seconds.get(rate, 10.0)
                    for mode, side in sides.items():
                        run = run_once(side, kube, resources, rate, secs, mode != "bare", args.threads)
                        s = run["samples_ms"]
                        print(f"round {r + 1} {rate:>5.0f}/s {mode:8}: {len(s):5} samples "
                              f"p50 {kb.percentile(s, 50):7.1f} ms p99 {kb.percentile(s, 99):7.1f} ms "
                              f"superseded {run['superseded']} missed {run['missed']} errors {run['errors']} "
                              f"sched lag {run['max_sched_lag_ms']:.0f} ms", flush=True)
                        report["runs"].append({"round": r + 1, "rate": rate, "mode": mode, **run})
                        # An operator still working through its backlog would slow the next side down.
                        for other in ops.values():
                            other.wait_quiet()
            report["operator_writes"] = {m: {k: v for k, v in op.metrics().items()
                                             if k.startswith("smi2mesh_api_writes_total")}
                                         for m, op in ops.items()}
        finally:
            for w in watches:
                w.stop()
            for op in ops.values():
                op.stop()
    summarize(report, rates)
    print(f"wrote {kb.write_results('operator_latency', report)}")


def summarize(report: dict[str, Any], rates: list[float]) -> None:
    """Pooled p50/p99 per rate and side, and per-round operator/bare ratios (median, spread)."""
    table: dict[str, Any] = {}
    print(f"\n{report['rounds']} rounds, interleaved operator/bare; latency from change sent to mesh object "
          "watched; ratio = operator/bare per round, median (min-max)")
    print(f"{'rate':>6} {'side':8} {'samples':>8} {'supsd':>6} {'missed':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'per-round p50 ms':>20} {'per-round p99 ms':>22}")
    for rate in rates:
        row: dict[str, Any] = {}
        modes = report["modes"]
        per_round: dict[str, dict[int, list[float]]] = {m: {} for m in modes}
        for mode in modes:
            runs = [x for x in report["runs"] if x["rate"] == rate and x["mode"] == mode]
            pooled = [s for x in runs for s in x["samples_ms"]]
            for x in runs:
                per_round[mode][x["round"]] = x["samples_ms"]
            p50s = [kb.percentile(x["samples_ms"], 50) for x in runs]
            p99s = [kb.percentile(x["samples_ms"], 99) for x in runs]
            missed = sum(x["missed"] for x in runs)
            superseded = sum(x["superseded"] for x in runs)
            row[mode] = {"samples": len(pooled), "missed": missed, "superseded": superseded,
                         "p50_ms": kb.percentile(pooled, 50), "p99_ms": kb.percentile(pooled, 99),
                         "round_p50_ms": p50s, "round_p99_ms": p99s}
            print(f"{rate:>6.0f} {mode:8} {len(pooled):>8} {superseded:>6} {missed:>6} "
                  f"{kb.percentile(pooled, 50):>8.1f} {kb.percentile(pooled, 99):>8.1f} "
                  f"{kb.median_spread(p50s, '{:.1f}'):>20} {kb.median_spread(p99s, '{:.1f}'):>22}")
        for mode in modes[:-1]:
            rounds = sorted(set(per_round[mode]) & set(per_round["bare"]))
            r50 = [kb.percentile(per_round[mode][i], 50) / kb.percentile(per_round["bare"][i], 50)
                   for i in rounds]
            r99 = [kb.percentile(per_round[mode][i], 99) / kb.percentile(per_round["bare"][i], 99)
                   for i in rounds]
            row[mode]["ratio_p50"] = r50
            row[mode]["ratio_p99"] = r99
            print(f"{rate:>6.0f} {'ratio':8} {mode}/bare p50 {kb.median_spread(r50)}x, "
                  f"p99 {kb.median_spread(r99)}x")
        table[str(rate)] = row
    report["summary"] = table
    goal: dict[str, Any] = table.get("10.0") or {}
    for mode in report["modes"][:-1] if goal else []:
        p99 = goal[mode]["p99_ms"]
        ratio = statistics.median(goal[mode]["ratio_p99"]) if goal[mode]["ratio_p99"] else float("nan")
        print(f"goal at 10/s ({mode}): p99 < 100 ms -> {p99:.1f} ms ({'met' if p99 < 100 else 'missed'}); "
              f"{mode}/bare p99 <= 1.5x -> {ratio:.2f}x ({'met' if ratio <= 1.5 else 'missed'})")


if __name__ == "__main__":
    main()
