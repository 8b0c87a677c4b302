"""kopf wiring and the reconcile loop of ``smi2mesh run``.

kopf runs the watches (with reconnects, relists after "410 Gone" and
throttling); every watch event only updates the :class:`Store` and marks
a namespace dirty. kopf's first listing of each kind fills the store at
start-up (:mod:`smi2mesh.operator.kopf_compat`), so nothing is listed twice.
One loop drains dirty namespaces, a few at a time, each through
:mod:`smi2mesh.operator.reconcile`: mesh objects first, for every dirty
namespace, then the SMI objects' statuses. A slow timer refreshes API
discovery and re-lists everything, so drift and CRDs installed later are
picked up even if an event was lost. With leader election
(:mod:`smi2mesh.operator.election`) every replica does all of this except
the writing: the loop runs passes only while this replica holds the Lease,
and a new holder starts with a pass over everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import kubernetes
import prometheus_client as prom
from aiohttp import web

from smi2mesh.operator import election, kopf_compat, reconcile
from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import ApiError, Fenced, Kube, Resource, TransientApiError
from smi2mesh.operator.metrics import Metrics
from smi2mesh.operator.store import CONTEXT_KINDS, NAMESPACES, SMI_KINDS, Key, Store
from smi2mesh.translators import profiles as mesh_profiles
from smi2mesh.translators.base import ConsulNamespaces
from smi2mesh.translators.profiles import Profile

log = logging.getLogger("smi2mesh.operator")
DEBOUNCE = 0.002  # lets a burst of watch events land before a pass, without adding latency
# Status patches wait while mesh objects are pending (they are two thirds of
# all writes in a bulk change), but never longer than this under steady load.
STATUS_MAX_DELAY = 1.0
FILL_TIMEOUT = 30.0  # seconds start-up waits for kopf's first listings before listing itself
WORKERS = 4
MAX_BACKOFF = 60.0
# Drift repair against a competing writer: at most this many re-applies of an
# unchanged desired object per window, then back off. Updates of the SMI
# object itself are never throttled.
REPAIRS_PER_WINDOW = 5
REPAIR_WINDOW = 60.0


class StartupError(RuntimeError):
    """The operator cannot start: the message says why, for the user."""


# ---- drift repair --------------------------------------------------------------------


class DriftLimiter:
    """Bounds how often one object is re-applied while what we want of it is unchanged."""

    def __init__(self, limit: int = REPAIRS_PER_WINDOW, window: float = REPAIR_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[tuple[str, str, str, str], tuple[str, list[float]]] = {}

    def allow(self, w: reconcile.Write, now: float) -> bool:
        """Whether *w* may be written now; creates and changed objects always may."""
        meta = w.obj["metadata"]
        key = (w.obj["apiVersion"], w.obj["kind"], meta["namespace"], meta["name"])
        digest = json.dumps(w.obj, sort_keys=True, default=str)
        previous, times = self._seen.get(key, ("", []))
        times = [t for t in times if now - t < self.window] if previous == digest else []
        if w.verb == "apply" and len(times) >= self.limit:
            self._seen[key] = (digest, times)
            return False
        self._seen[key] = (digest, [*times, now])
        return True

    def retry_after(self, w: reconcile.Write, now: float) -> float:
        meta = w.obj["metadata"]
        _, times = self._seen.get((w.obj["apiVersion"], w.obj["kind"], meta["namespace"],
                                   meta["name"]), ("", [now]))
        return max(1.0, self.window - (now - min(times)))


# ---- logging ---------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra`` fields of the record."""

    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                               "level": record.levelname.lower(), "logger": record.name,
                               "msg": record.getMessage()}
        if record.name.startswith("smi2mesh"):
            # Only our own structured fields: kopf attaches whole settings objects.
            out.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs every event at debug/info; keep its noise down unless asked.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, root.level))


# ---- discovery ---------------------------------------------------------------------------


@dataclass
class Discovery:
    """Which output kinds the API server serves now, and the resources of the inputs."""

    kube: Kube
    config: OperatorConfig
    outputs: dict[tuple[str, str], Resource | None] = field(default_factory=dict)
    inputs: dict[Key, Resource] = field(default_factory=dict)
    # Per enabled mesh, the release and Gateway API release to write for.
    profiles: dict[str, Profile] = field(default_factory=dict)

    def refresh_outputs(self) -> bool:
        """Re-read served output kinds and the profiles they call for; True when something changed."""
        found: dict[tuple[str, str], Resource | None] = {}
        by_gv: dict[str, dict[str, Resource] | None] = {}
        for api_version, kind in reconcile.output_resources(self.config):
            if api_version not in by_gv:
                by_gv[api_version] = self.kube.served(api_version)
            found[(api_version, kind)] = (by_gv[api_version] or {}).get(kind)
        changed = found != self.outputs
        self.outputs = found
        return self.refresh_profiles() or changed

    def refresh_profiles(self) -> bool:
        """Pick each mesh's profile from what is served and the Gateway API CRDs; True when one changed.

        Flags override (``--mesh-version``, ``--gateway-api-version``). When the
        Gateway API CRDs cannot be read (RBAC, not installed), the served
        TCPRoute versions decide; nothing here stops the operator.
        """
        served: dict[str, dict[str, Resource] | None] = {}

        def is_served(api_version: str, kind: str) -> bool:
            if api_version not in served:
                try:
                    served[api_version] = self.kube.served(api_version)
                except ApiError as exc:
                    log.warning("discovery of %s failed: %s", api_version, exc)
                    served[api_version] = None
            return kind in (served[api_version] or {})

        gateway_meshes = [m for m in self.config.meshes
                          if any(r.gateway_api for r in mesh_profiles.releases(m))]
        bundle, channel = self.gateway_bundle() if gateway_meshes else (None, None)
        found: dict[str, Profile] = {}
        for mesh in sorted(self.config.meshes):
            facts = mesh_profiles.ClusterFacts(is_served, bundle, channel)
            found[mesh] = mesh_profiles.discover(mesh, facts, self.config.mesh_versions.get(mesh),
                                            self.config.gateway_api_version)
            for note in facts.notes:
                log.warning("%s: %s", mesh, note)
        changed = found != self.profiles
        if changed:
            log.info("profiles: %s", "; ".join(p.describe() for _, p in sorted(found.items())))
        self.profiles = found
        return changed

    def gateway_bundle(self) -> tuple[str | None, mesh_profiles.Channel | None]:
        """Bundle version and channel annotations of the installed Gateway API route CRDs.

        TCPRoute's CRD first (it tells the channel that matters), then
        HTTPRoute's; (None, None) when neither can be read.
        """
        for plural in ("tcproutes", "httproutes"):
            name = f"{plural}.{mesh_profiles.GATEWAY_GROUP}"
            try:
                status, body = self.kube.request(
                    "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                    what=f"read CRD {name}")
            except ApiError as exc:
                log.info("cannot read CRD %s (%s); using the served versions", name, exc)
                continue
            notes = ((body or {}).get("metadata") or {}).get("annotations") or {}
            if status == 404 or not notes.get(mesh_profiles.BUNDLE_VERSION_ANNOTATION):
                continue
            raw = notes.get(mesh_profiles.CHANNEL_ANNOTATION)
            channel = mesh_profiles.Channel(raw) if raw in {c.value for c in mesh_profiles.Channel} else None
            return str(notes[mesh_profiles.BUNDLE_VERSION_ANNOTATION]), channel
        return None, None

    def resolve_inputs(self) -> None:
        """Resources of SMI kinds (preferred versions) and context kinds; StartupError if SMI is missing."""
        missing = []
        for key, kind in SMI_KINDS.items():
            group, plural = key
            version = self.kube.preferred(group)
            served = self.kube.served(f"{group}/{version}") if version else None
            res = (served or {}).get(kind)
            if res is None:
                missing.append(f"{plural}.{group}")
                continue
            self.inputs[key] = res
        if missing:
            raise StartupError(
                "the SMI CRDs are not installed (missing: " + ", ".join(missing) + "); install "
                "them from crds/ (kubectl apply -f crds/) or with the Helm chart")
        for (group, plural), kind in CONTEXT_KINDS.items():
            self.inputs[(group, plural)] = Resource(group, "v1", plural, kind)
        self.inputs[NAMESPACES] = Resource("", "v1", "namespaces", "Namespace", namespaced=False)

    def output(self, api_version: str, kind: str) -> Resource | None:
        return self.outputs.get((api_version, kind))


# ---- the operator ----------------------------------------------------------------------


class Operator:
    """The state of one running operator: cache, discovery, loop, metrics."""

    def __init__(self, config: OperatorConfig, kube: Kube, metrics: Metrics | None = None) -> None:
        self.config = config
        self.kube = kube
        self.store = Store()
        self.parser = reconcile.Parser()
        self.discovery = Discovery(kube, config)
        self.metrics = metrics or Metrics()
        kube.on_write = self._count_write
        self.ready = asyncio.Event()
        self.no_status: set[Key] = set()
        self._backoff: dict[str, float] = {}
        self._managed: dict[str, dict[str, int]] = {}
        self._findings: dict[str, dict[str, int]] = {}
        self.limiter = DriftLimiter()
        self._tasks: list[asyncio.Task[None]] = []
        self._relists: set[asyncio.Task[None]] = set()
        self.filled = asyncio.Event()  # kopf's first listing of every watched kind is cached
        self._unlisted: set[tuple[Key, str | None]] = set()
        self._status_due: dict[str, reconcile.Plan] = {}  # per namespace, the newest plan
        self._status_since = 0.0
        self._runners: list[web.AppRunner] = []
        self.election: election.Election | None = None
        self._leading = asyncio.Event()  # set from the election thread when this replica leads
        self._loop: asyncio.AbstractEventLoop | None = None
        if config.leader_election:
            namespace = config.leader_election_namespace or election.default_namespace()
            elector = election.Elector(
                election.KubeLeases(kube, namespace, config.leader_election_lease), election.identity(),
                election.Timing(config.lease_duration, config.renew_deadline, config.retry_period),
                notify=self._leadership)
            self.election = election.Election(elector)
        else:
            self.metrics.leader.set(1)

    # -- watch keys

    def watch_selectors(self) -> list[tuple[Key, tuple[str, ...]]]:
        """Store key and kopf selector of every watched kind.

        Output kinds are watched at the exact version we write: kopf resolves
        a bare (group, plural) in the group's preferred version only, and
        Linkerd's AuthorizationPolicy is v1alpha1 in a group preferring v1beta3.
        """
        out: list[tuple[Key, tuple[str, ...]]] = [
            (key, _selector(*key)) for key in (*SMI_KINDS, *CONTEXT_KINDS, NAMESPACES)]
        if not self.discovery.profiles:
            self.discovery.refresh_profiles()
        by_key: dict[Key, list[tuple[str, str]]] = {}
        for (api_version, kind), key in sorted(reconcile.output_resources(self.config).items()):
            by_key.setdefault(key, []).append((api_version, kind))
        for key, kinds in by_key.items():
            # A kind several versions of which may be written (TCPRoute v1 or v1alpha2) is
            # watched in the version the profiles write: the one this cluster serves.
            api_version = next((v for v, kind in kinds for p in self.discovery.profiles.values()
                                if _writes(p, v, kind)), kinds[0][0])
            out.append((key, (key[0], api_version.rsplit("/", 1)[1], key[1])))
        return out

    # -- start-up

    def discover(self) -> None:
        """Resolve what to watch (blocking; run in a thread) and what start-up must wait for."""
        self.discovery.resolve_inputs()
        self.discovery.refresh_outputs()
        if not self.config.all_namespaces:
            # The Namespace watch is cluster-wide; read the watched ones (their labels
            # choose the mesh) even before it has listed.
            self.apply_lists(self.fetch_lists(NAMESPACES))
        namespaces: list[str | None] = list(self.config.namespaces) or [None]
        served = {(r.group, r.plural) for r in self.discovery.outputs.values() if r}
        self._unlisted = {(key, None if key == NAMESPACES else ns)
                          for key, _ in self.watch_selectors()
                          if key in self.discovery.inputs or key in served
                          for ns in namespaces}

    def listed(self, key: Key, namespace: str | None, what: kopf_compat.Listing,
               body: Mapping[str, Any] | None) -> None:
        """kopf's listing of *key* (in *namespace*): fill the cache, or look for missed deletions."""
        if what is kopf_compat.Listing.OBJECT:
            if body is not None and (key != ("", "pods") or _unowned(body)):
                self.store.upsert(key, body)
        elif what is kopf_compat.Listing.RELISTED:
            self.relisted(key, namespace)
        else:
            self._unlisted.discard((key, namespace))
            if not self._unlisted:
                self.filled.set()

    async def initial_fill(self) -> None:
        """Wait until kopf's first listings filled the cache, so nothing looks missing.

        A stream that does not list in time (e.g. a kind kopf's own discovery
        has not seen yet) is read by a LIST of ours instead.
        """
        try:
            await asyncio.wait_for(self.filled.wait(), FILL_TIMEOUT)
        except TimeoutError:
            late = sorted({key for key, _ in self._unlisted})
            log.warning("no initial listing from kopf for %s after %.0fs; listing them directly",
                        ", ".join(k[1] for k in late), FILL_TIMEOUT)
            for key in late:
                self.apply_lists(await asyncio.to_thread(self.fetch_lists, key))
        self.store.mark_all()

    def fetch_lists(self, only: Key | None = None) -> list[tuple[Key, list[dict[str, Any]], int]]:
        """Read every watched kind, or *only* one (blocking; run in a thread).

        Watches resumed after a "410 Gone" re-list without reporting what was
        deleted meanwhile: :meth:`relist` runs this for the kind kopf re-listed,
        and a periodic full list catches anything else.
        """
        namespaces: list[str | None] = list(self.config.namespaces) or [None]
        out: list[tuple[Key, list[dict[str, Any]], int]] = []
        resources = [*self.discovery.inputs.items(),
                     *(((r.group, r.plural), r) for r in self.discovery.outputs.values() if r)]
        for key, res in resources:
            if only is not None and key != only:
                continue
            if key == NAMESPACES and not self.config.all_namespaces:
                out.append((key, [b for ns in self.config.namespaces
                                  if (b := self.kube.get(res, None, ns)) is not None], 0))
                continue
            bodies: list[dict[str, Any]] = []
            listed_at = 0
            for ns in ([None] if key == NAMESPACES else namespaces):
                items, version = self.kube.list_at(res, ns)
                bodies.extend(items)
                listed_at = version if not listed_at else min(listed_at, version)
            if key == ("", "pods"):
                bodies = [b for b in bodies if not (b.get("metadata") or {}).get("ownerReferences")]
            out.append((key, bodies, listed_at))
        return out

    def apply_lists(self, lists: list[tuple[Key, list[dict[str, Any]], int]]) -> None:
        """Merge fetched lists into the cache (on the event loop, where handlers write too)."""
        for key, bodies, listed_at in lists:
            self.store.replace(key, bodies, listed_at)

    def relisted(self, key: Key, namespace: str | None) -> None:
        """kopf re-listed *key* after its watch broke: find the deletions it cannot report."""
        log.info("watch of %s re-listed; re-reading it for deletions missed meanwhile",
                 key[1], extra={"namespace": namespace})
        task = asyncio.get_running_loop().create_task(self.relist(key))
        self._relists.add(task)
        task.add_done_callback(self._relists.discard)

    async def relist(self, key: Key) -> None:
        try:
            self.apply_lists(await asyncio.to_thread(self.fetch_lists, key))
        except ApiError as exc:
            # The periodic re-list comes back to it.
            log.warning("re-list of %s failed: %s", key[1], exc)

    # -- the loop

    async def run_loop(self) -> None:
        sem = asyncio.Semaphore(WORKERS)

        async def one(ns: str) -> None:
            async with sem:
                await self.reconcile_namespace(ns)

        await self.initial_fill()
        self._start_election()
        passes = 0
        while True:
            if not self.may_write():
                await self._standby()
                continue
            overdue = time.monotonic() - self._status_since > STATUS_MAX_DELAY
            if self._status_due and (not self.store.dirty or overdue):
                await self.flush_statuses()
                continue
            if passes and not self.ready.is_set():
                self.ready.set()  # the first pass is written, its statuses included
            await self.store.wakeup.wait()
            await asyncio.sleep(DEBOUNCE)
            await asyncio.gather(*(one(ns) for ns in self.store.take_dirty()))
            passes += 1

    # -- leader election

    def may_write(self) -> bool:
        """Whether this replica writes now: no election, or it holds the Lease and may still write."""
        return self.election is None or self.election.elector.write_budget() > 0

    def _start_election(self) -> None:
        """Join the election once the cache is warm, so a cold replica never takes the Lease."""
        if self.election is None:
            return
        self._loop = asyncio.get_running_loop()
        self.kube.fence = self.election.elector.write_budget
        e = self.election.elector
        leases = e.leases
        log.info("leader election on Lease %s/%s as %s",
                 getattr(leases, "namespace", "?"), getattr(leases, "name", "?"), e.identity,
                 extra={"identity": e.identity})
        self.election.start()

    async def _standby(self) -> None:
        """Wait, cache warm and ready, until this replica leads; then mark everything for a full pass."""
        self._status_due.clear()
        if not self.ready.is_set() and self.election is not None:
            # The first round decides: a replica about to lead is ready after its first pass.
            await asyncio.to_thread(self.election.first_round.wait, self.config.renew_deadline)
            if self.may_write():
                return
        self.ready.set()  # a standby serves metrics and is ready to take over
        while not self.may_write():
            self._leading.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leading.wait(), self.config.retry_period)
        # A new holder's first pass covers everything; it writes nothing where nothing changed.
        self.store.mark_all()

    def _leadership(self, leading: bool, holder: str) -> None:
        """Called from the election thread: metrics now, the loop woken on its own thread."""
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            self.metrics.leader_transitions.inc()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, leading)

    def _wake(self, leading: bool) -> None:
        if leading:
            self._leading.set()
        else:
            self.store.wakeup.set()  # the loop notices it may no longer write

    def resign(self, drain_timeout: float = 10.0) -> None:
        """Stop writing, let the writes in flight finish, then release the Lease (blocking)."""
        if self.election is None:
            return
        self.election.elector.close()
        deadline = time.monotonic() + drain_timeout
        while self.kube.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        self.election.stop()
        self.election.elector.release()

    async def flush_statuses(self) -> None:
        """Write the statuses (and Events) of every namespace's newest plan."""
        due, self._status_due = self._status_due, {}

        async def one(ns: str, plan: reconcile.Plan) -> None:
            try:
                statuses, events = await asyncio.to_thread(self._write_statuses, plan)
                self._remember(plan)
            except Exception as exc:  # retried, never fatal: see _failed
                self._failed(ns, "status", exc)
                return
            if statuses or events:
                log.info("statuses written", extra={"namespace": ns, "statuses": statuses,
                                                    "events": events, "writes": statuses + events})

        await asyncio.gather(*(one(ns, plan) for ns, plan in sorted(due.items())))

    async def periodic(self) -> None:
        last_resync = time.monotonic()
        while True:
            await asyncio.sleep(self.config.discovery_seconds)
            try:
                changed = await asyncio.to_thread(self.discovery.refresh_outputs)
            except ApiError as exc:
                log.warning("discovery failed: %s", exc)
                continue
            if changed or time.monotonic() - last_resync > self.config.resync_seconds:
                last_resync = time.monotonic()
                try:
                    self.apply_lists(await asyncio.to_thread(self.fetch_lists))
                except ApiError as exc:
                    log.warning("re-list failed: %s", exc)
                self.parser.forget_except(self.store.identities())
                self.store.mark_all()

    async def reconcile_namespace(self, ns: str) -> None:
        start = time.perf_counter()
        writes_before = self.kube.writes
        try:
            plan = reconcile.plan_namespace(ns, self.store, self.config, self.parser,
                                            self.discovery.output, profiles=self.discovery.profiles)
            self._throttle(plan)
            await asyncio.to_thread(reconcile.execute, plan, self.kube)
            self._remember(plan)
        except Exception as exc:  # retried, never fatal: see _failed
            self._failed(ns, "reconcile", exc)
            return
        self._backoff.pop(ns, None)
        if not self._status_due:
            self._status_since = time.monotonic()
        self._status_due[ns] = plan
        elapsed = time.perf_counter() - start
        self.metrics.reconciles.labels("ok").inc()
        self.metrics.duration.observe(elapsed)
        writes = self.kube.writes - writes_before
        self._gauges(ns, plan)
        log.info("reconciled", extra={
            "namespace": ns, "duration_ms": round(elapsed * 1000, 2), "smi_objects": len(plan.outcomes),
            "creates": sum(w.verb == "create" for w in plan.writes),
            "applies": sum(w.verb == "apply" for w in plan.writes), "deletes": len(plan.deletes),
            "writes": writes,
            # DeepDiff costs milliseconds an object: describe a few repairs, never updates.
            "repairs": sum(w.is_repair for w in plan.writes),
            "drift": [w.describe() for w in [w for w in plan.writes if w.is_repair][:3]]})

    def _remember(self, plan: reconcile.Plan) -> None:
        """Cache what our writes returned, so their watch echoes cause no second pass."""
        for key, body in plan.written:
            self.store.upsert(key, body, mark=False)
        plan.written.clear()

    def _count_write(self, verb: str, status: int) -> None:
        if 0 < status < 400:
            self.metrics.writes.labels(verb).inc()
        else:
            self.metrics.write_errors.labels(verb, str(status)).inc()

    def _throttle(self, plan: reconcile.Plan) -> None:
        """Hold back repairs of objects someone keeps changing; come back when allowed."""
        now = time.monotonic()
        kept: list[reconcile.Write] = []
        for w in plan.writes:
            if self.limiter.allow(w, now):
                kept.append(w)
                continue
            self.metrics.throttled.inc()
            delay = self.limiter.retry_after(w, now)
            log.warning("%s %s keeps being changed by another writer; repair postponed %.0fs",
                        w.obj["kind"], w.obj["metadata"]["name"], delay,
                        extra={"namespace": plan.namespace})
            asyncio.get_running_loop().call_later(delay, self.store.mark, plan.namespace)
        plan.writes = kept

    def _failed(self, ns: str, what: str, exc: Exception) -> None:
        """A pass or status flush failed: retry the namespace with backoff, never crash.

        Transient API errors are expected (a restart, throttling); anything
        else is a bug or an unexpected refusal, logged with its traceback.
        """
        if isinstance(exc, Fenced):
            # Leadership ended mid-pass; the next holder's full pass redoes it.
            log.info("%s of %s stopped: no longer the leader", what, ns, extra={"namespace": ns})
            return
        if isinstance(exc, TransientApiError):
            self._retry(ns, "transient", exc)
            return
        log.exception("%s of %s failed", what, ns)
        self._retry(ns, type(exc).__name__, exc)

    def _retry(self, ns: str, reason: str, exc: Exception) -> None:
        self.metrics.reconciles.labels("error").inc()
        self.metrics.errors.labels(reason).inc()
        delay = min(MAX_BACKOFF, self._backoff.get(ns, 0.5) * 2)
        self._backoff[ns] = delay
        delay *= random.uniform(0.8, 1.2)  # jitter, not security
        log.warning("reconcile of %s will be retried in %.1fs: %s", ns, delay, exc,
                    extra={"namespace": ns, "reason": reason})
        asyncio.get_running_loop().call_later(delay, self.store.mark, ns)

    def _gauges(self, ns: str, plan: reconcile.Plan) -> None:
        self._managed[ns] = dict(plan.managed)
        counts: dict[str, int] = {}
        for out in plan.outcomes.values():
            for f in out.findings:
                counts[f.reason.value] = counts.get(f.reason.value, 0) + 1
        self._findings[ns] = counts
        for gauge, data in ((self.metrics.managed, self._managed), (self.metrics.findings, self._findings)):
            totals: dict[str, int] = {}
            for per_ns in data.values():
                for k, v in per_ns.items():
                    totals[k] = totals.get(k, 0) + v
            gauge.clear()
            for k, v in totals.items():
                gauge.labels(k).set(v)

    def _write_statuses(self, plan: reconcile.Plan) -> tuple[int, int]:
        """Patch the statuses that change and post their Events; (statuses, events) written."""
        todo: list[tuple[reconcile.Outcome, dict[str, Any], Mapping[str, Any]]] = []
        for out in plan.outcomes.values():
            old = out.body.get("status") or {}
            new = reconcile.merge_times(reconcile.desired_status(out, self.config), old)
            if reconcile.status_changed(new, old):
                log.debug("status of %s changes", out.ref, extra={"old": old, "new": new})
                todo.append((out, new, old))
        written: list[int] = []
        events: list[int] = []

        def write(item: tuple[reconcile.Outcome, dict[str, Any], Mapping[str, Any]]) -> None:
            out, new, old = item
            meta = out.body["metadata"]
            for reason, message in reconcile.events_for(new, old):
                self.kube.event(out.body, reason, message)
                events.append(1)
            if out.key in self.no_status:
                return
            res = self.discovery.inputs[out.key]
            body = self.kube.patch_status(res, meta["namespace"], meta["name"], new)
            if body is None:
                # The cluster's CRD has no status subresource: say it once, keep working.
                self.no_status.add(out.key)
                log.warning("%s has no status subresource; conditions are reported as events only",
                            res.plural)
                return
            if body:
                plan.written.append((out.key, body))
            written.append(1)

        reconcile.run_all(write, todo)
        return len(written), len(events)

    # -- servers

    async def serve(self) -> None:
        """/healthz and /readyz on the health port, /metrics on the metrics port."""
        async def healthz(_: web.Request) -> web.Response:
            dead = [t for t in self._tasks if t.done()]
            if self.election is not None and self.election.stuck():
                return web.Response(status=500, text="leader election stuck\n")
            return web.Response(status=500 if dead else 200, text="dead loop\n" if dead else "ok\n")

        async def readyz(_: web.Request) -> web.Response:
            ok = self.ready.is_set()
            return web.Response(status=200 if ok else 503, text="ok\n" if ok else "starting\n")

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=prom.generate_latest(self.metrics.registry),
                                headers={"Content-Type": prom.CONTENT_TYPE_LATEST})

        for port, routes in ((self.config.health_port, [web.get("/healthz", healthz),
                                                        web.get("/readyz", readyz)]),
                             (self.config.metrics_port, [web.get("/metrics", metrics)])):
            app = web.Application()
            app.add_routes(routes)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "0.0.0.0", port).start()  # probes come from the kubelet

    # -- kopf

    def register(self, registry: kopf.OperatorRegistry) -> None:
        """Event handlers for every watched kind, plus start-up and clean-up."""
        kopf_compat.install()
        for key, selector in self.watch_selectors():
            when = _unowned if key == ("", "pods") else None
            kopf.on.event(*selector, registry=registry, when=when)(self._handler(key))

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            # kopf watches with exactly the credentials our own client was built with.
            return connection_info(self.kube.api.configuration)

        @kopf.on.startup(registry=registry)
        async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.posting.enabled = False  # our own Events carry the findings
            settings.watching.server_timeout = 300
            settings.networking.request_timeout = 60
            # kopf's per-object worker keeps the object's last decoded event until it
            # idles out; we copy what we need at once, so let the rest go soon.
            settings.queueing.idle_timeout = 0.5
            settings.persistence.finalizer = "smi2mesh.io/kopf"  # never set: no stateful handlers
            # kopf_compat takes the first listing's objects from the LIST kopf reads;
            # streamed initial lists would arrive as ordinary watch events instead.
            settings.watching.initial_streaming = False
            kopf_compat.on_listed(settings, self.listed)
            await asyncio.to_thread(self.discover)
            await self.serve()
            self._tasks = [asyncio.create_task(self.run_loop()), asyncio.create_task(self.periodic())]

        @kopf.on.cleanup(registry=registry)
        async def cleanup(**_: Any) -> None:
            # Blocking on purpose: nothing else may run between the last write and the release.
            self.resign()
            tasks = [*self._tasks, *self._relists]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for runner in self._runners:
                await runner.cleanup()

    def _handler(self, key: Key) -> Any:
        # Async on purpose: kopf runs plain functions in a thread pool, and the
        # cache (and its asyncio.Event) must only change on the event loop,
        # where plans iterate it.
        async def on_event(event: Mapping[str, Any], **_: Any) -> None:
            body = event.get("object")
            if not isinstance(body, Mapping):
                return
            if event.get("type") == "DELETED":
                self.store.remove(key, body)
            else:
                self.store.upsert(key, body)
        on_event.__name__ = f"watch_{key[1]}"
        return on_event


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kopf's view of a kubernetes.client.Configuration (token or client certificate)."""
    auth = str((cfg.api_key or {}).get("authorization") or cfg.api_key.get("BearerToken") or "")
    scheme, _, token = auth.partition(" ") if " " in auth else ("Bearer", "", auth)
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert or None, insecure=not cfg.verify_ssl,
        scheme=scheme if token else None, token=token or None,
        certificate_path=cfg.cert_file or None, private_key_path=cfg.key_file or None)


def _writes(profile: Profile, api_version: str, kind: str) -> bool:
    """Whether *profile* writes *kind* in *api_version*."""
    try:
        return profile.api(api_version.rsplit("/", 1)[0], kind) == api_version
    except KeyError:
        return False


def _unowned(body: Mapping[str, Any], **_: Any) -> bool:
    return not (body.get("metadata") or {}).get("ownerReferences")


def _selector(group: str, plural: str) -> tuple[str, ...]:
    # kopf takes "v1" for the core group; other groups resolve their preferred version.
    return ("v1", plural) if not group else (group, plural)


def preflight(kube: Kube) -> None:
    """Fail fast, with a clear message, when the API server cannot be reached."""
    try:
        kube.request("GET", "/version", what="reach the API server")
    except ApiError as exc:
        raise StartupError(f"cannot reach the Kubernetes API server: {exc}") from exc


def run(config: OperatorConfig) -> int:
    """Run the operator until interrupted; returns the process exit code."""
    setup_logging(config.log_level)
    if ("consul" in config.meshes and config.consul_namespaces is ConsulNamespaces.OFF
            and not config.all_namespaces):
        log.warning("--consul-namespaces off with --namespace: a Consul CE source is checked "
                    "against the ServiceAccounts and Services of the watched namespaces only; "
                    "a same-named one elsewhere would also match it")
    try:
        kube = Kube.from_environment()
        preflight(kube)
        operator = Operator(config, kube)
        operator.discovery.resolve_inputs()
    except (StartupError, kubernetes.config.ConfigException) as exc:
        log.error("%s", exc)
        sys.stderr.write(f"error: {exc}\n")
        return 1
    registry = kopf.OperatorRegistry()
    operator.register(registry)
    asyncio.run(kopf.operator(
        registry=registry,
        clusterwide=config.all_namespaces,
        namespaces=config.namespaces,
        standalone=True,  # one writer is elected on a Lease (election.py), not by kopf peering
    ))
    return 0
