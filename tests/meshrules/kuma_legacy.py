"""Kuma 2.14.3's admission of the legacy TrafficRoute and TrafficPermission, in Python.

Re-expressed from kumahq/kuma at tag v2.14.3 (every rule cites its file and
lines there): ``pkg/core/resources/apis/mesh/traffic_route_validator.go``,
``traffic_permission_validator.go`` and the selector and tag checks they
call in ``validators.go``. The spec is read as protobuf JSON
(``api/mesh/v1alpha1/traffic_route.proto``, ``traffic_permission.proto``;
``pkg/util/proto/proto.go:54-57`` allows unknown fields), so a value of the
wrong type fails to parse (``kuma.legacy.parse``). The load balancer and the
``modify`` section are not covered: smi2mesh writes neither, and an object
holding one raises :class:`~tests.meshrules.NotCovered`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tests.meshrules import Collector, NotCovered, Obj, Verdict, as_list, as_map

KINDS = ("TrafficRoute", "TrafficPermission")
SERVICE_TAG = "kuma.io/service"
UINT32_MAX = 2**32 - 1

RULE_IDS = (
    "kuma.legacy.parse",
    "kuma.legacy.selectors-required",
    "kuma.legacy.tags-required",
    "kuma.legacy.tag-name",
    "kuma.legacy.tag-value",
    "kuma.legacy.service-tag-required",
    "kuma.legacy.destination-service-only",
    "kuma.legacy.conf-required",
    "kuma.legacy.split-or-destination",
    "kuma.legacy.split-empty",
    "kuma.legacy.split-weight",
    "kuma.legacy.split-total",
    "kuma.legacy.http-match-empty",
    "kuma.legacy.http-headers",
    "kuma.legacy.string-matcher",
)

# validators.go:29-31: tag names; selector values may also be "*".
_TAG_NAME = re.compile(r"^[a-zA-Z0-9.\-_:/]*$")
_SELECTOR_VALUE = re.compile(r"^([a-zA-Z0-9.\-_:/]*|\*)$")


def validate(obj: Obj) -> Verdict:
    """Kuma's answer to creating ``obj`` (a legacy kind)."""
    kind = obj.get("kind")
    if kind not in KINDS or not str(obj.get("apiVersion", "")).startswith("kuma.io/"):
        raise NotCovered(f"{obj.get('apiVersion')} {kind}")
    c = Collector(RULE_IDS)
    spec = as_map(obj.get("spec"))
    if kind == "TrafficPermission":
        # traffic_permission_validator.go:14-30: sources and destinations, each at least
        # one selector of at least one tag.
        _selectors(c, "spec.sources", spec.get("sources"), service=False)
        _selectors(c, "spec.destinations", spec.get("destinations"), service=False)
        return c.verdict()
    # traffic_route_validator.go:16-24: sources also need the kuma.io/service tag.
    _selectors(c, "spec.sources", spec.get("sources"), service=True)
    # :26-28 with validators.go:154-178 (OnlyServiceTagAllowed).
    destinations = spec.get("destinations")
    _selectors(c, "spec.destinations", destinations, service=True)
    for i, d in enumerate(as_list(destinations)):
        match = as_map(as_map(d).get("match"))
        if set(match) != {SERVICE_TAG}:
            c.error("kuma.legacy.destination-service-only", f"spec.destinations[{i}].match",
                    f"must consist of exactly one tag {SERVICE_TAG!r}")
    conf = spec.get("conf")
    if not isinstance(conf, Mapping) or not conf:
        # :33-36 (a conf without a set field is the empty message, read as nil here).
        c.error("kuma.legacy.conf-required", "spec.conf", "cannot be empty")
        return c.verdict()
    if "loadBalancer" in conf or "load_balancer" in conf:
        raise NotCovered("TrafficRoute conf.loadBalancer")
    _split_or_destination(c, "spec.conf", conf)
    for i, http in enumerate(as_list(conf.get("http"))):
        path = f"spec.conf.http[{i}]"
        entry = as_map(http)
        if "modify" in entry:
            raise NotCovered("TrafficRoute conf.http[].modify")
        _http_match(c, f"{path}.match", as_map(entry.get("match")))
        _split_or_destination(c, path, entry)
    return c.verdict()


def validate_batch(objs: Iterable[Obj]) -> list[Verdict]:
    """Each object on its own: Kuma has no rule across legacy policies."""
    return [validate(o) for o in objs]


def _selectors(c: Collector, path: str, value: Any, *, service: bool) -> None:
    """validators.go:74-87 (ValidateSelectors) with RequireAtLeastOneSelector."""
    items = as_list(value)
    if not items:
        c.error("kuma.legacy.selectors-required", path, "must have at least one element")
    for i, selector in enumerate(items):
        _tags(c, f"{path}[{i}].match", as_map(as_map(selector).get("match")), service=service)


def _tags(c: Collector, path: str, tags: Mapping[str, Any], *, service: bool) -> None:
    """validators.go:89-101 and 117-151: one selector's tags (values may be "*")."""
    if not tags:
        c.error("kuma.legacy.tags-required", path, "must have at least one tag")
    for key, value in tags.items():
        if not isinstance(value, str):
            c.error("kuma.legacy.parse", f"{path}[{key}]", "a tag value must be a string")
            continue
        if not key or not _TAG_NAME.match(key):
            c.error("kuma.legacy.tag-name", f"{path}[{key}]",
                    "tag name must be non-empty alphanumeric characters, dots, dashes, slashes, "
                    "colons and underscores")
        if not value or not _SELECTOR_VALUE.match(value):
            c.error("kuma.legacy.tag-value", f"{path}[{key}]",
                    'tag value must be non-empty alphanumeric characters, dots, dashes, slashes, '
                    'colons and underscores, or "*"')
    if service and SERVICE_TAG not in tags:
        # validators.go:148-150 (RequireService).
        c.error("kuma.legacy.service-tag-required", path, f"mandatory tag {SERVICE_TAG!r} is missing")


def _split_or_destination(c: Collector, path: str, body: Mapping[str, Any]) -> None:
    """traffic_route_validator.go:154-170, 215-243."""
    split, destination = body.get("split"), body.get("destination")
    if split is None and destination is None:
        c.error("kuma.legacy.split-or-destination", path, 'requires either "destination" or "split"')
    if split is not None and destination is not None:
        c.error("kuma.legacy.split-or-destination", path,
                '"split" cannot be defined at the same time as "destination"')
    if split is not None:
        entries = as_list(split)
        if not entries:
            c.error("kuma.legacy.split-empty", f"{path}.split", "must have at least one element")
        total = 0
        for i, raw in enumerate(entries):
            entry = as_map(raw)
            weight = entry.get("weight")
            if weight is None:
                c.error("kuma.legacy.split-weight", f"{path}.split[{i}].weight", "needs to be defined")
            elif isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= UINT32_MAX:
                # google.protobuf.UInt32Value (traffic_route.proto:38) fails to parse.
                c.error("kuma.legacy.parse", f"{path}.split[{i}].weight", "must be a uint32")
            else:
                total += weight
            _tags(c, f"{path}.split[{i}].destination", as_map(entry.get("destination")), service=True)
        if entries and total == 0:
            c.error("kuma.legacy.split-total", f"{path}.split",
                    "there must be at least one split entry with weight above 0")
    if destination is not None:
        _tags(c, f"{path}.destination", as_map(destination), service=True)


def _http_match(c: Collector, path: str, match: Mapping[str, Any]) -> None:
    """traffic_route_validator.go:172-213."""
    if match.get("path") is None and match.get("method") is None and match.get("headers") is None:
        c.error("kuma.legacy.http-match-empty", path,
                'must be present and contain at least one of the elements: "method", "path" or '
                '"headers"')
        return
    for field in ("method", "path"):
        if match.get(field) is not None:
            _string_matcher(c, f"{path}.{field}", match[field])
    headers = match.get("headers")
    if headers is not None and not as_map(headers):
        c.error("kuma.legacy.http-headers", f"{path}.headers", "must contain at least one element")
    for key, matcher in as_map(headers).items():
        if key == "":
            c.error("kuma.legacy.http-headers", f"{path}.headers", "a header name cannot be empty")
        _string_matcher(c, f"{path}.headers[{key}]", matcher)


def _string_matcher(c: Collector, path: str, value: Any) -> None:
    """traffic_route_validator.go:197-213; the fields are a oneof (traffic_route.proto:121-130)."""
    matcher = as_map(value)
    set_fields = [f for f in ("prefix", "exact", "regex") if f in matcher]
    if len(set_fields) > 1:
        c.error("kuma.legacy.parse", path, f"one of prefix, exact, regex: got {', '.join(set_fields)}")
        return
    if not set_fields:
        c.error("kuma.legacy.string-matcher", path, 'cannot be empty. Available options: "exact", '
                '"prefix" or "regex"')
        return
    (field,) = set_fields
    if not isinstance(matcher[field], str):
        c.error("kuma.legacy.parse", f"{path}.{field}", "must be a string")
    elif field != "exact" and not matcher[field]:
        c.error("kuma.legacy.string-matcher", f"{path}.{field}", "cannot be empty")
