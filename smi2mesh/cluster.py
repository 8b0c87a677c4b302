"""Reading SMI policy and its context from a live cluster, read-only, for the CLI.

``translate --from-cluster``, ``report --from-cluster`` and ``plan`` read
through here. Each SMI object is read in the version its spec was written
in (``metadata.managedFields``, as the operator reads it: the SMI CRDs
convert with ``strategy: None``), then handed to the same parser as files.
Context is what the operator reads (Services, Deployments, StatefulSets,
DaemonSets, unowned Pods) plus ServiceAccounts.

Lists report each page to :attr:`Connection.progress` (a line on stderr
when it is a terminal: objects per kind and per second).

Only GET requests are made. Any failure is a :class:`ClusterError` with one
line naming what is missing: the kubeconfig or context, the API server, a
permission (the verb, resource and namespace), or the SMI CRDs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from smi2mesh.inputs import expand_lists
from smi2mesh.migration import ClusterError
from smi2mesh.operator.kube import ApiError, Kube, Resource, TransientApiError
from smi2mesh.operator.store import CONTEXT_KINDS, SMI_KINDS, Key, written_version
from smi2mesh.progress import Progress

SERVICE_ACCOUNTS: Key = ("", "serviceaccounts")
_IN_CLUSTER_NS = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Server-managed metadata that no parser reads and no file carries.
_DROPPED_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "selfLink")


@dataclass
class Connection:
    """A read-only view of one cluster: which namespaces, and the calls to read them."""

    kube: Kube
    namespaces: tuple[str, ...]  # empty with all_namespaces
    all_namespaces: bool
    where: str  # "context C (server S)", for messages
    namespaces_given: bool = False  # -n given: files do not widen or narrow the scope
    progress: Progress = field(default_factory=lambda: Progress(None))
    _smi: dict[Key, Resource] = field(default_factory=dict)
    _served: dict[str, dict[str, Resource] | None] = field(default_factory=dict)

    # ---- low-level reads, every failure turned into one line -------------------

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except TransientApiError as exc:
            if exc.status == 0:
                raise ClusterError(f"cannot reach the API server of {self.where}: {exc.body}") from None
            raise ClusterError(f"{what}: the API server of {self.where} answered HTTP {exc.status}") from None
        except ApiError as exc:
            if exc.status in (401, 403):
                raise ClusterError(f"{what}: forbidden (HTTP {exc.status}) in {self.where}; "
                                   "ask for read access (RBAC) to it") from None
            raise ClusterError(f"{what}: HTTP {exc.status} from {self.where}") from None

    def served(self, api_version: str) -> dict[str, Resource]:
        """Kinds served in one group/version ({} when it is not served)."""
        if api_version not in self._served:
            self._served[api_version] = self._call(f"discover {api_version}", self.kube.served, api_version)
        return self._served[api_version] or {}

    def resource(self, api_version: str, kind: str) -> Resource | None:
        return self.served(api_version).get(kind)

    def smi_resources(self, *, required: bool = True) -> dict[Key, Resource]:
        """SMI kinds at their preferred versions; a ClusterError when missing and *required*."""
        if self._smi:
            return self._smi
        missing: list[str] = []
        for key, kind in SMI_KINDS.items():
            group, plural = key
            version = self._call(f"discover {group}", self.kube.preferred, group)
            res = self.resource(f"{group}/{version}", kind) if version else None
            if res is None:
                missing.append(f"{plural}.{group}")
            else:
                self._smi[key] = res
        if missing and required:
            raise ClusterError(f"the SMI CRDs are not installed in {self.where} (missing: "
                               f"{', '.join(missing)})", usage=False)
        return self._smi

    def list_objects(self, res: Resource, namespaces: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every object of *res* in the namespaces read (or *namespaces*)."""
        scope: Iterable[str | None] = [None] if self.all_namespaces and namespaces is None \
            else (namespaces if namespaces is not None else self.namespaces)
        out: list[dict[str, Any]] = []
        for ns in scope:
            where = f"in namespace {ns}" if ns else "in all namespaces"
            what = f"list {res.plural}.{res.group or 'core'} {where}"
            if self.progress.enabled:
                page = functools.partial(self.progress.add, res.kind)
                out.extend(self._call(what, functools.partial(self.kube.list, on_page=page), res, ns))
            else:
                out.extend(self._call(what, self.kube.list, res, ns))
        return out

    # ---- what translate reads -----------------------------------------------------

    def context_resources(self) -> dict[Key, Resource]:
        keys = {**CONTEXT_KINDS, SERVICE_ACCOUNTS: "ServiceAccount"}
        return {(g, p): Resource(g, "v1", p, kind) for (g, p), kind in keys.items()}

    def read_documents(self, extra_namespaces: Iterable[str] = (), *,
                       smi_required: bool = True) -> list[tuple[str, object]]:
        """SMI objects (as written) and context of the namespaces read, as parser documents.

        *extra_namespaces* are read too when no namespace was asked for (the
        namespaces of objects given as files); files then decide the scope.
        """
        scope: Sequence[str] | None = None
        if not self.all_namespaces and not self.namespaces_given and extra_namespaces:
            scope = sorted(set(extra_namespaces))
        docs: list[tuple[str, object]] = []
        self.progress.start(f"reading {self.where}")
        for key, res in self.smi_resources(required=smi_required).items():
            for body in self.list_objects(res, scope):
                docs.append((_source(SMI_KINDS[key], body), as_written(body)))
        for key, res in self.context_resources().items():
            for body in self.list_objects(res, scope):
                if key == ("", "pods") and (body.get("metadata") or {}).get("ownerReferences"):
                    continue  # their controllers are read: the operator reads the same
                docs.append((_source(res.kind, body), _clean(body)))
        self.progress.finish()
        return docs


def _source(kind: str, body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"cluster:{kind}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def _clean(body: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (body.get("metadata") or {}).items() if k not in _DROPPED_META}
    return out


def as_written(body: Mapping[str, Any]) -> dict[str, Any]:
    """An SMI object under the apiVersion its spec was last written in, as a file would hold it."""
    out = _clean(body)
    out["apiVersion"] = written_version(body)
    return out


def identity(doc: object) -> tuple[str, str, str, str] | None:
    """(API group, kind, namespace, name) of a document, to tell file and cluster copies apart."""
    if not isinstance(doc, Mapping):
        return None
    meta = doc.get("metadata") or {}
    if not isinstance(meta, Mapping):
        return None
    group = str(doc.get("apiVersion") or "").rpartition("/")[0]
    return (group, str(doc.get("kind")), str(meta.get("namespace") or "default"), str(meta.get("name")))


Docs = list[tuple[str, object]]


def merge(files: Sequence[tuple[str, object]], cluster: Sequence[tuple[str, object]]) -> Docs:
    """File documents, then cluster documents that no file document names: files win."""
    expanded = list(expand_lists(files))
    taken = {identity(doc) for _, doc in expanded}
    return [*expanded, *((src, doc) for src, doc in cluster if identity(doc) not in taken)]


def _kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    if kubeconfig:
        return [kubeconfig]
    env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in env.split(os.pathsep) if p] if env else [str(Path.home() / ".kube" / "config")]
    return [p for p in paths if Path(p).expanduser().is_file()]


def connect(kubeconfig: str | None, context: str | None, namespaces: Sequence[str],
            all_namespaces: bool) -> Connection:
    """A Connection as kubectl would make it: --kubeconfig, else $KUBECONFIG, else ~/.kube/config;
    in a pod without any of them, the in-cluster ServiceAccount."""
    paths = _kubeconfig_paths(kubeconfig)
    if kubeconfig and not paths:
        raise ClusterError(f"--kubeconfig {kubeconfig}: no such file")
    default_ns = "default"
    if paths:
        try:
            contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=os.pathsep.join(paths))
            chosen = next((c for c in contexts if c["name"] == context), None) if context else active
            if chosen is None:
                raise ClusterError(f"--context {context}: no such context in {os.pathsep.join(paths)}")
            api = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=os.pathsep.join(paths), context=chosen["name"])
        except kubernetes.config.ConfigException as exc:
            raise ClusterError(f"kubeconfig {os.pathsep.join(paths)}: {exc}") from None
        default_ns = (chosen.get("context") or {}).get("namespace") or "default"
        where = f"context {chosen['name']} ({api.configuration.host})"
    elif context:
        raise ClusterError(f"--context {context}: no kubeconfig found ($KUBECONFIG, ~/.kube/config)")
    else:
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            raise ClusterError("no cluster configured: no kubeconfig ($KUBECONFIG, ~/.kube/config, "
                               "--kubeconfig) and not running in a pod") from None
        api = kubernetes.client.ApiClient(configuration)
        if _IN_CLUSTER_NS.is_file():
            default_ns = _IN_CLUSTER_NS.read_text().strip() or "default"
        where = f"the in-cluster configuration ({configuration.host})"
    chosen_ns = tuple(dict.fromkeys(namespaces)) or (() if all_namespaces else (default_ns,))
    return Connection(Kube(api), chosen_ns, all_namespaces, where, namespaces_given=bool(namespaces))
