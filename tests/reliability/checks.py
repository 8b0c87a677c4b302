"""Writing the corpus to the API server, and checking what the operator made of it.

:func:`problems` is the convergence check every scenario ends with; it returns
what is still wrong (empty once converged), so tests poll it and print the
first differences when they time out:

* every expected mesh object exists with the right content (``drift`` on the
  fields we set), our labels, the source annotation and controller ownership
  of live SMI objects;
* no orphans: nothing labelled ``app.kubernetes.io/managed-by: smi2mesh``
  that is not expected;
* status is truthful: observedGeneration equals generation on the status and
  every condition; Ready=True (with ``status.generated`` listing exactly the
  expected outputs) for valid objects, Ready=False/InvalidSpec for invalid ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kubernetes

from smi2mesh.operator.kube import ApiError, Kube, Resource, TransientApiError
from smi2mesh.operator.reconcile import drift
from smi2mesh.translators.base import MANAGED_BY, MANAGER, SOURCE_ANNOTATION
from tests.reliability.corpus import (
    POLICY_KINDS,
    SMI_API,
    SMI_PLURAL,
    Change,
    Corpus,
    Doc,
    key_of,
    sources_of,
)

OUTPUTS = {("networking.istio.io/v1", "VirtualService"): "virtualservices",
           ("security.istio.io/v1", "AuthorizationPolicy"): "authorizationpolicies"}
CONTEXT = {"Service": ("v1", "services"), "Deployment": ("apps/v1", "deployments"),
           "ConfigMap": ("v1", "configmaps")}


def resource(api_version: str, kind: str, plural: str) -> Resource:
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, plural, kind)


def resource_of(api_version: str, kind: str) -> Resource:
    if kind in SMI_PLURAL:
        return resource(SMI_API[kind], kind, SMI_PLURAL[kind])
    if (api_version, kind) in OUTPUTS:
        return resource(api_version, kind, OUTPUTS[(api_version, kind)])
    av, plural = CONTEXT[kind]
    return resource(av, kind, plural)


def client(kubeconfig: str) -> Kube:
    """A test client of its own (never the process-wide default configuration)."""
    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return Kube(api)


def retrying(call: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Run *call* until it does not fail transiently: the control plane may be down."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except TransientApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def apply(kube: Kube, doc: Doc, manager: str = "tests") -> None:
    meta = doc["metadata"]
    res = resource_of(doc["apiVersion"], doc["kind"])
    retrying(lambda: kube.request("PATCH", res.path(meta["namespace"], meta["name"]),
                                  query=[("fieldManager", manager), ("force", "true")], body=doc,
                                  content_type="application/apply-patch+yaml",
                                  what=f"apply {doc['kind']} {meta['name']}"))


def delete(kube: Kube, kind: str, namespace: str, name: str) -> None:
    res = resource_of("", kind)
    retrying(lambda: kube.request("DELETE", res.path(namespace, name)))  # 404 on a retry is fine


def write(kube: Kube, change: Change) -> None:
    if change.doc is None:
        delete(kube, *change.key)
    else:
        apply(kube, change.doc)


def apply_all(kube: Kube, docs: Iterable[Doc], workers: int = 4) -> None:
    """Apply documents in parallel, context (Services, Deployments) first."""
    docs = list(docs)
    with ThreadPoolExecutor(workers) as pool:
        context = [d for d in docs if d["kind"] in CONTEXT]
        for wave in (context, [d for d in docs if d["kind"] not in CONTEXT]):
            list(pool.map(lambda d: apply(kube, d), wave))


def ensure_namespaces(kube: Kube, names: Iterable[str]) -> None:
    ns = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
    for name in names:
        try:
            retrying(lambda n=name: kube.request("POST", ns.path(), body={  # type: ignore[misc]
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        except ApiError as exc:
            if exc.status != 409:
                raise


def listing(kube: Kube, api_version: str, kind: str, namespace: str) -> list[Doc]:
    res = resource_of(api_version, kind)
    return list(retrying(lambda: kube.list(res, namespace)))


# ---- foreign objects ---------------------------------------------------------------


def foreign_objects(namespace: str) -> list[Doc]:
    """Objects that are not ours, some of the very kinds we write: they must never change."""
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "foreign-config", "namespace": namespace},
         "data": {"owner": "another-team"}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "foreign-vs", "namespace": namespace, "labels": {"team": "payments"}},
         "spec": {"hosts": ["foreign"], "http": [{"route": [{"destination": {"host": "foreign"}}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "foreign-ap", "namespace": namespace,
                      "labels": {"app.kubernetes.io/managed-by": "helm"}},
         "spec": {"selector": {"matchLabels": {"app": "foreign"}}, "action": "DENY", "rules": [{}]}},
    ]


def versions(kube: Kube, docs: Iterable[Doc]) -> dict[tuple[str, str, str], str]:
    """resourceVersion of each document's live object ("" when gone)."""
    out = {}
    for d in docs:
        meta = d["metadata"]
        res = resource_of(d["apiVersion"], d["kind"])
        live = retrying(lambda r=res, m=meta: kube.get(r, m["namespace"], m["name"]))  # type: ignore[misc]
        out[key_of(d)] = (live or {}).get("metadata", {}).get("resourceVersion", "")
    return out


# ---- the convergence check -----------------------------------------------------------


@dataclass
class Snapshot:
    """Everything the check reads, listed once per kind and namespace."""

    outputs: dict[tuple[str, str, str], Doc] = field(default_factory=dict)
    smi: dict[tuple[str, str, str], Doc] = field(default_factory=dict)

    @classmethod
    def take(cls, kube: Kube, namespaces: Iterable[str]) -> Snapshot:
        snap = cls()
        for ns in namespaces:
            for (api_version, kind) in OUTPUTS:
                for o in listing(kube, api_version, kind, ns):
                    snap.outputs[key_of(o)] = o
            for kind in SMI_PLURAL:
                for o in listing(kube, SMI_API[kind], kind, ns):
                    snap.smi[key_of(o)] = o
        return snap


def problems(kube: Kube, corpus: Corpus, limit: int = 8) -> list[str]:
    """What still differs from the converged state (empty: converged)."""
    snap = Snapshot.take(kube, corpus.namespaces)
    wrong: list[str] = []
    expected = corpus.expected()
    by_source: dict[str, list[Doc]] = {}
    for obj in expected:
        for s in sources_of(obj):
            by_source.setdefault(s, []).append(obj)
        wrong += _output_problems(obj, snap)
    want = {key_of(o) for o in expected}
    for k, live in sorted(snap.outputs.items()):
        if (live["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER and k not in want:
            wrong.append(f"orphan {'/'.join(k)}")
    invalid = corpus.invalid()
    for k in corpus.docs:
        if k[0] in SMI_PLURAL and k not in snap.smi:
            wrong.append(f"SMI object {'/'.join(k)} missing on the server (test bug)")
    for k, live in sorted(snap.smi.items()):
        wrong += _status_problems(k, live, invalid.get(k), by_source.get("/".join(k), []))
    return wrong[:limit] if limit else wrong


def _output_problems(obj: Doc, snap: Snapshot) -> list[str]:
    k = key_of(obj)
    name = "/".join(k)
    live = snap.outputs.get(k)
    if live is None:
        return [f"missing {name}"]
    out = []
    diff = drift({f: v for f, v in obj.items() if f != "metadata"}, live)
    if diff:
        out.append(f"drift {name}: {str(diff)[:300]}")
    meta = live["metadata"]
    labels = meta.get("labels") or {}
    if any(labels.get(lk) != lv for lk, lv in obj["metadata"].get("labels", {}).items()):
        out.append(f"labels {name}: {labels}")
    note = obj["metadata"]["annotations"][SOURCE_ANNOTATION]
    if (meta.get("annotations") or {}).get(SOURCE_ANNOTATION) != note:
        out.append(f"source annotation {name}: {meta.get('annotations')}")
    owners = meta.get("ownerReferences") or []
    controllers = [o for o in owners if o.get("controller")]
    live_uids = {o["metadata"]["uid"]: kk for kk, o in snap.smi.items()}
    if len(controllers) != 1:
        out.append(f"{name} has {len(controllers)} controller ownerReferences")
    for o in owners:
        source = live_uids.get(o.get("uid"))
        if source is None or "/".join(source) not in sources_of(obj):
            out.append(f"{name} is owned by {o.get('kind')}/{o.get('name')} uid {o.get('uid')}, "
                       "not a live source")
    return out


def _status_problems(k: tuple[str, str, str], live: Doc, invalid: list[str] | None,
                     outputs: list[Doc]) -> list[str]:
    name = "/".join(k)
    gen = live["metadata"].get("generation")
    status = live.get("status") or {}
    if status.get("observedGeneration") != gen:
        return [f"{name}: observedGeneration {status.get('observedGeneration')} != generation {gen}"]
    conds = {c["type"]: c for c in status.get("conditions") or []}
    out = [f"{name}: condition {t} observedGeneration {c.get('observedGeneration')} != {gen}"
           for t, c in conds.items() if c.get("observedGeneration") != gen]
    ready = conds.get("Ready") or {}
    if invalid:
        if (ready.get("status"), ready.get("reason")) != ("False", "InvalidSpec"):
            out.append(f"{name}: invalid but Ready={ready.get('status')}/{ready.get('reason')}")
        return out
    if ready.get("status") != "True":
        out.append(f"{name}: Ready={ready.get('status')}/{ready.get('reason')}: {ready.get('message')}")
    if k[0] in POLICY_KINDS:
        want = sorted((o["kind"], o["metadata"]["name"]) for o in outputs)
        got = sorted((g["kind"], g["name"]) for g in status.get("generated") or [])
        if want != got:
            out.append(f"{name}: status.generated {got} != {want}")
        if conds.get("Conflict", {}).get("status") == "True":
            out.append(f"{name}: Conflict {conds['Conflict'].get('message')}")
    return out


def status_only_writes(kube: Kube, corpus: Corpus) -> list[str]:
    """SMI objects whose non-status fields the operator (field manager smi2mesh) wrote."""
    bad = []
    for ns in corpus.namespaces:
        for kind in SMI_PLURAL:
            for o in listing(kube, SMI_API[kind], kind, ns):
                for mf in o["metadata"].get("managedFields") or []:
                    if mf.get("manager") == MANAGER and mf.get("subresource") != "status":
                        bad.append("/".join(key_of(o)))
    return bad


def wait_converged(kube: Kube, corpus: Corpus, timeout: float, what: str,
                   alive: Callable[[], str] | None = None) -> float:
    """Poll :func:`problems` until empty; returns the monotonic time it first was.

    *alive* returns a reason when the operator died, which fails at once.
    """
    deadline = time.monotonic() + timeout
    last: list[str] = []
    while time.monotonic() < deadline:
        if alive is not None and (dead := alive()):
            raise AssertionError(f"{what}: the operator died: {dead}")
        last = problems(kube, corpus)
        if not last:
            return time.monotonic()
        time.sleep(0.5)
    raise AssertionError(f"{what}: not converged after {timeout:.0f}s; still wrong:\n  " + "\n  ".join(last))
