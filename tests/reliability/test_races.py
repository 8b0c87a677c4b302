"""Deterministic reproductions of the races the fault scenarios run into.

kopf handles the events of each object uid in a worker of its own, so when an
SMI object is deleted and created again under the same name, the DELETED event
of the old uid can be handled *after* the ADDED event of the new one. The
operator's :class:`~smi2mesh.operator.store.Store` must then keep the new
object; these tests replay exactly that order without a cluster. The last one
replays the 409 the operator meets when its cache is behind its own creates.
"""

from __future__ import annotations

from typing import Any

from smi2mesh.operator import reconcile
from smi2mesh.operator.kube import ApiError, Resource
from smi2mesh.operator.store import Store
from smi2mesh.translators.base import MANAGED_BY, MANAGER, SOURCE_ANNOTATION

KEY = ("split.smi-spec.io", "trafficsplits")


def split(uid: str, rv: str) -> dict[str, Any]:
    return {"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
            "metadata": {"name": "web-split", "namespace": "ns", "uid": uid, "resourceVersion": rv,
                         "generation": 1},
            "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]}}


def test_late_delete_of_the_old_uid_keeps_the_recreated_object() -> None:
    store = Store()
    store.upsert(KEY, split("old", "10"))
    store.upsert(KEY, split("new", "12"))  # ADDED of the re-created object, handled first
    store.remove(KEY, split("old", "11"))  # DELETED of the old uid, handled late
    cached = store.in_namespace(KEY, "ns").get("web-split")
    assert cached is not None, "the re-created TrafficSplit vanished from the cache"
    assert cached["metadata"]["uid"] == "new"


def test_late_update_of_the_old_uid_does_not_replace_the_recreated_object() -> None:
    store = Store()
    store.upsert(KEY, split("old", "10"))
    store.upsert(KEY, split("new", "12"))
    store.upsert(KEY, split("old", "11"))  # a MODIFIED of the old uid, still queued in its worker
    store.remove(KEY, split("old", "13"))
    cached = store.in_namespace(KEY, "ns").get("web-split")
    assert cached is not None
    assert cached["metadata"]["uid"] == "new"


class _Kube:
    """Just enough of Kube for reconcile.execute: our object already exists on the server."""

    def __init__(self, live: dict[str, Any]) -> None:
        self.live = live
        self.applied: list[str] = []

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        raise ApiError(409, {"message": "already exists"}, "create")

    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.live

    def apply(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj["metadata"]["name"])
        return obj

    def delete(self, res: Resource, namespace: str, name: str, uid: str) -> None:
        raise AssertionError("nothing is to be deleted")


def test_409_on_our_own_object_is_not_a_conflict() -> None:
    ts = split("uid-ts", "5")
    res = Resource("networking.istio.io", "v1", "virtualservices", "VirtualService")
    desired: dict[str, Any] = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "web-split", "namespace": "ns",
                            "labels": {MANAGED_BY: MANAGER},
                            "annotations": {SOURCE_ANNOTATION: "TrafficSplit/ns/web-split"},
                            "ownerReferences": [{"apiVersion": ts["apiVersion"], "kind": "TrafficSplit",
                                                 "name": "web-split", "uid": "uid-ts",
                                                 "controller": True}]},
               "spec": {"hosts": ["web"]}}
    plan = reconcile.Plan("ns")
    outcome = reconcile.Outcome(ts, KEY)
    plan.outcomes[outcome.ref] = outcome
    plan.writes.append(reconcile.Write("create", res, desired, [outcome.ref]))
    kube = _Kube(live={**desired, "metadata": {**desired["metadata"], "uid": "uid-vs"}})
    reconcile.execute(plan, kube)  # type: ignore[arg-type]
    assert outcome.conflicts == [], "our own VirtualService was reported as someone else's"
