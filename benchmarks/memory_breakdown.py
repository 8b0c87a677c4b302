"""Where the operator's per-object memory goes, without a cluster (issue 6 section 4, diagnosis).

Run ``python benchmarks/memory_breakdown.py [--sizes 1000,10000]``. For each
size it fills the operator's own structures exactly as a reconcile pass does
(``Store.upsert`` of API-server-shaped bodies, then ``plan_namespace`` per
namespace, which fills the ``Parser`` cache, and the statuses the operator
writes back), under tracemalloc, and prints the bytes held per SMI object
by file:line. It measures only smi2mesh's share; kopf's per-object share
is what ``reconcile.py --tracemalloc`` adds on a live cluster. A ratio to a
baseline is not needed here: bytes held are not timing and do not depend on
machine load. Writes ``benchmarks/results/memory_breakdown.json``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import kubebench as kb
from benchmarks.corpus import corpus, smi_count
from smi2mesh.operator import reconcile
from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import Resource
from smi2mesh.operator.store import CONTEXT_KINDS, SMI_KINDS, Store

KEYS = {kind: key for key, kind in {**SMI_KINDS, **CONTEXT_KINDS}.items()}


def served(api_version: str, kind: str) -> Resource:
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, kind.lower() + "s", kind)


def as_served(doc: dict[str, Any], i: int) -> dict[str, Any]:
    """A corpus document as the API server returns it (uid, resourceVersion, managedFields)."""
    body = copy.deepcopy(doc)
    meta = body["metadata"]
    meta.update({"uid": f"00000000-0000-0000-0000-{i:012d}", "resourceVersion": str(1000 + i),
                 "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                 "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                    "apiVersion": body["apiVersion"], "time": "2026-01-01T00:00:00Z",
                                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]})
    return body


def fill(n: int) -> tuple[Store, reconcile.Parser, int]:
    k = max(1, round(n / 3.833))
    docs = corpus(k, k)
    store = Store()
    for i, d in enumerate(docs):
        store.upsert(KEYS[d["kind"]], as_served(d, i))
    return store, reconcile.Parser(), smi_count(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    config = OperatorConfig(mesh="istio")
    report: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        gc.collect()
        tracemalloc.start(1)
        base = tracemalloc.take_snapshot()
        store, parse_cache, count = fill(size)
        after_store = tracemalloc.take_snapshot()
        namespaces = sorted({ns for by_ns in store.objects.values() for ns in by_ns})
        for ns in namespaces:
            plan = reconcile.plan_namespace(ns, store, config, parse_cache, served)
            for out in plan.outcomes.values():  # the status the operator writes back comes in by watch
                out.body["status"] = reconcile.merge_times(reconcile.desired_status(out, config), {})
            del plan
        gc.collect()
        after_all = tracemalloc.take_snapshot()
        tracemalloc.stop()
        store_b = sum(s.size_diff for s in after_store.compare_to(base, "filename"))
        total_b = sum(s.size_diff for s in after_all.compare_to(base, "filename"))
        print(f"{count} SMI objects ({sum(len(v) for o in store.objects.values() for v in o.values())} "
              f"cached objects): store {store_b / 2**20:.1f} MiB, store + parser cache + statuses "
              f"{total_b / 2**20:.1f} MiB = {total_b / count / 1024:.1f} KiB per SMI object, "
              f"{total_b / count * 1000 / 2**20:.1f} MiB per 1,000")
        lines = []
        for s in after_all.compare_to(base, "lineno")[:args.top]:
            frame = s.traceback[0]
            where = f"{Path(frame.filename).relative_to(kb.ROOT) if frame.filename.startswith(str(kb.ROOT)) else frame.filename}:{frame.lineno}"  # noqa: E501
            lines.append({"where": where, "mib": s.size_diff / 2**20, "blocks": s.count_diff})
            print(f"  {s.size_diff / 2**20:7.2f} MiB {s.count_diff:>9} blocks  {where}")
        report[str(count)] = {"store_mib": store_b / 2**20, "total_mib": total_b / 2**20,
                              "kib_per_smi_object": total_b / count / 1024, "top": lines}
        del store, parse_cache
    print(f"wrote {kb.write_results('memory_breakdown', report)}")


if __name__ == "__main__":
    main()
