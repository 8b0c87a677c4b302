"""A seeded, reproducible SMI corpus for the benchmarks.

10,000 TrafficSplits (a third with matches) and 10,000 TrafficTargets (HTTP
and TCP rules) with their route groups, Services and workloads, spread over
namespaces of 100 applications each.
"""

from __future__ import annotations

import random
from typing import Any

Doc = dict[str, Any]


def _meta(name: str, ns: str) -> Doc:
    return {"name": name, "namespace": ns}


def corpus(splits: int = 10_000, targets: int = 10_000, seed: int = 42) -> list[Doc]:
    """The documents of the corpus, SMI objects and context mixed as in a repository."""
    rnd = random.Random(seed)
    docs: list[Doc] = []
    for i in range(max(splits, targets)):
        ns = f"team-{i // 100:03d}"
        app = f"app-{i:05d}"
        port = rnd.choice([80, 8080, 9090])
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(app, ns),
                     "spec": {"selector": {"app": app},
                              "ports": [{"name": "http", "port": port}]}})
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(app, ns),
                     "spec": {"selector": {"matchLabels": {"app": app}},
                              "template": {"metadata": {"labels": {"app": app, "version": "v1"}},
                                           "spec": {"serviceAccountName": app,
                                                    "containers": [{"name": "app",
                                                                    "image": f"example/{app}:1"}]}}}})
        if i < splits:
            ts: Doc = {"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
                       "metadata": _meta(f"{app}-split", ns),
                       "spec": {"service": app, "backends": [
                           {"service": f"{app}-v1", "weight": rnd.randint(0, 100)},
                           {"service": f"{app}-v2", "weight": rnd.randint(1, 100)}]}}
            if i % 3 == 0:
                ts["spec"]["matches"] = [{"kind": "HTTPRouteGroup", "name": f"{app}-canary"}]
                docs.append({"apiVersion": "specs.smi-spec.io/v1alpha4", "kind": "HTTPRouteGroup",
                             "metadata": _meta(f"{app}-canary", ns),
                             "spec": {"matches": [{"name": "beta", "pathRegex": "/api",
                                                   "methods": ["GET", "POST"],
                                                   "headers": {"x-beta": "true"}}]}})
            docs.append(ts)
        if i < targets:
            src = f"app-{rnd.randrange(max(splits, targets)):05d}"
            src_ns = f"team-{int(src[4:]) // 100:03d}"
            tt: Doc = {"apiVersion": "access.smi-spec.io/v1alpha3", "kind": "TrafficTarget",
                       "metadata": _meta(f"{app}-access", ns),
                       "spec": {"destination": {"kind": "ServiceAccount", "name": app, "namespace": ns},
                                "sources": [{"kind": "ServiceAccount", "name": src, "namespace": src_ns}],
                                "rules": []}}
            docs.append({"apiVersion": "specs.smi-spec.io/v1alpha4", "kind": "TCPRoute",
                         "metadata": _meta(f"{app}-port", ns),
                         "spec": {"matches": {"name": "http", "ports": [port]}}})
            tt["spec"]["rules"].append({"kind": "TCPRoute", "name": f"{app}-port"})
            if i % 2 == 0:
                docs.append({"apiVersion": "specs.smi-spec.io/v1alpha4", "kind": "HTTPRouteGroup",
                             "metadata": _meta(f"{app}-api", ns),
                             "spec": {"matches": [
                                 {"name": "read", "pathRegex": "/items", "methods": ["GET"]},
                                 {"name": "health", "pathRegex": "/healthz$"}]}})
                tt["spec"]["rules"].append({"kind": "HTTPRouteGroup", "name": f"{app}-api"})
            docs.append(tt)
    return docs


def smi_count(docs: list[Doc]) -> int:
    """How many documents are SMI objects."""
    return sum(1 for d in docs if d["apiVersion"].split("/")[0].endswith("smi-spec.io"))
