"""Each re-expressed Kuma 2.14.3 legacy admission rule rejects its bad example and passes a close good one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.crd_schema import legacy_spec_errors
from tests.meshrules import NotCovered, RuleCase, kuma_legacy

WEB = {"kuma.io/service": "web_shop_svc_80"}
V1 = {"kuma.io/service": "web-v1_shop_svc_80"}


def route(conf: Any = None, *, sources: Any = None, destinations: Any = None) -> dict[str, Any]:
    spec = {
        "sources": [{"match": {"kuma.io/service": "*"}}] if sources is None else sources,
        "destinations": [{"match": WEB}] if destinations is None else destinations,
        "conf": {"split": [{"weight": 1, "destination": V1}]} if conf is None else conf,
    }
    return {"apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute", "metadata": {"name": "r.shop"},
            "mesh": "default", "spec": spec}


def permission(sources: Any = None, destinations: Any = None) -> dict[str, Any]:
    edge = [{"match": {"k8s.kuma.io/namespace": "edge", "app": "fe"}}]
    spec = {"sources": edge if sources is None else sources,
            "destinations": [{"match": WEB}] if destinations is None else destinations}
    return {"apiVersion": "kuma.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": "p.shop"},
            "mesh": "default", "spec": spec}


def http(match: Any, **rest: Any) -> dict[str, Any]:
    return {"http": [{"match": match, "split": [{"weight": 1, "destination": V1}]}],
            "destination": WEB, **rest}


CASES = [
    RuleCase("kuma.legacy.parse", route({"split": [{"weight": -1, "destination": V1}]}), route()),
    RuleCase("kuma.legacy.parse", route(http({"path": {"prefix": "/a", "exact": "/a"}})),
             route(http({"path": {"prefix": "/a"}})), note="oneof"),
    RuleCase("kuma.legacy.selectors-required", permission(sources=[]), permission()),
    RuleCase("kuma.legacy.selectors-required", route(destinations=[]), route(), note="route"),
    RuleCase("kuma.legacy.tags-required", permission(destinations=[{"match": {}}]), permission()),
    RuleCase("kuma.legacy.tag-name", permission(sources=[{"match": {"app name": "fe"}}]),
             permission(sources=[{"match": {"app-name": "fe"}}])),
    RuleCase("kuma.legacy.tag-value", permission(sources=[{"match": {"app": "fe end"}}]),
             permission(sources=[{"match": {"app": "fe-end"}}])),
    RuleCase("kuma.legacy.tag-value", permission(sources=[{"match": {"app": ""}}]),
             permission(sources=[{"match": {"app": "*"}}]), note="empty"),
    RuleCase("kuma.legacy.service-tag-required", route(sources=[{"match": {"app": "fe"}}]),
             route(sources=[{"match": {"kuma.io/service": "*", "app": "fe"}}])),
    RuleCase("kuma.legacy.destination-service-only",
             route(destinations=[{"match": {**WEB, "version": "v1"}}]), route()),
    RuleCase("kuma.legacy.conf-required", route({}), route()),
    RuleCase("kuma.legacy.split-or-destination", route({"split": [{"weight": 1, "destination": V1}],
                                                        "destination": WEB}), route()),
    RuleCase("kuma.legacy.split-or-destination", route({"http": [{"match": {"path": {"prefix": "/"}}}],
                                                        "destination": WEB}),
             route(http({"path": {"prefix": "/"}})), note="http"),
    RuleCase("kuma.legacy.split-empty", route({"split": []}), route()),
    RuleCase("kuma.legacy.split-weight", route({"split": [{"destination": V1}]}), route()),
    RuleCase("kuma.legacy.split-total", route({"split": [{"weight": 0, "destination": V1}]}),
             route({"split": [{"weight": 0, "destination": V1}, {"weight": 1, "destination": WEB}]})),
    RuleCase("kuma.legacy.http-match-empty", route(http({})), route(http({"method": {"exact": "GET"}}))),
    RuleCase("kuma.legacy.http-headers", route(http({"headers": {}})),
             route(http({"headers": {"x-canary": {"exact": "true"}}}))),
    RuleCase("kuma.legacy.string-matcher", route(http({"path": {"prefix": ""}})),
             route(http({"path": {"exact": ""}}))),
    RuleCase("kuma.legacy.string-matcher", route(http({"headers": {"x": {}}})),
             route(http({"headers": {"x": {"regex": ".*"}}})), note="unset"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_rejects_bad_and_passes_close_good(case: RuleCase) -> None:
    bad, good = kuma_legacy.validate(case.bad), kuma_legacy.validate(case.good)
    assert case.rule in bad.error_rules, bad.errors
    assert good.allowed, good.errors


def test_every_rule_has_a_bad_example() -> None:
    assert {c.rule for c in CASES} == set(kuma_legacy.RULE_IDS)


def test_unmodelled_sections_and_kinds_are_not_judged() -> None:
    with pytest.raises(NotCovered):
        kuma_legacy.validate(route({"split": [{"weight": 1, "destination": V1}],
                                    "loadBalancer": {"roundRobin": {}}}))
    with pytest.raises(NotCovered):
        kuma_legacy.validate({**route(), "kind": "MeshHTTPRoute"})


def test_legacy_spec_schema_is_strict_and_typed() -> None:
    """Kuma's generated JSON Schema of the spec (legacy-spec-jsonschema) judges the goldens' specs."""
    assert legacy_spec_errors(route(http({"path": {"prefix": "/"}}, ))) == []
    assert legacy_spec_errors(permission()) == []
    typo = route({"splits": [{"weight": 1, "destination": V1}]})
    assert legacy_spec_errors(typo) == ["spec.conf.splits: unknown field (Kuma would ignore it)"]
    wrong = route({"split": [{"weight": "1", "destination": {"kuma.io/service": 1}}]})
    assert legacy_spec_errors(wrong) == [
        'spec.conf.split[0].weight: Invalid value: "1": must be of type integer',
        "spec.conf.split[0].destination[kuma.io/service]: Invalid value: 1: must be of type string"]
