"""Access evaluator for Kuma: reads MeshTrafficPermissions the way Kuma 2.14 enforces them.

Modelled on Kuma's matching code, independently of the translator:

* A policy belongs to the mesh in its ``kuma.io/mesh`` label (``default``
  when absent); requests are taken to be in the ``default`` mesh.
* A policy outside the system namespace selects only Dataplanes in its own
  namespace (``dppSelectedByNamespace``, workload-owner role).
* Top-level ``targetRef``: absent or ``Mesh`` selects every Dataplane;
  ``Dataplane`` with ``labels`` matches the Dataplane's labels (the pod's
  labels plus ``k8s.kuma.io/service-account`` and ``k8s.kuma.io/namespace``);
  ``MeshSubset`` matches inbound tags (pod labels plus the namespace tag).
  A ``sectionName`` selects the inbound on the request's port when it
  equals that inbound's name (its container port's name, given as
  ``inbound_names``) or, for an unnamed one, the port number (Kuma 2.14.3
  ``Dataplane_Networking_Inbound.GetSectionName``). A Dataplane picked by
  name, or any other kind, cannot be resolved from a request and does not
  select it.
* ``rules[].default``: every ``deny`` match of every selected policy wins
  over every ``allow``/``allowWithShadowDeny`` match; nothing matching means
  deny (Kuma's RBAC ``on_no_match``). A ``spiffeID`` match compares the
  source's MeshIdentity SPIFFE ID ``spiffe://<trust domain>/ns/<ns>/sa/<sa>``
  exactly or by prefix; an ``sni`` match is unknowable here, so it never
  allows and always denies.
* Legacy ``from[]``: ``Mesh`` matches every source, ``MeshSubset`` only when
  its tags are exactly the source namespace tag; an unresolvable ``Deny``
  counts as matching. Any deny wins.
* Kuma proxies TCP only: UDP is never allowed. The permission is per
  connection, so HTTP method, path and headers do not matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.access import Request, labels_match

KIND = "MeshTrafficPermission"
GROUP = "kuma.io"
SYSTEM_NAMESPACE = "kuma-system"
DEFAULT_MESH = "default"
SA_LABEL = "k8s.kuma.io/service-account"
NS_TAG = "k8s.kuma.io/namespace"


def _source_spiffe_id(req: Request, trust_domain: str) -> str:
    return f"spiffe://{trust_domain}/ns/{req.source.namespace}/sa/{req.source.name}"


def _selects(obj: Mapping[str, Any], req: Request, inbound_names: Mapping[int, str]) -> bool:
    meta = obj.get("metadata", {})
    if meta.get("labels", {}).get("kuma.io/mesh", DEFAULT_MESH) != DEFAULT_MESH:
        return False
    ns = meta.get("namespace", "")
    if ns not in (SYSTEM_NAMESPACE, req.dest_namespace):
        return False
    ref = obj.get("spec", {}).get("targetRef") or {"kind": "Mesh"}
    kind = ref.get("kind")
    if kind == "Mesh":
        return True
    if kind == "Dataplane":
        if ref.get("name") or ref.get("namespace"):
            return False
        section = ref.get("sectionName")
        if section and section != (inbound_names.get(req.port) or str(req.port)):
            return False
        dp_labels = {**req.dest_pod_labels, SA_LABEL: req.dest_service_account,
                     NS_TAG: req.dest_namespace}
        return labels_match(ref.get("labels") or {}, dp_labels)
    if kind == "MeshSubset":
        tags = {**req.dest_pod_labels, NS_TAG: req.dest_namespace}
        return labels_match(ref.get("tags") or {}, tags)
    return False


def _match(m: Mapping[str, Any], source_id: str, *, deny: bool) -> bool:
    """One ``common_api.Match``; unknowable conditions allow nothing and deny everything."""
    if "sni" in m:
        return deny
    sid = m.get("spiffeID")
    if not sid:
        return deny
    if sid.get("type") == "Exact":
        return bool(source_id == sid.get("value"))
    if sid.get("type") == "Prefix":
        return source_id.startswith(str(sid.get("value", "")))
    return deny


def _from_matches(ref: Mapping[str, Any], req: Request, *, deny: bool) -> bool:
    kind = ref.get("kind")
    if kind == "Mesh":
        return True
    if kind == "MeshSubset" and (ref.get("tags") or {}) == {NS_TAG: req.source.namespace}:
        return True
    return deny


def allows(objects: list[dict[str, Any]], req: Request, *, trust_domain: str = "cluster.local",
           inbound_names: Mapping[int, str] | None = None) -> bool:
    """Whether some selected MeshTrafficPermission explicitly allows *req* and none denies it."""
    if req.protocol != "TCP":
        return False
    source_id = _source_spiffe_id(req, trust_domain)
    allowed = denied = False
    for obj in objects:
        if obj.get("kind") != KIND or str(obj.get("apiVersion", "")).split("/")[0] != GROUP:
            continue
        if not _selects(obj, req, inbound_names or {}):
            continue
        spec = obj.get("spec", {})
        for rule in spec.get("rules") or []:
            conf = rule.get("default") or {}
            if any(_match(m, source_id, deny=True) for m in conf.get("deny") or []):
                denied = True
            for key in ("allow", "allowWithShadowDeny"):
                if any(_match(m, source_id, deny=False) for m in conf.get(key) or []):
                    allowed = True
        for entry in spec.get("from") or []:
            action = (entry.get("default") or {}).get("action")
            ref = entry.get("targetRef") or {}
            if action == "Deny" and _from_matches(ref, req, deny=True):
                denied = True
            elif action in ("Allow", "AllowWithShadowDeny") and _from_matches(ref, req, deny=False):
                allowed = True
    return allowed and not denied
