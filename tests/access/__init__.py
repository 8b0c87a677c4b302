"""Access-safety oracle: does a request pass the SMI rules, and does it pass a mesh's objects?

:func:`smi_allows` is an independent reading of the SMI access spec (it does
not call the translators' shared grant logic), so comparing it with each
mesh's evaluator (``tests/access/<mesh>.py``, a function
``allows(objects, request) -> bool`` that interprets the emitted objects
the way that mesh would) checks the whole translation, not one helper.

Only *explicit* allows are compared: a mesh with no policy for a workload
may fall back to allow-all, which no translation can prevent and which the
translators report as a finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import re2

from smi2mesh.model import HTTPMatch, Identity, Inputs, SmiKind


@dataclass(frozen=True)
class HttpRequest:
    """The L7 part of a request: method, path and lowercase header names."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One connection or request from a source identity to a destination pod."""

    source: Identity
    dest_namespace: str
    dest_service_account: str
    dest_pod_labels: Mapping[str, str]
    protocol: str  # "TCP" or "UDP"
    port: int
    http: HttpRequest | None = None


def _re2_search_prefix(pattern: str, text: str) -> bool:
    return re2.match(f"(?:{pattern})", text) is not None


def http_match_allows(m: HTTPMatch, req: HttpRequest) -> bool:
    """SMI semantics of one HTTP match: path prefix-anchored, headers full-match, methods."""
    if m.methods and req.method not in m.methods:
        return False
    # The regex reads the path: the query string is not part of it (RFC 3986),
    # and the meshes' matchers (Envoy route and RBAC path matching) strip it.
    if m.path_regex is not None and not _re2_search_prefix(m.path_regex, req.path.split("?", 1)[0]):
        return False
    for h in m.headers:
        value = req.headers.get(h.name)
        if value is None or re2.fullmatch(f"(?:{h.value})", value) is None:
            return False
    return True


def smi_allows(inputs: Inputs, req: Request) -> bool:
    """Whether any TrafficTarget in *inputs* allows *req*."""
    for tt in inputs.targets:
        if (tt.destination.namespace, tt.destination.name) != (req.dest_namespace,
                                                               req.dest_service_account):
            continue
        if req.source not in tt.sources:
            continue
        if tt.port is not None and req.port != tt.port:
            continue
        ns = tt.meta.namespace
        http_rules = [r for r in tt.rules if r.kind is SmiKind.HTTP_ROUTE_GROUP]
        kind = SmiKind.UDP_ROUTE if req.protocol == "UDP" else SmiKind.TCP_ROUTE
        port_rules = [r for r in tt.rules if r.kind is kind]
        routes = [inputs.port_route(kind, ns, r.name) for r in port_rules]
        existing = [r for r in routes if r is not None]
        port_ok = any(not r.ports or req.port in r.ports for r in existing)
        if req.protocol == "UDP" or not http_rules:
            if port_ok:
                return True
            continue
        if port_rules and not port_ok:
            continue
        if req.http is None:
            continue
        for rule in http_rules:
            group = inputs.http_route_group(ns, rule.name)
            if group is None:
                continue
            for m in group.matches:
                if rule.matches is not None and m.name not in rule.matches:
                    continue
                if http_match_allows(m, req.http):
                    return True
    return False


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """matchLabels semantics."""
    return all(labels.get(k) == v for k, v in selector.items())
