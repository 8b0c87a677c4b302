"""Fuzzed SMI objects on the real API server (issue 7, scenario 9).

The offline fuzzer (``tests/fuzz``) feeds generated documents to the parser
and the translators; here the same strategies feed the running operator
through the API server. A fixed, derandomized batch of SMI documents of
every kind and version, two in three corrupted by the fuzzer's mutation step
(bad weights, regexes and ports, missing fields, wrong types, unicode names,
long lists, whole documents replaced; about half of the batch is then
invalid), is applied to a namespace of its own while good changes are
written to the corpus of the fault scenarios.

What the API server refuses (the CRD schema doing its job) is counted. For
every object it accepted, the operator must report: Ready with the object's
generation, ``False``/``InvalidSpec`` with the parser's message (naming the
field) and an ``InvalidSpec`` Event when the parser rejects the object as
stored, another verdict with a reason and a message otherwise. The corpus
must converge as usual, and the operator must neither die nor log an error.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from smi2mesh import smi
from smi2mesh.inputs import expand_lists, parse_document
from smi2mesh.operator.kube import ApiError, Kube, Resource, TransientApiError
from smi2mesh.operator.reconcile import MAX_MESSAGE, POLICY_KINDS
from smi2mesh.translators.base import MANAGER
from tests.fuzz.strategies import GROUPS, mutated, traffic_splits, valid_worlds
from tests.operator import harness
from tests.reliability import checks, test_faults
from tests.reliability.conftest import record
from tests.reliability.corpus import SMI_API, SMI_PLURAL, Change, Doc, burst, problems_of
from tests.reliability.plane import Plane
from tests.reliability.test_faults import CONVERGE, api_client, counters, dead, scene, since

pytestmark = list(test_faults.pytestmark)

EXAMPLES = 100  # generated worlds to choose from (hypothesis examples)
TARGET = 80  # SMI documents in the batch, before the few added to cover every version
ROUTE_KINDS = ("HTTPRouteGroup", "TCPRoute", "UDPRoute")
FIELD_MANAGER = "fuzz"
EVENT_MESSAGE = 1024  # Kube.event keeps this much of a message


# ---- the batch ---------------------------------------------------------------------


@dataclass
class Generated:
    """One generated document and the SMI kind and version it was generated as."""

    kind: str
    api_version: str
    body: Any  # as sent: corrupted or not, possibly not even a mapping
    corrupted: bool


def generate() -> list[list[Generated]]:
    """Worlds of SMI documents from ``valid_worlds``, two in three corrupted one by one.

    Derandomized: the batch is the same on every run (hypothesis seeds it from
    this function's source), and no example database is read or written.
    """
    worlds: list[list[Generated]] = []

    @settings(derandomize=True, max_examples=EXAMPLES, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        docs = [d for _, d in expand_lists((str(i), d) for i, d in
                                           enumerate(data.draw(valid_worlds(), label="world")))]
        # Worlds hold at most two TrafficSplits; one more each keeps every version in the batch.
        docs.append(data.draw(traffic_splits("split", "ns", GROUPS), label="extra split"))
        world: list[Generated] = []
        for doc in docs:
            if not (isinstance(doc, dict) and doc.get("kind") in SMI_PLURAL):
                continue  # context (Services, workloads): not what this scenario is about
            kind, api_version = doc["kind"], doc["apiVersion"]
            if data.draw(st.integers(0, 2), label="corrupt") > 0:
                world += [Generated(kind, api_version, bad, True)
                          for bad in data.draw(mutated([doc]), label="corrupted")]
            else:
                world.append(Generated(kind, api_version, doc, False))
        worlds.append(world)

    draw()
    return select(worlds)


def select(worlds: list[list[Generated]]) -> list[list[Generated]]:
    """Documents of the first worlds up to :data:`TARGET`, plus one of each (kind,
    version) they lack, from later worlds.

    Hypothesis builds later examples by mutating earlier ones, so many documents
    recur verbatim; each is sent once.
    """
    seen: set[str] = set()

    def fresh(g: Generated) -> bool:
        text = json.dumps([g.kind, g.api_version, g.body])
        if text in seen:
            return False
        seen.add(text)
        return True

    chosen: list[list[Generated]] = []
    rest = iter(worlds)
    for world in rest:
        if new := [g for g in world if fresh(g)]:
            chosen.append(new)
        if sum(map(len, chosen)) >= TARGET:
            break
    covered = {(g.api_version, g.kind) for w in chosen for g in w}
    for world in rest:
        for g in world:
            if (g.api_version, g.kind) not in covered and fresh(g):
                covered.add((g.api_version, g.kind))
                chosen.append([g])
    return chosen


@dataclass
class Sent:
    """A generated document placed in the fuzz namespace, and what the API server said."""

    gen: Generated
    resource: Resource
    name: str  # in the request path
    body: Any
    stored: Doc | None = None  # the object as accepted
    refused: tuple[int, str] | None = None  # (HTTP status, message)

    @property
    def key(self) -> tuple[str, str]:
        assert self.stored is not None
        return self.gen.kind, self.stored["metadata"]["name"]


def place(worlds: list[list[Generated]], namespace: str) -> list[Sent]:
    """Give every document a name of its own in *namespace*.

    Names get a per-world prefix (kept invalid where the fuzzer made them
    invalid: ``Web`` becomes ``w03-Web``), and so do the route names
    TrafficSplits and TrafficTargets refer to, so that references resolve
    within a world and nowhere else. Documents without a usable name are
    sent under a made-up one, with the body as generated. Every object
    moves to *namespace*, and so do the subjects in its own namespace.
    """
    out: list[Sent] = []
    used: set[tuple[str, str]] = set()
    for w, world in enumerate(worlds):
        prefix = f"w{w:02d}-"
        for j, g in enumerate(world):
            body = copy.deepcopy(g.body)
            meta = body.get("metadata") if isinstance(body, dict) else None
            named = isinstance(meta, dict) and isinstance(meta.get("name"), str)
            name = prefix + (meta["name"] if named and isinstance(meta, dict) else f"doc{j}")
            if (g.kind, name) in used:  # the fuzzer's "duplicate" corruption
                name = f"{name}-{j}"
            used.add((g.kind, name))
            if isinstance(meta, dict):
                meta["namespace"] = namespace
                if named:
                    meta["name"] = name
            if isinstance(body, dict):
                _localize(body, prefix, namespace)
            group, _, version = g.api_version.rpartition("/")
            out.append(Sent(g, Resource(group, version, SMI_PLURAL[g.kind], g.kind), name, body))
    return out


def _localize(body: Doc, prefix: str, namespace: str) -> None:
    """Route references get the world's prefix; subjects in the generator's own
    namespace ("ns") move to *namespace* with their TrafficTarget."""
    for holder in (body, body.get("spec")):
        if not isinstance(holder, dict):
            continue
        for field_name in ("matches", "rules", "specs"):
            items = holder.get(field_name)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and item.get("kind") in ROUTE_KINDS \
                        and isinstance(item.get("name"), str):
                    item["name"] = prefix + item["name"]
        sources = holder.get("sources")
        for subject in [holder.get("destination"), *(sources if isinstance(sources, list) else [])]:
            if isinstance(subject, dict) and subject.get("namespace") == "ns":
                subject["namespace"] = namespace


# ---- on the API server -----------------------------------------------------------


def send(kube: Kube, namespace: str, s: Sent, timeout: float = 60.0) -> None:
    """Server-side apply *s* exactly as generated.

    The body is sent as JSON text, as kubectl sends it (UTF-8, not escaped), so
    that anything goes through: a bare string, a number, NaN. Text that UTF-8
    cannot hold (lone surrogates) goes escaped. Refusals (4xx, or a 5xx that
    is not about availability) are recorded, not raised.
    """
    path = s.resource.path(namespace, urllib.parse.quote(s.name, safe=""))
    try:
        data = json.dumps(s.body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(s.body).encode("ascii")
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, stored = kube.request("PATCH", path, body=data,
                                     query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                                     content_type="application/apply-patch+yaml",
                                     what=f"apply {s.gen.kind} {s.name}")
        except TransientApiError as exc:
            if exc.status in (0, 429, 503, 504) and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            s.refused = (exc.status, str(exc))
            return
        except ApiError as exc:
            s.refused = (exc.status, str(exc))
            return
        s.stored = stored
        return


def snapshot(kube: Kube, namespace: str) -> dict[tuple[str, str], Doc]:
    """Every SMI object of *namespace*, by (kind, name)."""
    return {(kind, o["metadata"]["name"]): o for kind in SMI_PLURAL
            for o in checks.listing(kube, SMI_API[kind], kind, namespace)}


def ready_of(live: Doc) -> dict[str, Any] | None:
    """The Ready condition, once it and the status observed the object's generation."""
    gen = live["metadata"].get("generation")
    status = live.get("status") or {}
    ready = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready")
    if status.get("observedGeneration") != gen or ready is None or ready.get("observedGeneration") != gen:
        return None
    cond: dict[str, Any] = ready
    return cond


def as_stored(s: Sent, live: Doc) -> Doc:
    """The object as the operator reads it: the stored fields, in the version it was written in."""
    raw = {k: v for k, v in live.items() if k != "status"}
    raw["apiVersion"] = s.resource.api_version
    return raw


def verdict_problems(s: Sent, live: Doc, ready: dict[str, Any], events: list[Doc],
                     outputs: set[tuple[str, str]]) -> tuple[bool, list[str]]:
    """(invalid per the parser, what is wrong with the operator's report on *live*)."""
    name = live["metadata"]["name"]
    what = f"{s.gen.kind} {name}"
    problems = parse_document(as_stored(s, live))[1]
    mine = [e for e in events if e["involvedObject"].get("uid") == live["metadata"]["uid"]]
    wrong: list[str] = []
    gen = live["metadata"].get("generation")
    for c in live["status"].get("conditions") or []:
        if c.get("observedGeneration") != gen:
            wrong.append(f"{what}: condition {c.get('type')} observedGeneration "
                         f"{c.get('observedGeneration')} != {gen}")
    if problems:
        message = "; ".join(p.render() for p in problems)[:MAX_MESSAGE]
        if (ready.get("status"), ready.get("reason")) != ("False", "InvalidSpec"):
            wrong.append(f"{what}: invalid ({message}) but Ready={ready.get('status')}/"
                         f"{ready.get('reason')}: {ready.get('message')}")
        elif ready.get("message") != message:
            wrong.append(f"{what}: InvalidSpec message {ready.get('message')!r} != {message!r}")
        fields = [p.field for p in problems if p.field]
        if not fields:
            wrong.append(f"{what}: the parser's problems name no field: {message}")
        elif not any(f in str(ready.get("message")) for f in fields):
            wrong.append(f"{what}: InvalidSpec message names none of {fields}")
        if not any(e.get("reason") == "InvalidSpec" and e.get("message") == message[:EVENT_MESSAGE]
                   for e in mine):
            wrong.append(f"{what}: no InvalidSpec Event with the message; events: "
                         f"{[(e.get('reason'), e.get('message')) for e in mine]}")
        return True, wrong
    if ready.get("reason") == "InvalidSpec" or not ready.get("reason"):
        wrong.append(f"{what}: valid but Ready={ready.get('status')}/{ready.get('reason')}: "
                     f"{ready.get('message')}")
    elif ready.get("status") == "True":
        if s.gen.kind in POLICY_KINDS:
            generated = {(g["kind"], g["name"]) for g in live["status"].get("generated") or []}
            if missing := generated - outputs:
                wrong.append(f"{what}: Ready=True but generated objects are missing: {sorted(missing)}")
    elif ready.get("status") != "False" or not ready.get("message"):
        wrong.append(f"{what}: Ready={ready.get('status')}/{ready.get('reason')} without a message")
    elif not any(e.get("reason") == ready["reason"] for e in mine):
        wrong.append(f"{what}: Ready=False/{ready['reason']} but no such Event")
    return False, wrong


def wait_settled(kube: Kube, namespace: str, keys: set[tuple[str, str]], op: harness.RunningOperator,
                 timeout: float) -> dict[tuple[str, str], Doc]:
    """Poll until every accepted object has a Ready condition of its generation."""
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        if why := dead(op):
            raise AssertionError(f"the operator died: {why}")
        live = snapshot(kube, namespace)
        pending = sorted(f"{k[0]}/{k[1]}" for k in keys if k not in live or ready_of(live[k]) is None)
        if not pending:
            return live
        time.sleep(0.5)
    raise AssertionError(f"no Ready condition of the current generation after {timeout:.0f}s on "
                         f"{len(pending)} objects: {pending[:10]}")


def wait_gc_knows_the_kinds(kube: Kube, namespace: str) -> None:
    """Wait until the plane's garbage collector collects dependents of SMI objects.

    This module's control plane is fresh: its garbage collector picks up kinds
    whose CRDs were installed after it started only at its 30-second discovery
    resync. Until then, outputs of deleted SMI objects (left to it on purpose:
    it honours a deletion that orphans them) would stay, and "no orphans" would
    measure that resync instead of the operator. A canary TrafficSplit owning a
    VirtualService is deleted until its dependent goes too.
    """
    split = {"apiVersion": SMI_API["TrafficSplit"], "kind": "TrafficSplit",
             "metadata": {"name": "gc-canary", "namespace": namespace},
             "spec": {"service": "gc-canary", "backends": [{"service": "gc-canary-v1", "weight": 1}]}}
    ts = checks.resource_of(SMI_API["TrafficSplit"], "TrafficSplit")
    vs = checks.resource_of("networking.istio.io/v1", "VirtualService")
    deadline = time.monotonic() + CONVERGE
    while time.monotonic() < deadline:
        owner = kube.apply(ts, split)
        kube.apply(vs, {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                        "metadata": {"name": "gc-canary", "namespace": namespace, "ownerReferences": [
                            {"apiVersion": SMI_API["TrafficSplit"], "kind": "TrafficSplit",
                             "name": "gc-canary", "uid": owner["metadata"]["uid"]}]},
                        "spec": {"hosts": ["gc-canary"]}})
        kube.delete(ts, namespace, "gc-canary", owner["metadata"]["uid"])
        try:
            harness.wait_for(lambda: kube.get(vs, namespace, "gc-canary") is None, 10,
                             "the garbage collector to delete the canary's VirtualService")
            return
        except AssertionError:
            continue
    raise AssertionError(f"the garbage collector did not collect the canary in {CONVERGE:.0f}s")


def test_fuzzed_objects_are_reported_and_everything_else_served(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    worlds = generate()
    s = scene(plane, "s9")
    fuzz_ns = "s9-fuzz"
    checks.ensure_namespaces(s.kube, [fuzz_ns])
    wait_gc_knows_the_kinds(s.kube, fuzz_ns)
    batch = place(worlds, fuzz_ns)
    kinds = {(g.gen.api_version, g.gen.kind) for g in batch}
    assert kinds == set(smi.VERSIONS), f"kinds and versions never generated: {set(smi.VERSIONS) - kinds}"
    assert 60 <= len(batch) <= 120, len(batch)
    config = replace(s.operator_config(), namespaces=(*s.corpus.namespaces, fuzz_ns))
    caplog.set_level(logging.WARNING)
    with harness.operator(config, api_client=api_client(plane.env.kubeconfig)) as op:
        checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial", alive=lambda: dead(op))
        good = list(burst(s.corpus, 99, size=30))
        before = counters(op)
        fault_at = time.monotonic()
        # One GitOps sync: the fuzzed objects and good changes of the corpus, interleaved.
        step = max(1, len(batch) // max(1, len(good)))
        changes: list[Change] = list(good)
        for i, sent in enumerate(batch):
            send(s.kube, fuzz_ns, sent)
            if i % step == step - 1 and changes:
                checks.write(s.kube, changes.pop(0))
        for c in changes:
            checks.write(s.kube, c)
        written = time.monotonic()
        converged = checks.wait_converged(s.kube, s.corpus, CONVERGE, "with fuzzed objects alongside",
                                          alive=lambda: dead(op))
        accepted = [x for x in batch if x.stored is not None]
        live = wait_settled(s.kube, fuzz_ns, {x.key for x in accepted}, op, CONVERGE)
        settled = time.monotonic()
        writes = since(before, op)
        events = s.kube.request("GET", f"/api/v1/namespaces/{fuzz_ns}/events")[1]["items"]
        outputs = {(kind, o["metadata"]["name"]) for api_version, kind in checks.OUTPUTS
                   for o in checks.listing(s.kube, api_version, kind, fuzz_ns)}
        wrong: list[str] = []
        invalid = changed_by_server = 0
        ready_reasons: Counter[str] = Counter()
        for x in accepted:
            obj = live[x.key]
            ready = ready_of(obj)
            assert ready is not None
            ready_reasons[f"{ready['status']}/{ready['reason']}"] += 1
            bad, problems = verdict_problems(x, obj, ready, events, outputs)
            invalid += bad
            wrong += problems
            # The server may prune or coerce fields: the verdict on what was sent can differ.
            changed_by_server += bad != bool(problems_of(x.body))
            for mf in obj["metadata"].get("managedFields") or []:
                if mf.get("manager") == MANAGER and mf.get("subresource") != "status":
                    wrong.append(f"{x.gen.kind} {x.name}: the operator wrote more than the status")
        errors = [f"{r.name}: {r.getMessage()}: {r.exc_info[1] if r.exc_info else ''}"
                  for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not wrong, (f"{len(wrong)} wrong reports:\n  " + "\n  ".join(wrong[:30])
                           + f"\nerrors logged: {errors[:5]}")
        s.finish()
        assert not dead(op)
        assert not errors, f"the operator logged errors: {errors[:5]}"
        warnings = Counter(r.name for r in caplog.records if r.levelno == logging.WARNING)
    s.cleanup()
    checks.retrying(lambda: s.kube.request("DELETE", f"/api/v1/namespaces/{fuzz_ns}"))
    refused = [x for x in batch if x.refused is not None]
    record("9-fuzzed-objects", {
        "smi_objects": s.corpus.smi_count(),
        "fault": f"{len(batch)} generated SMI documents (tests/fuzz/strategies.py, derandomized; "
                 f"{sum(x.gen.corrupted for x in batch)} corrupted) applied to a namespace of "
                 f"their own, interleaved with {len(good)} good changes of the corpus",
        "generated": len(batch),
        "corrupted": sum(x.gen.corrupted for x in batch),
        "accepted_by_api_server": len(accepted),
        "rejected_by_api_server": len(refused),
        "rejections_by_status": dict(Counter(str(x.refused[0]) for x in refused if x.refused)),
        "accepted_invalid_per_parser": invalid,
        "accepted_valid": len(accepted) - invalid,
        "verdict_changed_by_the_server": changed_by_server,
        "ready": dict(sorted(ready_reasons.items())),
        "operator_warnings": dict(warnings),
        "writes_s": round(written - fault_at, 1),
        "converge_after_recovery_s": round(converged - fault_at, 1),
        "statuses_settled_s": round(settled - fault_at, 1),
        "operator_writes_from_fault_to_converged": writes})
