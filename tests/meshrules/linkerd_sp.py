"""Linkerd version-2.20's admission of ServiceProfiles (``linkerd.io``), in Python.

Linkerd's ``linkerd-sp-validator`` webhook answers with ``profiles.Validate``
(controller/sp-validator/webhook.go:22 at tag version-2.20), re-expressed here
from ``pkg/profiles/profiles.go`` (lines cited per rule). The document is
decoded strictly into the Go types of
``controller/gen/apis/serviceprofile/v1alpha2/types.go`` (lines 15-97): an
unknown field, or a weight that is no Kubernetes Quantity, is refused.
Response classes are not covered (smi2mesh writes none; an object holding
one raises :class:`~tests.meshrules.NotCovered`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tests.meshrules import Collector, NotCovered, Obj, Verdict, as_list, as_map, is_dns1123_subdomain

KINDS = ("ServiceProfile",)
RULE_IDS = (
    "linkerd.sp.strict",
    "linkerd.sp.name",
    "linkerd.sp.route-name",
    "linkerd.sp.route-condition",
    "linkerd.sp.retry-budget",
)
# types.go:15-87: the JSON fields of each decoded type.
_TOP = frozenset(("apiVersion", "kind", "metadata", "spec"))
_SPEC = frozenset(("routes", "retryBudget", "dstOverrides", "opaquePorts"))
_ROUTE = frozenset(("name", "condition", "responseClasses", "isRetryable", "timeout"))
_MATCH = frozenset(("all", "not", "any", "pathRegex", "method"))
_OVERRIDE = frozenset(("authority", "weight"))
_BUDGET = frozenset(("retryRatio", "minRetriesPerSecond", "ttl"))
# k8s.io/apimachinery resource.Quantity's accepted form (quantity.go, ParseQuantity).
_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")
# Go's time.ParseDuration, for the forms a profile carries.
_DURATION = re.compile(r"^[+-]?((\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$")


def validate(obj: Obj) -> Verdict:
    """Linkerd's answer to creating the ServiceProfile ``obj``."""
    if obj.get("kind") not in KINDS or not str(obj.get("apiVersion", "")).startswith("linkerd.io/"):
        raise NotCovered(f"{obj.get('apiVersion')} {obj.get('kind')}")
    c = Collector(RULE_IDS)
    # profiles.go:59-63: yaml.UnmarshalStrict.
    _known(c, "", obj, _TOP)
    spec = as_map(obj.get("spec"))
    _known(c, "spec", spec, _SPEC)
    for i, raw in enumerate(as_list(spec.get("dstOverrides"))):
        path = f"spec.dstOverrides[{i}]"
        override = as_map(raw)
        _known(c, path, override, _OVERRIDE)
        weight = override.get("weight")
        if not isinstance(override.get("authority", ""), str):
            c.error("linkerd.sp.strict", f"{path}.authority", "must be a string")
        if not (isinstance(weight, int) and not isinstance(weight, bool)) and not (
                isinstance(weight, str) and _QUANTITY.match(weight)):
            c.error("linkerd.sp.strict", f"{path}.weight", "must be a Kubernetes Quantity")
    # profiles.go:65-68: the name is a DNS-1123 subdomain.
    name = as_map(obj.get("metadata")).get("name")
    if not isinstance(name, str) or not is_dns1123_subdomain(name):
        c.error("linkerd.sp.name", "metadata.name", "must be a DNS-1123 subdomain")
    for i, route in enumerate(as_list(spec.get("routes"))):
        _route(c, f"spec.routes[{i}]", route)
    budget = spec.get("retryBudget")
    if budget is not None:
        # profiles.go:104-117.
        budget = as_map(budget)
        _known(c, "spec.retryBudget", budget, _BUDGET)
        ratio = budget.get("retryRatio", 0)
        if not isinstance(ratio, int | float) or ratio < 0:
            c.error("linkerd.sp.retry-budget", "spec.retryBudget.retryRatio", "must be non-negative")
        ttl = budget.get("ttl")
        if not isinstance(ttl, str) or not _DURATION.match(ttl):
            c.error("linkerd.sp.retry-budget", "spec.retryBudget.ttl", "must be a Go duration")
    return c.verdict()


def validate_batch(objs: Iterable[Obj]) -> list[Verdict]:
    return [validate(o) for o in objs]


def _known(c: Collector, path: str, value: Mapping[str, Any], fields: frozenset[str]) -> None:
    for key in value:
        if key not in fields:
            c.error("linkerd.sp.strict", f"{path}.{key}" if path else key, "unknown field")


def _route(c: Collector, path: str, value: Any) -> None:
    """profiles.go:70-102 (responseClasses not covered)."""
    if not isinstance(value, Mapping):
        c.error("linkerd.sp.route-condition", path, "a route cannot be null")
        return
    _known(c, path, value, _ROUTE)
    if value.get("responseClasses"):
        raise NotCovered("ServiceProfile responseClasses")
    if not value.get("name"):
        c.error("linkerd.sp.route-name", f"{path}.name", "a route needs a name")
    timeout = value.get("timeout")
    if timeout and (not isinstance(timeout, str) or not _DURATION.match(timeout)):
        c.error("linkerd.sp.route-condition", f"{path}.timeout", "must be a Go duration")
    condition = value.get("condition")
    if not isinstance(condition, Mapping) or not _match_ok(c, f"{path}.condition", condition):
        c.error("linkerd.sp.route-condition", f"{path}.condition",
                "needs at least one of all, any, not, pathRegex, method (at every level)")


def _match_ok(c: Collector, path: str, match: Mapping[str, Any]) -> bool:
    """profiles.go:125-165 (ValidateRequestMatch): every level sets some field."""
    _known(c, path, match, _MATCH)
    kinds = [k for k in ("all", "any", "not") if match.get(k) is not None]
    if match.get("method") or match.get("pathRegex"):
        kinds.append("leaf")
    if not kinds:
        return False
    children = [*as_list(match.get("all")), *as_list(match.get("any"))]
    if match.get("not") is not None:
        children.append(match["not"])
    return all(isinstance(ch, Mapping) and _match_ok(c, path, ch) for ch in children)
