"""An in-memory cache of every watched object, and the namespaces to reconcile.

Watch events only update this cache and mark the object's namespace dirty;
the reconcile loop then recomputes whole namespaces from the cache. That is
what makes reconciliation level-based: it never acts on what an event said
changed, only on the current state.

Bodies are slimmed on the way in to what reconciling reads, which keeps
memory flat as clusters grow (Deployments and managedFields are large).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from smi2mesh import smi

Body = dict[str, Any]
Key = tuple[str, str]  # (API group, plural)

SMI_KINDS: Mapping[Key, str] = {
    ("split.smi-spec.io", "trafficsplits"): "TrafficSplit",
    ("access.smi-spec.io", "traffictargets"): "TrafficTarget",
    ("specs.smi-spec.io", "httproutegroups"): "HTTPRouteGroup",
    ("specs.smi-spec.io", "tcproutes"): "TCPRoute",
    ("specs.smi-spec.io", "udproutes"): "UDPRoute",
}
CONTEXT_KINDS: Mapping[Key, str] = {
    ("", "services"): "Service",
    ("apps", "deployments"): "Deployment",
    ("apps", "statefulsets"): "StatefulSet",
    ("apps", "daemonsets"): "DaemonSet",
    ("", "pods"): "Pod",
    ("", "serviceaccounts"): "ServiceAccount",
}
# Kinds a profile may write that translation also reads as context; they are
# watched as outputs (only when their CRD is served). A Linkerd ServiceProfile
# makes the HTTPRoutes of its Service inert, whoever wrote it.
OUTPUT_CONTEXT_KINDS: Mapping[Key, str] = {
    ("linkerd.io", "serviceprofiles"): "ServiceProfile",
}
# Kinds whose names are identities across the cluster: Consul CE cannot tell
# same-named services of two namespaces apart (see :class:`IdentityView`).
IDENTITY_KINDS: frozenset[Key] = frozenset((("", "services"), ("", "serviceaccounts")))
# Pod annotations translation reads (consul-k8s: which port a pod registers).
POD_ANNOTATION_PREFIX = "consul.hashicorp.com/connect-service"
NAMESPACES: Key = ("", "namespaces")
VERSION_KEY = "smi2mesh.io/written-as"
MAX_TOMBSTONES = 50_000


def written_version(body: Mapping[str, Any]) -> str:
    """The apiVersion an SMI object's spec was last written in.

    The SMI CRDs convert with ``strategy: None``, so the API server returns
    any object under whatever version is asked for, fields untouched. The
    managers that wrote the object record the version they used; the newest
    one that is not a status write tells how to read the fields.
    """
    entries = [m for m in (body.get("metadata", {}).get("managedFields") or [])
               if m.get("subresource") != "status" and m.get("apiVersion") in _SMI_VERSIONS]
    entries.sort(key=lambda m: m.get("time") or "")
    return str(entries[-1]["apiVersion"]) if entries else str(body.get("apiVersion", ""))


_SMI_VERSIONS = frozenset(av for av, _ in smi.VERSIONS)


def _meta(body: Mapping[str, Any], *keys: str) -> Body:
    meta = body.get("metadata") or {}
    return {k: meta[k] for k in keys if k in meta}


def slim(key: Key, body: Mapping[str, Any]) -> Body:
    """Keep only what reconciling reads, as a copy that shares nothing with *body*.

    kopf decodes every watch event into a fresh body; a slimmed view holding
    references into it (spec, labels, ...) would keep those decoded pieces,
    scattered across the allocator, alive for as long as the object exists.
    """
    return detach(_slim(key, body))


def detach(value: Body) -> Body:
    """A deep copy of JSON data (the C codec is faster than ``copy.deepcopy``)."""
    copied: Body = json.loads(json.dumps(value, separators=(",", ":")))
    return copied


def _slim(key: Key, body: Mapping[str, Any]) -> Body:
    api, kind = body.get("apiVersion"), body.get("kind")
    if key in SMI_KINDS:
        out = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        out["metadata"] = _meta(body, "name", "namespace", "uid", "generation", "labels",
                                "annotations", "resourceVersion", "creationTimestamp")
        out["status"] = body.get("status") or {}
        out[VERSION_KEY] = written_version(body)
        return out
    if key == NAMESPACES:
        return {"apiVersion": api, "kind": kind, "metadata": _meta(body, "name", "labels")}
    if key in CONTEXT_KINDS:
        spec = body.get("spec") or {}
        meta = _meta(body, "name", "namespace", "labels", "ownerReferences")
        if key == ("", "services"):
            return {"apiVersion": api, "kind": kind, "metadata": meta,
                    "spec": {"selector": spec.get("selector"), "ports": spec.get("ports")}}
        if key == ("", "serviceaccounts"):
            return {"apiVersion": api, "kind": kind, "metadata": _meta(body, "name", "namespace")}
        if key == ("", "pods"):
            meta["annotations"] = _pod_annotations(body.get("metadata") or {})
            return {"apiVersion": api, "kind": kind, "metadata": meta,
                    "spec": {"serviceAccountName": spec.get("serviceAccountName"),
                             "containers": _container_ports(spec)}}
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        tspec = template.get("spec") or {}
        return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": {
            "selector": spec.get("selector"),
            "template": {"metadata": {"labels": tmeta.get("labels"),
                                      "annotations": _pod_annotations(tmeta)},
                         "spec": {"serviceAccountName": tspec.get("serviceAccountName"),
                                  "containers": _container_ports(tspec)}}}}
    # A generated kind: ours or someone else's; keep the body, not its history.
    out = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    out["metadata"] = _meta(body, "name", "namespace", "uid", "labels", "annotations",
                            "ownerReferences", "resourceVersion")
    return out


def _container_ports(pod_spec: Mapping[str, Any]) -> list[Body]:
    """Each container's declared ports only (their order matters: consul-k8s uses the first)."""
    return [{"ports": [{k: p[k] for k in ("name", "containerPort", "protocol") if k in p}
                       for p in (c.get("ports") or []) if isinstance(p, Mapping)]}
            for c in pod_spec.get("containers") or [] if isinstance(c, Mapping)]


def _pod_annotations(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (meta.get("annotations") or {}).items()
            if k.startswith(POD_ANNOTATION_PREFIX)}


class IdentityView(Mapping[str, Iterable[str]]):
    """Identity name -> namespaces having it, over the whole cache; remembers what was read.

    Translating one namespace at a time, Consul CE still needs to know whether
    another namespace has a ServiceAccount or Service of a source's name. The
    names read are recorded, so that a namespace is re-planned when one of
    them appears or goes elsewhere (:meth:`Store.record_reads`).
    """

    def __init__(self, index: Mapping[str, Mapping[str, int]]) -> None:
        self._index = index
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> Iterable[str]:
        self.read.add(name)
        return tuple(self._index.get(name, ()))

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:  # resourceVersions are opaque; etcd's are integers
        return 0


def _comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (body.get("metadata") or {}).items() if k != "resourceVersion"}
    return out


@dataclass
class Store:
    """Watched objects by kind, namespace and name; plus the dirty-namespace queue."""

    objects: dict[Key, dict[str, dict[str, Body]]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # uids seen deleted or replaced, oldest first (bounded), to ignore late events.
    gone: dict[str, None] = field(default_factory=dict)
    # Identity name -> namespace -> how many IDENTITY_KINDS objects there carry it.
    names: dict[str, dict[str, int]] = field(default_factory=dict)
    # Identity name -> namespaces whose last plan read it, and the reverse.
    readers: dict[str, set[str]] = field(default_factory=dict)
    reads: dict[str, set[str]] = field(default_factory=dict)

    def identity_view(self) -> IdentityView:
        """A recording view of :attr:`names` for one plan."""
        return IdentityView(self.names)

    def record_reads(self, namespace: str, names: Iterable[str]) -> None:
        """Remember which identity names *namespace*'s plan depended on (replacing the last)."""
        new = set(names)
        old = self.reads.get(namespace, set())
        for name in old - new:
            found = self.readers.get(name)
            if found is not None:
                found.discard(namespace)
                if not found:
                    del self.readers[name]
        for name in new - old:
            self.readers.setdefault(name, set()).add(namespace)
        if new:
            self.reads[namespace] = new
        else:
            self.reads.pop(namespace, None)

    def _identity(self, key: Key, namespace: str, name: str, delta: int) -> None:
        """Count an identity object in or out; re-plan the readers when its namespaces change."""
        if key not in IDENTITY_KINDS or not name:
            return
        by_ns = self.names.setdefault(name, {})
        count = by_ns.get(namespace, 0) + delta
        if count > 0:
            by_ns[namespace] = count
            changed = count == delta  # first one in this namespace
        else:
            changed = by_ns.pop(namespace, None) is not None
            if not by_ns:
                del self.names[name]
        if changed:
            for reader in self.readers.get(name, ()):
                self.mark(reader)

    def upsert(self, key: Key, body: Mapping[str, Any], mark: bool = True) -> None:
        """Cache *body*; mark its namespace only if something a plan reads changed.

        Every write of ours comes back as a watch event (the object, the SMI
        object's status), and a second pass over the namespace for it would
        find nothing to do. So the answer to each write is cached at once with
        ``mark=False`` (only over an older copy: a watch event may already
        have brought a newer one), and its echo then changes nothing a plan
        reads.

        kopf handles each uid in its own worker, so after a delete and a
        re-create under the same name a late event of the old uid can arrive
        after the new one's: events of uids known to be gone are ignored.
        """
        meta = body.get("metadata") or {}
        ns, name, uid = meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or ""
        if key == NAMESPACES:
            ns = name
        if uid and uid in self.gone:
            return
        by_name = self.objects.setdefault(key, {}).setdefault(ns, {})
        old = by_name.get(name)
        if not mark and old is not None and _rv(old) >= _rv(body):
            return
        new = slim(key, body)
        old_uid = ((old or {}).get("metadata") or {}).get("uid") or ""
        if old_uid and uid and old_uid != uid:
            self._bury(old_uid)
        by_name[name] = new
        if old is None:
            self._identity(key, ns, name, 1)
        if mark and (old is None or _comparable(old) != _comparable(new)):
            self.mark(ns)

    def remove(self, key: Key, body: Mapping[str, Any]) -> None:
        """Forget *body*, but only the object with its uid (not a re-created namesake)."""
        meta = body.get("metadata") or {}
        ns, name, uid = meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or ""
        if key == NAMESPACES:
            ns = name
        if uid:
            self._bury(uid)
        by_name = self.objects.get(key, {}).get(ns, {})
        cached_uid = ((by_name.get(name) or {}).get("metadata") or {}).get("uid") or ""
        if not uid or not cached_uid or cached_uid == uid:
            if by_name.pop(name, None) is not None:
                self._identity(key, ns, name, -1)
            self.mark(ns)

    def _bury(self, uid: str) -> None:
        self.gone[uid] = None
        if len(self.gone) > MAX_TOMBSTONES:
            self.gone.pop(next(iter(self.gone)))

    def replace(self, key: Key, bodies: Iterable[Mapping[str, Any]], listed_at: int = 0) -> None:
        """Reconcile the cache of one kind with a full list read at *listed_at*.

        Objects missing from the list are dropped (a deletion the watch missed,
        e.g. across a "410 Gone"), unless they changed after the list was read.
        Cached copies newer than the listed ones are kept. Only namespaces
        where something changed are marked.
        """
        by_ns = self.objects.setdefault(key, {})
        seen: set[tuple[str, str]] = set()
        for body in bodies:
            meta = body.get("metadata") or {}
            ns = meta.get("name") if key == NAMESPACES else meta.get("namespace")
            seen.add((ns or "", meta.get("name") or ""))
            cached = by_ns.get(ns or "", {}).get(meta.get("name") or "")
            if cached is not None and _rv(cached) > _rv(body):
                continue
            self.upsert(key, body)
        for ns, objs in list(by_ns.items()):
            for name, cached in list(objs.items()):
                if (ns, name) not in seen and (not listed_at or _rv(cached) <= listed_at):
                    del objs[name]
                    self._identity(key, ns, name, -1)
                    self.mark(ns)

    def mark(self, namespace: str) -> None:
        if namespace:
            self.dirty.add(namespace)
            self.wakeup.set()

    def mark_all(self) -> None:
        for by_ns in self.objects.values():
            for ns in by_ns:
                self.mark(ns)

    def take_dirty(self) -> list[str]:
        out = sorted(self.dirty)
        self.dirty.clear()
        self.wakeup.clear()
        return out

    def in_namespace(self, key: Key, namespace: str) -> dict[str, Body]:
        return self.objects.get(key, {}).get(namespace, {})

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        body = self.objects.get(NAMESPACES, {}).get(namespace, {}).get(namespace)
        return ((body or {}).get("metadata") or {}).get("labels") or {}

    def identities(self) -> set[str]:
        """Parser cache keys of every cached object (uid, else kind/namespace/name)."""
        out: set[str] = set()
        for by_ns in self.objects.values():
            for objs in by_ns.values():
                for body in objs.values():
                    meta = body.get("metadata") or {}
                    out.add(str(meta.get("uid") or
                                f"{body.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"))
        return out
