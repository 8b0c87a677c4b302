"""Access evaluator for Consul: reads ServiceIntentions the way Consul enforces them.

An independent interpreter of the consul-k8s ServiceIntentions CRD (it does
not import the translator):

* Identities are Consul service names; by the consul-k8s ACL convention a
  pod's service name equals its ServiceAccount name, so a request from
  ServiceAccount ``ns/sa`` comes from Consul service ``sa`` in namespace
  ``ns`` and goes to the intentions whose destination is the destination's
  ServiceAccount name.
* Namespaces: with ``namespaces="mirror"`` (Consul Enterprise namespaces
  mirroring the Kubernetes ones) an intention's destination namespace is
  ``spec.destination.namespace`` or the object's namespace; with ``"off"``
  (Consul CE, one namespace for every Kubernetes namespace, the default) a
  destination name matches that name in every namespace. A source *without*
  a namespace is read the broader way in both: it matches that name from any
  namespace. ``*`` is Consul's wildcard.
* Of the intentions matching source and destination, the most precise one
  decides (exact names beat wildcards, destination first). ``action`` decides
  for every request; ``permissions`` are tried top to bottom and the first
  whose ``http`` matches decides; a request none matches falls to the default
  policy, which is not an explicit allow.
* HTTP matching follows Envoy as Consul configures it: the path is the URL
  path without the query; ``pathExact`` is equality, ``pathPrefix`` a plain
  string prefix, ``pathRegex`` an RE2 full match; ``methods`` a list; every
  header condition must hold. Consul's mesh carries no UDP.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import re2

from tests.access import HttpRequest, Request

API_VERSION = "consul.hashicorp.com/v1alpha1"
WILDCARD = "*"


def _name_match(pattern: object, value: str) -> bool:
    return pattern in (WILDCARD, value)


def _full_match(pattern: str, text: str) -> bool:
    try:
        return re2.fullmatch(pattern, text) is not None
    except re2.error:
        # Consul rejects an invalid regex, so the permission never applies.
        return False


def _header_ok(cond: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    name = str(cond.get("name", "")).lower()
    value = headers.get(name)
    ignore_case = bool(cond.get("ignoreCase", False))

    def norm(s: str) -> str:
        return s.lower() if ignore_case else s

    if cond.get("present"):
        result = value is not None
    elif value is None:
        result = False
    elif cond.get("exact"):
        result = norm(value) == norm(str(cond["exact"]))
    elif cond.get("prefix"):
        result = norm(value).startswith(norm(str(cond["prefix"])))
    elif cond.get("suffix"):
        result = norm(value).endswith(norm(str(cond["suffix"])))
    elif cond.get("contains"):
        result = norm(str(cond["contains"])) in norm(value)
    elif cond.get("regex"):
        result = _full_match(str(cond["regex"]), value)
    else:
        # Consul rejects a condition with no operator; treat it as never matching.
        return False
    return not result if cond.get("invert") else result


def http_matches(http: Mapping[str, Any], req: HttpRequest) -> bool:
    """Whether a Consul ``http`` permission (or route) match admits *req*."""
    path = req.path.split("?", 1)[0]
    if http.get("pathExact") and path != http["pathExact"]:
        return False
    if http.get("pathPrefix") and not path.startswith(str(http["pathPrefix"])):
        return False
    if http.get("pathRegex") and not _full_match(str(http["pathRegex"]), path):
        return False
    methods = http.get("methods") or []
    if methods and req.method not in methods:
        return False
    return all(_header_ok(h, req.headers) for h in http.get("header") or [])


def _decides_allow(source: Mapping[str, Any], req: Request) -> bool:
    """The verdict of the one intention source that applies to *req*."""
    action = source.get("action")
    permissions = source.get("permissions") or []
    if action and permissions:
        return False  # invalid in Consul: the entry is rejected
    if action:
        return bool(action == "allow")
    if req.http is None:
        return False
    for perm in permissions:
        http = perm.get("http")
        if not http:
            continue
        if http_matches(http, req.http):
            return bool(perm.get("action") == "allow")
    return False


def allows(objects: list[dict[str, Any]], req: Request, *, namespaces: str = "off",
           service_ports: Collection[int] | None = None) -> bool:
    """True only if some ServiceIntentions explicitly allows *req*.

    *service_ports*, when known, are the ports consul-k8s registered for the
    destination: its sidecar forwards mesh traffic to those only, so a request
    for another port never reaches the destination through the mesh.
    """
    if req.protocol != "TCP":
        return False
    if service_ports is not None and req.port not in service_ports:
        return False
    best: tuple[int, int, int, int] | None = None
    verdicts: list[tuple[tuple[int, int, int, int], bool]] = []
    for obj in objects:
        if obj.get("apiVersion") != API_VERSION or obj.get("kind") != "ServiceIntentions":
            continue
        spec = obj.get("spec") or {}
        dest = spec.get("destination") or {}
        dest_ns = dest.get("namespace") or (
            obj.get("metadata", {}).get("namespace", "") if namespaces == "mirror" else WILDCARD)
        dest_name = dest.get("name", "")
        if not (_name_match(dest_ns, req.dest_namespace)
                and _name_match(dest_name, req.dest_service_account)):
            continue
        for src in spec.get("sources") or []:
            src_ns = src.get("namespace")
            if src.get("peer") or src.get("partition") or src.get("samenessGroup"):
                continue  # other clusters/partitions: never an in-cluster ServiceAccount
            if src_ns and not _name_match(src_ns, req.source.namespace):
                continue
            if not _name_match(src.get("name"), req.source.name):
                continue
            precedence = (int(dest_ns != WILDCARD), int(dest_name != WILDCARD),
                          int(bool(src_ns) and src_ns != WILDCARD), int(src.get("name") != WILDCARD))
            verdicts.append((precedence, _decides_allow(src, req)))
            if best is None or precedence > best:
                best = precedence
    # Only the most precise intention applies; if several tie (duplicate
    # objects, which consul-k8s would refuse), read it the permissive way.
    return any(allow for precedence, allow in verdicts if precedence == best)
