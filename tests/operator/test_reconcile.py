"""The operator's decisions, without an API server: plan, ownership, ordering, status."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest
import yaml

from smi2mesh.operator import reconcile
from smi2mesh.operator.config import ConfigError, OperatorConfig, add_run_arguments, from_args
from smi2mesh.operator.kube import ApiError, Kube, Resource
from smi2mesh.operator.runtime import DriftLimiter, Operator
from smi2mesh.operator.store import SMI_KINDS, Store, written_version

NS = "shop"
VS = Resource("networking.istio.io", "v1", "virtualservices", "VirtualService")
AP = Resource("security.istio.io", "v1", "authorizationpolicies", "AuthorizationPolicy")
CONFIG = OperatorConfig(mesh="istio", enabled_meshes=frozenset({"gamma"}))
SPLIT = yaml.safe_load("""
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop, uid: ts-uid, generation: 3, resourceVersion: "7"}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}, {service: web-v2, weight: 1}]
""")


def served(api_version: str, kind: str) -> Resource | None:
    return {"VirtualService": VS, "AuthorizationPolicy": AP}.get(kind) if "istio" in api_version \
        else Resource("gateway.networking.k8s.io", "v1", kind.lower() + "s", kind)


def store_with(*bodies: dict[str, Any], live: list[dict[str, Any]] = ()) -> Store:  # type: ignore[assignment]
    store = Store()
    for body in bodies:
        key = next(k for k, kind in SMI_KINDS.items() if kind == body["kind"])
        store.upsert(key, copy.deepcopy(body))
    for obj in live:
        group = obj["apiVersion"].split("/")[0]
        store.upsert((group, obj["kind"].lower() + "s"), copy.deepcopy(obj))
    return store


def plan(store: Store, config: OperatorConfig = CONFIG) -> reconcile.Plan:
    return reconcile.plan_namespace(NS, store, config, reconcile.Parser(), served)


def desired_vs() -> dict[str, Any]:
    (write,) = plan(store_with(SPLIT)).writes
    return write.obj


def test_new_split_is_created_with_owner_and_labels() -> None:
    p = plan(store_with(SPLIT))
    (w,) = p.writes
    assert w.verb == "create"
    meta = w.obj["metadata"]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "smi2mesh", "smi2mesh.io/mesh": "istio"}
    assert meta["ownerReferences"] == [{"apiVersion": "split.smi-spec.io/v1alpha4",
                                        "kind": "TrafficSplit", "name": "web", "uid": "ts-uid",
                                        "controller": True}]
    assert p.deletes == []


def test_up_to_date_object_is_not_written_even_with_server_defaults() -> None:
    live = desired_vs()
    live["metadata"].update(uid="vs-uid", resourceVersion="9")
    live["spec"]["http"][0]["route"][0]["headers"] = {}  # a default or another manager's field
    assert plan(store_with(SPLIT, live=[live])).writes == []


def test_drift_on_our_fields_is_repaired() -> None:
    live = desired_vs()
    live["metadata"]["uid"] = "vs-uid"
    live["spec"]["hosts"] = ["evil.example.com"]
    (w,) = plan(store_with(SPLIT, live=[live])).writes
    assert w.verb == "apply"
    assert w.is_repair
    assert "hosts" in w.describe()
    # A change of the SMI object is an update, not a repair: no drift to describe.
    changed = copy.deepcopy(SPLIT)
    changed["spec"]["backends"][0]["weight"] = 3
    (update,) = plan(store_with(changed, live=[desired_vs() | {"metadata": live["metadata"]}])).writes
    assert update.verb == "apply"
    assert not update.is_repair
    removed = desired_vs()
    removed["metadata"]["uid"] = "vs-uid"
    del removed["metadata"]["labels"]["smi2mesh.io/mesh"]
    assert [w.verb for w in plan(store_with(SPLIT, live=[removed])).writes] == ["apply"]


def test_foreign_object_is_a_conflict_and_never_written() -> None:
    foreign = desired_vs()
    foreign["metadata"] = {"name": "web", "namespace": NS, "uid": "x",
                           "labels": {"app.kubernetes.io/managed-by": "smi2mesh"}}  # look-alike
    p = plan(store_with(SPLIT, live=[foreign]))
    assert p.writes == []
    assert p.deletes == []
    out = p.outcomes["TrafficSplit/shop/web"]
    assert out.conflicts
    status = reconcile.desired_status(out, CONFIG)
    conds = {c["type"]: c for c in status["conditions"]}
    assert (conds["Conflict"]["status"], conds["Ready"]["reason"]) == ("True", "Conflict")


def test_stale_objects_we_own_are_pruned_but_look_alikes_are_not() -> None:
    stale = desired_vs()
    stale["metadata"].update(name="old", uid="old-uid")
    lookalike = desired_vs()
    lookalike["metadata"].update(name="theirs", uid="their-uid", ownerReferences=[
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "someone-else"}])
    p = plan(store_with(SPLIT, live=[stale, lookalike]))
    assert [d.obj["metadata"]["name"] for d in p.deletes] == ["old"]


def test_invalid_object_keeps_its_last_good_output() -> None:
    good = desired_vs()
    good["metadata"]["uid"] = "vs-uid"
    bad = copy.deepcopy(SPLIT)
    bad["spec"]["backends"] = [{"service": "a", "weight": 0}]
    p = plan(store_with(bad, live=[good]))
    assert p.writes == []
    assert p.deletes == []
    status = reconcile.desired_status(p.outcomes["TrafficSplit/shop/web"], CONFIG)
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "weights are zero" in ready["message"]


def _ignored(body: dict[str, Any], value: str = "true") -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["metadata"]["annotations"] = {"smi2mesh.io/ignore": value}
    out["metadata"]["resourceVersion"] = "8"
    return out


def test_an_ignored_object_loses_its_outputs_says_so_and_gets_them_back() -> None:
    live = desired_vs()
    live["metadata"].update(uid="vs-uid", resourceVersion="9")
    store = store_with(_ignored(SPLIT, "True"), live=[live])  # the value is case-insensitive
    p = plan(store)
    assert p.writes == []
    assert [(d.verb, d.obj["kind"], d.obj["metadata"]["name"]) for d in p.deletes] == \
        [("delete", "VirtualService", "web")]
    out = p.outcomes["TrafficSplit/shop/web"]
    assert (out.ignored, out.findings, out.problems, out.generated) == (True, [], [], [])
    before = reconcile.merge_times(reconcile.desired_status(plan(store_with(SPLIT)).outcomes[
        "TrafficSplit/shop/web"], CONFIG), {})
    status = reconcile.merge_times(reconcile.desired_status(out, CONFIG), before)
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == \
        [("Ready", "False", "Ignored")]
    assert (status["generated"], status["mesh"]) == ([], "")
    assert reconcile.status_changed(status, before)
    assert reconcile.events_for(status, before) == []  # a choice, not a failure
    # Annotation removed (or any other value): the output is desired again, not deleted.
    for body in (SPLIT, _ignored(SPLIT, "false"), _ignored(SPLIT, "yes")):
        again = plan(store_with(body, live=[live]))
        assert (again.writes, again.deletes) == ([], [])
        assert not again.outcomes["TrafficSplit/shop/web"].ignored


def test_an_ignored_route_is_as_if_absent() -> None:
    target, group = yaml.safe_load_all("""
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop, uid: tt-uid}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: HTTPRouteGroup, name: reads, matches: [get]}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: reads, namespace: shop, uid: rg-uid}
spec:
  matches: [{name: get, methods: [GET]}]
""")
    pods = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {
                "metadata": {"labels": {"app": "api"}}, "spec": {"serviceAccountName": "api"}}}}

    def unresolved(*bodies: dict[str, Any]) -> list[str]:
        store = store_with(*bodies)
        store.upsert(("apps", "deployments"), pods)
        out = plan(store).outcomes["TrafficTarget/shop/api"]
        return [f.field for f in out.findings
                if f.reason.value == "UnresolvedReference" and f.field.startswith("spec.rules")]

    assert unresolved(target, group) == []
    assert unresolved(target) == unresolved(target, _ignored(group)) != []
    p = plan(store_with(target, _ignored(group)))
    assert p.outcomes["HTTPRouteGroup/shop/reads"].ignored


def test_mesh_comes_from_annotation_then_namespace_label_then_default() -> None:
    body = copy.deepcopy(SPLIT)
    assert reconcile.mesh_of(body, {}, CONFIG) == "istio"
    assert reconcile.mesh_of(body, {"smi2mesh.io/mesh": "gamma"}, CONFIG) == "gamma"
    body["metadata"]["annotations"] = {"smi2mesh.io/mesh": "linkerd"}
    assert reconcile.mesh_of(body, {"smi2mesh.io/mesh": "gamma"}, CONFIG) == "linkerd"
    p = plan(store_with(body))
    assert p.writes == []
    out = p.outcomes["TrafficSplit/shop/web"]
    assert "not enabled" in out.mesh_error


def test_swapping_meshes_writes_the_new_objects_before_deleting_the_old() -> None:
    old = desired_vs()
    old["metadata"]["uid"] = "vs-uid"
    store = store_with(SPLIT, live=[old])
    store.upsert(("", "namespaces"), {"metadata": {"name": NS, "labels": {"smi2mesh.io/mesh": "gamma"}}})
    store.upsert(("", "services"), {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "web", "namespace": NS}, "spec": {"ports": [{"name": "http", "port": 80}]}})
    p = plan(store)
    assert [w.obj["kind"] for w in p.writes] == ["HTTPRoute"]
    assert [d.obj["kind"] for d in p.deletes] == ["VirtualService"]
    calls: list[str] = []

    class FailingKube:
        def create(self, res: Resource, obj: dict[str, Any]) -> None:
            calls.append("create")
            raise ApiError(422, {"message": "rejected"}, "create")

        def apply(self, res: Resource, obj: dict[str, Any]) -> None:
            calls.append("apply")

        def delete(self, res: Resource, ns: str, name: str, uid: str) -> None:
            calls.append("delete")

    reconcile.execute(p, FailingKube())  # type: ignore[arg-type]
    # The new mesh's object failed: the old one must stay, so there is never a gap.
    assert calls == ["create"]
    assert p.outcomes["TrafficSplit/shop/web"].failures


def test_a_409_on_create_is_reported_as_a_conflict() -> None:
    p = plan(store_with(SPLIT))

    class RacingKube:
        def create(self, res: Resource, obj: dict[str, Any]) -> None:
            raise ApiError(409, {"message": "already exists"}, "create")

        def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
            return {"metadata": {"name": name, "labels": {"team": "payments"}}}  # someone else's

    reconcile.execute(p, RacingKube())  # type: ignore[arg-type]
    assert p.outcomes["TrafficSplit/shop/web"].conflicts


def test_status_is_stable_and_events_fire_only_on_change() -> None:
    out = plan(store_with(SPLIT)).outcomes["TrafficSplit/shop/web"]
    first = reconcile.merge_times(reconcile.desired_status(out, CONFIG), {})
    assert reconcile.status_changed(first, {})
    again = reconcile.merge_times(reconcile.desired_status(out, CONFIG), first)
    assert not reconcile.status_changed(again, first)
    assert all(c["observedGeneration"] == 3 for c in first["conditions"])
    assert "None" not in str(first)
    bad = copy.deepcopy(out)
    bad.conflicts = ["VirtualService shop/web exists and is not managed by smi2mesh"]
    worse = reconcile.merge_times(reconcile.desired_status(bad, CONFIG), first)
    assert [r for r, _ in reconcile.events_for(worse, first)] == ["Conflict", "ForeignObject"]
    assert reconcile.events_for(worse, worse) == []


def test_written_version_comes_from_the_newest_spec_writer() -> None:
    body = {"apiVersion": "split.smi-spec.io/v1alpha4", "metadata": {"managedFields": [
        {"manager": "argo", "apiVersion": "split.smi-spec.io/v1alpha1", "time": "2026-01-01T00:00:00Z"},
        {"manager": "smi2mesh", "apiVersion": "split.smi-spec.io/v1alpha4", "subresource": "status",
         "time": "2026-01-02T00:00:00Z"}]}}
    assert written_version(body) == "split.smi-spec.io/v1alpha1"
    assert written_version({"apiVersion": "split.smi-spec.io/v1alpha3"}) == "split.smi-spec.io/v1alpha3"


def test_drift_repairs_are_bounded_but_updates_are_not() -> None:
    limiter = DriftLimiter(limit=3, window=60)
    write = reconcile.Write("apply", VS, desired_vs(), [])
    assert [limiter.allow(write, t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.allow(write, 61.5)  # the window moved on
    changed = reconcile.Write("apply", VS, {**desired_vs(), "spec": {"hosts": ["x"]}}, [])
    assert all(limiter.allow(changed, 62 + i) for i in range(3))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_config_from_flags_and_environment() -> None:
    config = from_args(_args(), {"SMI2MESH_MESH": "linkerd", "SMI2MESH_NAMESPACES": "a, b",
                                 "SMI2MESH_ENABLED_MESHES": "gamma", "SMI2MESH_HEALTH_PORT": "9000"})
    assert (config.mesh, config.namespaces, config.meshes, config.health_port) == (
        "linkerd", ("a", "b"), frozenset({"linkerd", "gamma"}), 9000)
    assert from_args(_args("--mesh", "istio"), {"SMI2MESH_MESH": "kuma"}).mesh == "istio"
    assert from_args(_args("--mesh", "istio", "-A"), {"SMI2MESH_NAMESPACES": "a"}).all_namespaces


@pytest.mark.parametrize(("argv", "env", "message"), [
    ((), {}, "--mesh (or SMI2MESH_MESH) is required"),
    (("--mesh", "smi"), {}, "offline CLI only"),
    (("--mesh", "nginx"), {}, "unknown mesh 'nginx'"),
    (("--mesh", "istio", "--enable-mesh", "smi"), {}, "unknown mesh 'smi'"),
    (("--mesh", "istio"), {"SMI2MESH_METRICS_PORT": "http"}, "not a port number"),
])
def test_config_errors_name_the_value(argv: tuple[str, ...], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_args(_args(*argv), env)


def test_parse_cache_keeps_one_entry_per_object() -> None:
    parser = reconcile.Parser()
    body = copy.deepcopy(SPLIT)
    first = parser.parse(body)
    assert parser.parse(copy.deepcopy(body)) is first  # cached
    for rv in range(10):
        body["metadata"]["resourceVersion"] = str(100 + rv)
        parser.parse(copy.deepcopy(body))
    assert len(parser) == 1
    parser.forget_except(set())
    assert len(parser) == 0


def test_a_field_we_stop_setting_is_an_apply_not_silently_kept() -> None:
    """When a TrafficTarget's rules all become unresolved, the desired policy loses
    spec.rules; the live one must be re-applied (server-side apply then removes the
    field we no longer set), or it would keep allowing what SMI no longer allows."""
    live = desired_vs()
    live["metadata"]["uid"] = "vs-uid"
    live["spec"]["extra"] = {"kept": "by us before"}  # a field our old desired object had
    old_hash = live["metadata"]["annotations"]["smi2mesh.io/desired-hash"]
    live["metadata"]["annotations"]["smi2mesh.io/desired-hash"] = "0" * 16
    (w,) = plan(store_with(SPLIT, live=[live])).writes
    assert w.verb == "apply"
    assert w.obj["metadata"]["annotations"]["smi2mesh.io/desired-hash"] == old_hash
    assert reconcile.desired_hash(w.obj) == old_hash


class _Answer:
    """The bits of a urllib3 response that ``Kube.request`` reads."""

    def __init__(self, status: int, body: bytes = b"{}") -> None:
        self.status, self.data = status, body

    def read(self) -> bytes:
        return self.data


class _FakeApi:
    """Answers every call with the next status of *statuses*."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)

    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[str, str, dict[str, str], Any, Any]:
        return method, path, {}, None, None

    def call_api(self, *_: Any, **__: Any) -> _Answer:
        return _Answer(self.statuses.pop(0))


def test_metrics_count_accepted_and_refused_writes_apart() -> None:
    kube = Kube(_FakeApi(200, 403, 200, 404, 201, 200))  # type: ignore[arg-type]
    op = Operator(CONFIG, kube)
    body = copy.deepcopy(SPLIT)
    kube.apply(VS, {"metadata": {"name": "a", "namespace": NS}})
    with pytest.raises(ApiError):
        kube.create(VS, {"metadata": {"name": "b", "namespace": NS}})
    kube.delete(VS, NS, "c", "uid")
    kube.delete(VS, NS, "gone", "uid")  # 404: already gone, not an error to the caller
    kube.event(body, "InvalidSpec", "bad")
    kube.get(VS, NS, "a")  # reads are not writes
    writes, errors = op.metrics.writes, op.metrics.write_errors
    assert writes.labels("apply")._value.get() == 1
    assert writes.labels("delete")._value.get() == 1
    assert writes.labels("event")._value.get() == 1
    assert writes.labels("create")._value.get() == 0
    assert errors.labels("create", "403")._value.get() == 1
    assert errors.labels("delete", "404")._value.get() == 1
    assert kube.writes == 3


def test_the_echo_of_our_own_write_causes_no_pass_but_a_foreign_change_does() -> None:
    store = store_with(SPLIT)
    store.take_dirty()
    vs_key = ("networking.istio.io", "virtualservices")
    written = desired_vs()
    written["metadata"].update(uid="vs-uid", resourceVersion="10")
    store.upsert(vs_key, written, mark=False)  # the answer to our apply
    assert store.take_dirty() == []
    store.upsert(vs_key, copy.deepcopy(written))  # its watch echo
    assert store.take_dirty() == []
    older = copy.deepcopy(written)
    older["metadata"]["resourceVersion"] = "9"
    older["spec"]["hosts"] = ["stale"]
    store.upsert(vs_key, older, mark=False)  # an answer overtaken by a newer event is dropped
    assert store.in_namespace(vs_key, NS)[written["metadata"]["name"]]["spec"]["hosts"] != ["stale"]
    edited = copy.deepcopy(written)
    edited["metadata"]["resourceVersion"] = "11"
    edited["spec"]["hosts"] = ["evil.example.com"]
    store.upsert(vs_key, edited)  # someone else's edit
    assert store.take_dirty() == [NS]


def test_outputs_of_a_deleted_smi_object_are_taken_over_by_a_namesake_not_conflicts() -> None:
    old = desired_vs()  # owned by ts-uid
    old["metadata"].update(uid="vs-uid", resourceVersion="5")
    # The TrafficSplit was deleted and re-created under the same name (a new uid)
    # before the garbage collector removed its VirtualService.
    recreated = copy.deepcopy(SPLIT)
    recreated["metadata"]["uid"] = "ts-uid-2"
    store = store_with(recreated, live=[old])
    store.remove(("split.smi-spec.io", "trafficsplits"), SPLIT)  # what the DELETED event left
    store.upsert(("split.smi-spec.io", "trafficsplits"), recreated)
    p = plan(store)
    (w,) = p.writes
    assert w.verb == "apply"
    assert [r["uid"] for r in w.obj["metadata"]["ownerReferences"]] == ["ts-uid-2"]
    assert all(not o.conflicts for o in p.outcomes.values())
    # Gone for good: the output is left to the garbage collector, which honours a
    # deletion with --cascade=orphan (it then keeps the object and drops the reference).
    gone = store_with(live=[old])
    gone.remove(("split.smi-spec.io", "trafficsplits"), SPLIT)
    p = plan(gone)
    assert p.deletes == []
    assert p.writes == []


def test_hostname_roots_and_quantity_weights_are_reconciled_and_external_hosts_reported() -> None:
    """What OSM's demo, Flagger and linkerd-smi leave in a cluster reaches the mesh (issue 12)."""
    hosts = copy.deepcopy(SPLIT)
    hosts["apiVersion"] = "split.smi-spec.io/v1alpha2"
    hosts["spec"] = {"service": "web.shop.svc.cluster.local",
                     "backends": [{"service": "web-v1.shop", "weight": 1},
                                  {"service": "web-v2", "weight": "500m"}]}
    external = copy.deepcopy(SPLIT)
    external["metadata"].update(name="ext", uid="ext-uid")
    external["spec"]["service"] = "web.example.com"
    p = plan(store_with(hosts, external))
    (w,) = p.writes
    assert w.obj["spec"]["hosts"] == ["web.shop.svc.cluster.local"]
    assert [(r["destination"]["host"], r["weight"]) for r in w.obj["spec"]["http"][0]["route"]] == [
        ("web-v1.shop.svc.cluster.local", 67), ("web-v2.shop.svc.cluster.local", 33)]
    assert [f.reason.value for f in p.outcomes["TrafficSplit/shop/web"].findings] == ["Rewritten"]
    assert not p.outcomes["TrafficSplit/shop/web"].problems
    (unresolved,) = p.outcomes["TrafficSplit/shop/ext"].findings
    assert (unresolved.field, unresolved.reason.value) == ("spec.service", "UnresolvedReference")
