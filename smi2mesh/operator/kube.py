"""The operator's calls to the Kubernetes API: list, create, apply, delete, status, events.

A thin, blocking layer over the official client's REST machinery (the
reconciler runs it in worker threads). Errors carry meaning:
:class:`TransientApiError` (429, 5xx, connection failures) is retried with
backoff by the caller; :class:`ApiError` is anything else and is reported.
With leader election, a *fence* decides whether a write may be sent at all
(:class:`Fenced` when not); the Lease requests themselves pass unfenced.
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3

from smi2mesh.translators.base import MANAGER

log = logging.getLogger("smi2mesh.kube")
# One line per write at debug level: the failover tests audit these for dual writers.
write_log = logging.getLogger("smi2mesh.writes")
TIMEOUT = 30.0


class ApiError(Exception):
    """The API server refused a request."""

    def __init__(self, status: int, body: Any, what: str) -> None:
        self.status = status
        self.body = body
        reason = body.get("message") if isinstance(body, Mapping) else str(body)
        super().__init__(f"{what}: HTTP {status}: {reason}")


class TransientApiError(ApiError):
    """Worth retrying: throttling, server errors, a lost connection."""


class Fenced(TransientApiError):
    """A write refused before it was sent: this replica does not hold the leader Lease.

    Transient, so a pass stops at it as at a lost connection; the next holder redoes it.
    """

    def __init__(self, what: str) -> None:
        super().__init__(0, "not the leader", what)


@dataclass(frozen=True, slots=True)
class Resource:
    """An API resource: group/version and plural, namespaced or not."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


class Kube:
    """Blocking API calls with one shared client, safe to use from several threads."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api
        self.writes = 0  # counted for tests and the no-churn benchmark
        # Told of every write's outcome: (verb, HTTP status; 0 when no answer came).
        self.on_write: Callable[[str, int], None] | None = None
        self.recent_writes: collections.deque[str] = collections.deque(maxlen=100)
        # Leader election: seconds a write sent now may take (its request timeout);
        # 0 or less refuses it. None: no election, every write goes out.
        self.fence: Callable[[], float] | None = None
        self.in_flight = 0  # fenced writes sent and not yet answered
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster configuration, else KUBECONFIG."""
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(pool_threads=4))

    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = "application/json",
                what: str = "", timeout: float = TIMEOUT, fenced: bool = True) -> tuple[int, Any]:
        """One HTTP request; returns (status, decoded body). 404 is returned, not raised.

        A write (any method but GET) passes the fence first unless *fenced* is
        False, and may then take no longer than the fence allows.
        """
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        guarded = fenced and method != "GET" and self.fence is not None
        if guarded:
            with self._lock:
                budget = self.fence() if self.fence is not None else TIMEOUT
                if budget <= 0:
                    raise Fenced(what or f"{method} {path}")
                self.in_flight += 1
            timeout = min(timeout, budget)
        sent = time.time()
        try:
            m, url, hdrs, data, _ = self.api.param_serialize(
                method, path, query_params=query or [], header_params=headers, body=body,
                auth_settings=["BearerToken"])
            resp = self.api.call_api(m, url, hdrs, data, _request_timeout=timeout)
            resp.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._written(method, what, 0)
            self._audit(method, path, 0, sent, guarded)
            raise TransientApiError(0, str(exc), what or f"{method} {path}") from exc
        except BaseException:
            self._audit(method, path, -1, sent, guarded)
            raise
        try:
            decoded = json.loads(resp.data) if resp.data else None
        except ValueError:
            decoded = resp.data.decode("utf-8", "replace") if isinstance(resp.data, bytes) else None
        status = int(resp.status)
        self._written(method, what, status)
        self._audit(method, path, status, sent, guarded)
        if method != "GET" and status < 400:
            with self._lock:
                self.writes += 1
                self.recent_writes.append(f"{method} {path}")
        if status == 404 and method in ("GET", "DELETE"):
            return status, decoded
        if status == 429 or status >= 500:
            raise TransientApiError(status, decoded, what or f"{method} {path}")
        if status >= 400:
            raise ApiError(status, decoded, what or f"{method} {path}")
        return status, decoded

    def _audit(self, method: str, path: str, status: int, sent: float, guarded: bool) -> None:
        """End of a request: a fenced write is no longer in flight; log every write."""
        if guarded:
            with self._lock:
                self.in_flight -= 1
        if method != "GET" and write_log.isEnabledFor(logging.DEBUG):
            write_log.debug("write", extra={"method": method, "path": path, "status": status,
                                            "sent": sent, "done": time.time()})

    def _written(self, method: str, what: str, status: int) -> None:
        if method != "GET" and self.on_write is not None:
            verb = what.split(" ", 1)[0] if what else method.lower()
            self.on_write("event" if verb == "post" else verb, status)

    # ---- reads ---------------------------------------------------------------

    def served(self, group_version: str) -> dict[str, Resource] | None:
        """Resources served by one group/version, by kind; None when it is not served."""
        group, _, version = group_version.rpartition("/")
        path = f"/apis/{group_version}" if group else f"/api/{version}"
        status, body = self.request("GET", path, what=f"discover {group_version}")
        if status == 404 or not isinstance(body, Mapping):
            return None
        out: dict[str, Resource] = {}
        for r in body.get("resources", []):
            if "/" not in r["name"]:
                out[r["kind"]] = Resource(group, version, r["name"], r["kind"], r["namespaced"])
        return out

    def preferred(self, group: str) -> str | None:
        """The preferred served version of an API group."""
        status, body = self.request("GET", f"/apis/{group}", what=f"discover {group}")
        if status == 404 or not isinstance(body, Mapping):
            return None
        pref = body.get("preferredVersion") or {}
        version = pref.get("version")
        return str(version) if version else None

    def list_at(self, res: Resource, namespace: str | None = None, *,
                on_page: Callable[[int], None] | None = None) -> tuple[list[dict[str, Any]], int]:
        """Every object of *res*, and the resourceVersion the list was read at (0 if unknown).

        *on_page* hears how many objects each page brought (the CLI's progress line).
        """
        items: list[dict[str, Any]] = []
        cont = ""
        version = 0
        while True:
            query = [("limit", "500")] + ([("continue", cont)] if cont else [])
            status, body = self.request("GET", res.path(namespace), query=query, what=f"list {res.plural}")
            if status == 404 or not isinstance(body, Mapping):
                return items, version
            for item in body.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            if on_page is not None:
                on_page(len(body.get("items") or []))
            meta = body.get("metadata") or {}
            version = max(version, _int(meta.get("resourceVersion")))
            cont = meta.get("continue") or ""
            if not cont:
                return items, version

    def list(self, res: Resource, namespace: str | None = None, *,
             on_page: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Every object of *res* (in *namespace*, or everywhere)."""
        return self.list_at(res, namespace, on_page=on_page)[0]

    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        status, body = self.request("GET", res.path(namespace, name), what=f"get {res.plural}/{name}")
        return None if status == 404 else body

    # ---- writes ----------------------------------------------------------------

    def create(self, res: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create with server-side apply *without* forcing conflicts.

        Every field is then owned by our Apply manager, so a field we stop
        setting later is removed by the next apply (a POST would leave fields
        owned by an Update manager behind, keeping a policy broader than
        wanted). Not forcing means another manager's conflicting field is a
        409, not a takeover; the caller only creates what its cache lacks.
        """
        meta = obj["metadata"]
        _, body = self.request(
            "PATCH", res.path(meta.get("namespace"), meta["name"]),
            query=[("fieldManager", MANAGER)], body=obj, content_type="application/apply-patch+yaml",
            what=f"create {res.kind} {meta.get('namespace')}/{meta['name']}")
        return dict(body or {})

    def apply(self, res: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, forcing conflicts on fields of objects we own."""
        meta = obj["metadata"]
        _, body = self.request(
            "PATCH", res.path(meta.get("namespace"), meta["name"]),
            query=[("fieldManager", MANAGER), ("force", "true")], body=obj,
            content_type="application/apply-patch+yaml",
            what=f"apply {res.kind} {meta.get('namespace')}/{meta['name']}")
        return dict(body or {})

    def delete(self, res: Resource, namespace: str, name: str, uid: str) -> None:
        """Delete exactly the object we saw (a uid precondition), nothing recreated since."""
        self.request("DELETE", res.path(namespace, name),
                     body={"kind": "DeleteOptions", "apiVersion": "v1",
                           "preconditions": {"uid": uid}, "propagationPolicy": "Background"},
                     what=f"delete {res.kind} {namespace}/{name}")

    def patch_status(self, res: Resource, namespace: str, name: str,
                     status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch ``status``; the object as written, or None without a status subresource.

        A 404 also comes back when the object itself is gone (deleted while
        we planned): that is not an error, there is just nothing to report
        on, and the answer is an empty body.
        """
        try:
            _, body = self.request(
                "PATCH", res.path(namespace, name, "status"), body={"status": status},
                content_type="application/merge-patch+json", query=[("fieldManager", MANAGER)],
                what=f"status {res.kind} {namespace}/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            return {} if self.get(res, namespace, name) is None else None
        return dict(body or {})

    def event(self, involved: Mapping[str, Any], reason: str, message: str, type_: str = "Warning") -> None:
        """Post a core/v1 Event about *involved* (best effort: events are advisory)."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"],
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta.get("uid", "")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": MANAGER}, "reportingComponent": MANAGER,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body,
                         what="post event")
        except Fenced:
            raise
        except ApiError as exc:
            log.warning("event not posted: %s", exc)
