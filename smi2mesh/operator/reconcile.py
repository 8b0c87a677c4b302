"""Reconcile one namespace: from the cached state to API writes, level-based.

Every pass recomputes the namespace from scratch:

1. parse each SMI object in the version it was written in;
2. pick each TrafficSplit/TrafficTarget's mesh (object annotation, then
   namespace label ``smi2mesh.io/mesh``, then ``--mesh``);
3. translate each mesh's share with the same :func:`translate` the CLI uses;
4. compare desired objects with live ones on the fields we set, and plan
   creates and server-side applies only where they differ (no churn);
5. after those succeed, delete objects we own that are no longer desired;
6. write status conditions and events where they changed.

An SMI object annotated ``smi2mesh.io/ignore: "true"`` is left to another
controller: it is not translated (an ignored route is as if absent), so its
outputs are no longer desired and are pruned like any other; they come back
when the annotation goes. Its status says so (``Ready=False``, reason
``Ignored``, no other condition, nothing generated, mesh ``""``) rather than
keep a stale ``Ready=True`` for objects just deleted; that is no failure,
so it posts no Event.

"Ours" means: labelled ``app.kubernetes.io/managed-by: smi2mesh`` *and*
owned (ownerReference uid) by a live SMI object of the namespace, so a
look-alike label on a foreign object is not enough to be touched. An
object of the same name that is not ours is a conflict: it is never
written, and the SMI object says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deepdiff import DeepDiff

from smi2mesh import inputs as inputs_mod
from smi2mesh.errors import Problem
from smi2mesh.findings import Finding, FindingReason
from smi2mesh.model import Inputs, SmiObject
from smi2mesh.operator.config import MESH_LABEL, OperatorConfig
from smi2mesh.operator.kube import ApiError, Kube, Resource, TransientApiError
from smi2mesh.operator.store import (
    CONTEXT_KINDS,
    OUTPUT_CONTEXT_KINDS,
    SMI_KINDS,
    VERSION_KEY,
    Body,
    Key,
    Store,
)
from smi2mesh.status import ConditionStatus, ConditionType
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS
from smi2mesh.translators.base import MANAGED_BY, MANAGER, SOURCE_ANNOTATION
from smi2mesh.translators.profiles import Profile

log = logging.getLogger("smi2mesh.reconcile")
POLICY_KINDS = frozenset(("TrafficSplit", "TrafficTarget"))
_REF_REASONS = frozenset((FindingReason.UNRESOLVED_REFERENCE, FindingReason.AMBIGUOUS_SELECTOR))
MAX_MESSAGE = 2048
IGNORED = "Ignored"
HASH_ANNOTATION = "smi2mesh.io/desired-hash"


def output_resources(config: OperatorConfig) -> dict[tuple[str, str], Key]:
    """(apiVersion, kind) -> watch key of every kind the enabled meshes write."""
    out: dict[tuple[str, str], Key] = {}
    for mesh in sorted(config.meshes):
        for k in TRANSLATORS[mesh].emits:
            if k.namespaced:  # cluster-scoped outputs come from CLI-only profiles
                out[(k.api_version, k.kind)] = (k.group, k.plural)
    return out


# ---- comparing desired and live ----------------------------------------------


def _project(live: Any, desired: Any) -> Any:
    """*live* cut down to the shape of *desired*: the fields we set, nothing else.

    Fields the API server defaulted or another manager added are not ours,
    so they must not count as drift.
    """
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: _project(live[k], v) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list) and len(live) == len(desired):
        return [_project(x, d) for x, d in zip(live, desired, strict=True)]
    return live


def _owned_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    out["metadata"] = {k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta}
    return out


def drift(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether the live object differs from what we want on the fields we own.

    Plain equality decides (``1 == 1.0`` holds, as it should for JSON numbers):
    this runs for every object on every pass, where DeepDiff cost ~5 ms an
    object. :func:`describe_drift` explains a real drift, for the log.
    """
    mine = _owned_part(desired)
    return bool(mine != _project(_owned_part(live), mine))


def describe_drift(desired: Mapping[str, Any], live: Mapping[str, Any]) -> str:
    """DeepDiff of the fields we own, shortened for a log line."""
    mine = _owned_part(desired)
    return _short(DeepDiff(mine, _project(_owned_part(live), mine), ignore_numeric_type_changes=True))


def is_ours(live: Mapping[str, Any], smi_uids: Collection[str]) -> bool:
    """Labelled as ours and owned by one of this namespace's SMI objects (or one seen deleted)."""
    meta = live.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY) != MANAGER:
        return False
    return any(ref.get("uid") in smi_uids for ref in meta.get("ownerReferences") or [])


def _sources(obj: Mapping[str, Any]) -> list[str]:
    note = ((obj.get("metadata") or {}).get("annotations") or {}).get(SOURCE_ANNOTATION, "")
    return [s for s in note.split(",") if s]


# ---- the plan ----------------------------------------------------------------------


@dataclass
class Write:
    """One create, apply or delete."""

    verb: str  # "create" | "apply" | "delete"
    resource: Resource
    obj: Body
    sources: list[str]
    live: Body | None = None  # the object as it is, for apply; explains the drift on demand

    @property
    def is_repair(self) -> bool:
        """An apply of what we already wanted: someone else changed the live object.

        The live object carries the hash of what we last wrote; when it equals
        the hash of what we want now, the difference is not ours.
        """
        if self.verb != "apply" or self.live is None:
            return False
        return _annotation(self.live, HASH_ANNOTATION) == _annotation(self.obj, HASH_ANNOTATION)

    def describe(self) -> str:
        """What drifted (DeepDiff), computed only for the few repairs a log line shows."""
        return describe_drift(self.obj, self.live) if self.live is not None else ""


def _annotation(obj: Mapping[str, Any], name: str) -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(name, ""))


@dataclass
class Outcome:
    """What happened to one SMI object in this pass, for its status."""

    body: Body
    key: Key
    parsed: SmiObject | None = None
    problems: list[Problem] = field(default_factory=list)
    mesh: str = ""
    findings: list[Finding] = field(default_factory=list)
    generated: list[Body] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    missing_crds: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    mesh_error: str = ""
    ignored: bool = False  # annotated smi2mesh.io/ignore: "true"

    @property
    def ref(self) -> str:
        meta = self.body["metadata"]
        return f"{SMI_KINDS[self.key]}/{meta['namespace']}/{meta['name']}"


@dataclass
class Plan:
    """Everything one pass over a namespace decided."""

    namespace: str
    writes: list[Write] = field(default_factory=list)
    deletes: list[Write] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    managed: dict[str, int] = field(default_factory=dict)
    # Objects as our writes returned them (store key, body), for the cache.
    written: list[tuple[Key, Body]] = field(default_factory=list)

    # uids of SMI objects seen deleted that live outputs still point at: a
    # re-created namesake takes such outputs over instead of reporting a
    # conflict (they are not pruned: see plan_namespace).
    dead_owners: set[str] = field(default_factory=set)

    @property
    def smi_uids(self) -> set[str]:
        """uids our outputs' ownerReferences may point at: this namespace's SMI objects,
        and the deleted ones in :attr:`dead_owners`."""
        return {str(o.body["metadata"].get("uid", "")) for o in self.outcomes.values()} | self.dead_owners


class Parser:
    """Parses bodies into the model, once per object version.

    One entry per object (keyed by uid), replaced when its resourceVersion
    changes, so memory follows the number of objects, not their history.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, str, tuple[object | None, list[Problem]]]] = {}

    def parse(self, body: Body) -> tuple[object | None, list[Problem]]:
        meta = body.get("metadata") or {}
        version = str(body.get(VERSION_KEY) or body.get("apiVersion"))
        ident = str(meta.get("uid") or f"{body.get('kind')}/{meta.get('namespace')}/{meta.get('name')}")
        rv = str(meta.get("resourceVersion"))
        hit = self._cache.get(ident)
        if hit is not None and hit[0] == rv and hit[1] == version:
            return hit[2]
        raw = {k: v for k, v in body.items() if k not in (VERSION_KEY, "status")}
        raw["apiVersion"] = version
        result = inputs_mod.parse_document(raw)
        self._cache[ident] = (rv, version, result)
        return result

    def forget_except(self, live: set[str]) -> None:
        """Drop entries of objects that no longer exist."""
        for ident in [i for i in self._cache if i not in live]:
            del self._cache[ident]

    def __len__(self) -> int:
        return len(self._cache)


def mesh_of(body: Body, namespace_labels: Mapping[str, str], config: OperatorConfig) -> str:
    """Object annotation, then namespace label, then the default mesh."""
    note = ((body.get("metadata") or {}).get("annotations") or {}).get(MESH_LABEL)
    return str(note or namespace_labels.get(MESH_LABEL) or config.mesh)


def plan_namespace(namespace: str, store: Store, config: OperatorConfig, parser: Parser,
                   served: Callable[[str, str], Resource | None], *,
                   profiles: Mapping[str, Profile] | None = None) -> Plan:
    """Decide the writes for one namespace from the cache alone.

    *profiles* are the mesh releases discovery picked (default: each mesh's newest).
    """
    plan = Plan(namespace)
    ns_labels = store.namespace_labels(namespace)
    by_mesh: dict[str, list[SmiObject]] = {}
    routes: list[SmiObject] = []
    for key in SMI_KINDS:
        for body in store.in_namespace(key, namespace).values():
            out = Outcome(body, key)
            plan.outcomes[out.ref] = out
            obj, problems = parser.parse(body)
            out.problems = problems
            # Kept as an outcome: its uid keeps our outputs of it "ours", so they are pruned.
            out.ignored = obj is None and not problems and inputs_mod.ignored(body)
            if not isinstance(obj, SmiObject):
                continue
            out.parsed = obj
            if SMI_KINDS[key] not in POLICY_KINDS:
                routes.append(obj)
                continue
            mesh = mesh_of(body, ns_labels, config)
            out.mesh = mesh
            if mesh not in config.meshes:
                out.mesh_error = (f"mesh {mesh!r} is not enabled in this operator "
                                  f"(enabled: {', '.join(sorted(config.meshes))})")
                continue
            by_mesh.setdefault(mesh, []).append(obj)
    context = [c for key in (*CONTEXT_KINDS, *OUTPUT_CONTEXT_KINDS)
               for body in store.in_namespace(key, namespace).values()
               for c in [parser.parse(body)[0]] if c is not None]
    desired: dict[tuple[str, str, str], tuple[Body, str]] = {}
    options = config.options()
    identities = store.identity_view()
    for mesh, policy in sorted(by_mesh.items()):
        result = translate(Inputs.of([*policy, *routes, *context], identities), mesh,
                           dataclasses.replace(options, profile=(profiles or {}).get(mesh)))
        for f in result.findings:
            target = plan.outcomes.get(f"{f.kind}/{f.namespace}/{f.name}")
            if target is None:
                continue
            if f.reason is FindingReason.CONFLICT:
                # A foreign object (a Linkerd ServiceProfile) overrides or holds what
                # we write: Conflict=True with an Event, like a foreign namesake.
                note = f"{f.field}: {f.message}"
                if note not in target.conflicts:
                    target.conflicts.append(note)
            elif f not in target.findings:
                target.findings.append(f)
        for obj in result.objects:
            obj["metadata"]["labels"][MESH_LABEL] = mesh
            obj["metadata"]["ownerReferences"] = _owner_refs(obj, plan)
            # Any change to what we want, a removed field included, changes the
            # hash, so it is applied even when every field still present matches.
            obj["metadata"]["annotations"][HASH_ANNOTATION] = desired_hash(obj)
            okey = (obj["apiVersion"].split("/")[0], obj["kind"], obj["metadata"]["name"])
            desired[okey] = (obj, mesh)
    store.record_reads(namespace, identities.read)
    # Objects whose SMI object became invalid keep their last good output.
    frozen = {ref for ref, out in plan.outcomes.items() if out.problems}
    watched = output_resources(config)
    live: dict[tuple[str, str, str], Body] = {}
    for (api_version, kind), wkey in watched.items():
        for name, body in store.in_namespace(wkey, namespace).items():
            live[(api_version.split("/")[0], kind, name)] = body
    plan.dead_owners = {str(ref.get("uid")) for body in live.values()
                        for ref in (body.get("metadata") or {}).get("ownerReferences") or []
                        if ref.get("uid") in store.gone}
    smi_uids = plan.smi_uids
    for dkey, (obj, _mesh) in sorted(desired.items()):
        sources = _sources(obj)
        outcomes = [plan.outcomes[s] for s in sources if s in plan.outcomes]
        res = served(obj["apiVersion"], obj["kind"])
        if res is None:
            for o in outcomes:
                o.missing_crds.add(f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}")
            continue
        current = live.get(dkey)
        if current is not None and not is_ours(current, smi_uids):
            for o in outcomes:
                o.conflicts.append(f"{obj['kind']} {namespace}/{obj['metadata']['name']} exists "
                                   "and is not managed by smi2mesh; left unchanged")
            continue
        for o in outcomes:
            o.generated.append(obj)
        plan.managed[obj["kind"]] = plan.managed.get(obj["kind"], 0) + 1
        if current is None:
            plan.writes.append(Write("create", res, obj, sources))
            continue
        if drift(obj, current):
            plan.writes.append(Write("apply", res, obj, sources, live=current))
    for lkey, body in sorted(live.items()):
        # Only outputs of live SMI objects are pruned: those of a deleted one are
        # the garbage collector's, which honours a deletion that orphans them.
        if lkey in desired or not is_ours(body, smi_uids - plan.dead_owners):
            continue
        sources = _sources(body)
        if any(s in frozen for s in sources):
            plan.managed[body["kind"]] = plan.managed.get(body["kind"], 0) + 1
            continue
        res = served(body["apiVersion"], body["kind"])
        if res is not None:
            plan.deletes.append(Write("delete", res, body, sources))
    return plan


def desired_hash(obj: Mapping[str, Any]) -> str:
    """A short, stable digest of everything we set on an object."""
    owned = _owned_part(obj)
    owned["metadata"] = {**owned["metadata"], "annotations": {
        k: v for k, v in (owned["metadata"].get("annotations") or {}).items() if k != HASH_ANNOTATION}}
    text = json.dumps(owned, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _owner_refs(obj: Body, plan: Plan) -> list[Body]:
    refs: list[Body] = []
    for i, source in enumerate(_sources(obj)):
        out = plan.outcomes.get(source)
        if out is None:
            continue
        meta = out.body["metadata"]
        refs.append({"apiVersion": out.body["apiVersion"], "kind": SMI_KINDS[out.key],
                     "name": meta["name"], "uid": meta["uid"], "controller": i == 0})
    return refs


def _short(diff: DeepDiff) -> str:
    text = str(diff.to_dict() if hasattr(diff, "to_dict") else diff) or "changed"
    return text if len(text) < 400 else text[:400] + "..."


# ---- executing it --------------------------------------------------------------------


WRITE_CONCURRENCY = 8
_T = TypeVar("_T")
_POOL = ThreadPoolExecutor(WRITE_CONCURRENCY, thread_name_prefix="smi2mesh-write")


def execute(plan: Plan, kube: Kube) -> None:
    """Write the plan: every create and apply first, then deletions, never the reverse.

    Swapping meshes therefore never leaves a TrafficTarget without policy:
    the old mesh's objects go only after the new ones are written, and not
    at all if one of them failed. Writes of one phase go out concurrently,
    since one namespace's changes would otherwise queue behind each other's
    round trips. Transient errors propagate (after the phase) for a retry.
    """
    failed: set[str] = set()

    def report(w: Write, message: str, conflict: bool) -> None:
        failed.update(w.sources)
        for s in w.sources:
            if s in plan.outcomes:
                target = plan.outcomes[s]
                (target.conflicts if conflict else target.failures).append(message)
        log.warning("%s", message)

    def write(w: Write) -> None:
        name = w.obj["metadata"]["name"]
        foreign = (f"{w.obj['kind']} {plan.namespace}/{name} exists and is not managed by "
                   "smi2mesh; left unchanged")
        try:
            key = (w.resource.group, w.resource.plural)
            if w.verb != "create":
                plan.written.append((key, kube.apply(w.resource, w.obj)))
                return
            try:
                created = kube.create(w.resource, w.obj)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                # Our cache may be behind our own earlier create: look before calling it foreign.
                live = kube.get(w.resource, plan.namespace, name)
                if live is None or not is_ours(live, plan.smi_uids):
                    report(w, foreign, conflict=True)
                    return
                plan.written.append((key, kube.apply(w.resource, w.obj)))
                return
            plan.written.append((key, created))
            managers = {m.get("manager") for m in (created.get("metadata") or {}).get("managedFields") or []}
            if managers - {MANAGER, None}:
                # Someone created it in the instant after our cache said it was absent.
                report(w, foreign + " (found after writing our fields into it)", conflict=True)
        except TransientApiError:
            raise
        except ApiError as exc:
            report(w, f"{w.verb} {w.obj['kind']} {name}: {exc}", conflict=False)

    def delete(w: Write) -> None:
        meta = w.obj["metadata"]
        try:
            kube.delete(w.resource, plan.namespace, meta["name"], meta["uid"])
        except TransientApiError:
            raise
        except ApiError as exc:
            if exc.status != 409:  # 409: the uid changed, so it is no longer the object we saw
                log.warning("prune %s %s: %s", w.obj["kind"], meta["name"], exc)

    run_all(write, plan.writes)
    run_all(delete, [w for w in plan.deletes if not failed & set(w.sources)])


def run_all(fn: Callable[[_T], None], items: Sequence[_T]) -> None:
    """Run *fn* over *items* concurrently; re-raise the first exception after all finished."""
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    errors = [f.exception() for f in [_POOL.submit(fn, item) for item in items]]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


# ---- status ---------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(type_: ConditionType, ok: bool, reason: str, message: str,
               generation: int | None) -> Body:
    return {"type": type_.value, "status": (ConditionStatus.TRUE if ok else ConditionStatus.FALSE).value,
            "reason": reason, "message": message[:MAX_MESSAGE], "observedGeneration": generation}


def _lines(items: Iterable[str]) -> str:
    return "; ".join(items)


def desired_status(out: Outcome, config: OperatorConfig) -> Body:
    """The status block one SMI object should carry after this pass."""
    gen = out.body["metadata"].get("generation")
    if out.ignored:
        ignored: Body = _without_none({
            "observedGeneration": gen, "mesh": "", "generated": [],
            "conditions": [_condition(ConditionType.READY, False, IGNORED,
                                      f'annotated {inputs_mod.IGNORE_ANNOTATION}: "true"; '
                                      "smi2mesh leaves it to another controller", gen)]})
        return ignored
    ref_findings = [f for f in out.findings if f.reason in _REF_REASONS]
    other = [f for f in out.findings if f.reason not in _REF_REASONS]
    if out.problems:
        ready = (False, "InvalidSpec", _lines(p.render() for p in out.problems))
    elif out.mesh_error:
        ready = (False, "MeshNotEnabled", out.mesh_error)
    elif out.missing_crds:
        ready = (False, "MeshCRDsMissing",
                 f"CRDs of mesh {out.mesh!r} are not installed: {', '.join(sorted(out.missing_crds))}")
    elif out.conflicts:
        ready = (False, "Conflict", _lines(out.conflicts))
    elif out.failures:
        ready = (False, "ApplyFailed", _lines(out.failures))
    else:
        ready = (True, "Reconciled" if SMI_KINDS[out.key] in POLICY_KINDS else "Accepted",
                 f"{len(out.generated)} object(s) generated" if out.generated else "")
    conditions = [
        _condition(ConditionType.READY, *ready, gen),
        _condition(ConditionType.RESOLVED_REFS, not ref_findings,
                   "RefNotFound" if ref_findings else "Resolved",
                   _lines(f"{f.field}: {f.message}" for f in ref_findings), gen),
        {**_condition(ConditionType.NOT_EXPRESSIBLE, True, "NotExpressible",
                      _lines(f"{f.field}: {f.message} [{f.reason.value}]" for f in other), gen)}
        if other else _condition(ConditionType.NOT_EXPRESSIBLE, False, "AllExpressed", "", gen),
        _condition(ConditionType.CONFLICT, False, "NoConflict", "", gen) if not out.conflicts
        else {**_condition(ConditionType.CONFLICT, True, "ForeignObject", _lines(out.conflicts), gen)},
    ]
    status: Body = {"observedGeneration": gen, "conditions": conditions,
                    "generated": [{"apiVersion": o["apiVersion"], "kind": o["kind"],
                                   "name": o["metadata"]["name"],
                                   "namespace": o["metadata"]["namespace"]}
                                  for o in sorted(out.generated, key=lambda o: (o["kind"],
                                                                                o["metadata"]["name"]))]}
    if out.mesh:
        status["mesh"] = out.mesh
    cleaned: Body = _without_none(status)
    return cleaned


def _without_none(value: Any) -> Any:
    """The API server drops nulls; keeping them would look like a change on every pass."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def merge_times(new: Body, old: Mapping[str, Any]) -> Body:
    """Keep lastTransitionTime where a condition's status did not change."""
    before = {c.get("type"): c for c in old.get("conditions") or []}
    for cond in new["conditions"]:
        prev = before.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        cond["lastTransitionTime"] = prev.get("lastTransitionTime") if same and prev else _now()
    return new


def status_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether writing *new* would change anything (no write, no watch event, no loop)."""
    return dict(new) != _project(dict(old), dict(new)) \
        or len(old.get("conditions") or []) != len(new.get("conditions") or [])


def events_for(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(reason, message) for conditions that turned bad or whose bad message changed."""
    before = {c.get("type"): c for c in old.get("conditions") or []}
    out: list[tuple[str, str]] = []
    for cond in new.get("conditions") or []:
        bad = (cond["type"] in (ConditionType.READY, ConditionType.RESOLVED_REFS)
               and cond["status"] == "False") or (
            cond["type"] in (ConditionType.NOT_EXPRESSIBLE, ConditionType.CONFLICT)
            and cond["status"] == "True")
        prev = before.get(cond["type"]) or {}
        changed = (prev.get("status"), prev.get("message")) != (cond["status"], cond["message"])
        if bad and changed and cond["reason"] != IGNORED:
            out.append((cond["reason"], cond["message"]))
    return out
