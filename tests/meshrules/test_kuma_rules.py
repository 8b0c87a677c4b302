"""Each re-expressed Kuma 2.14.3 admission rule rejects its bad example and passes a close good one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.meshrules import NotCovered, RuleCase, kuma

WARNING_RULES = {r for r in kuma.RULE_IDS if r.startswith("kuma.deprecated.")}
ORDERS = "spiffe://cluster.local/ns/shop/sa/orders"
BACKEND = {"kind": "MeshService", "name": "website-v1", "namespace": "web", "port": 80}
WEBSITE = {"kind": "MeshService", "name": "website", "namespace": "web", "sectionName": "http"}


def policy(kind: str, spec: dict[str, Any], *, namespace: str = "web", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "kuma.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "p", "namespace": namespace, "labels": {"kuma.io/mesh": "default", **labels}},
        "spec": spec,
    }


def http_rule(
    matches: list[dict[str, Any]] | None = None,
    filters: list[dict[str, Any]] | None = None,
    backends: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    default: dict[str, Any] = {"backendRefs": [BACKEND] if backends is None else backends}
    if filters is not None:
        default["filters"] = filters
    return {"matches": matches or [{"path": {"type": "PathPrefix", "value": "/"}}], "default": default}


def mhr(
    *rules: dict[str, Any],
    target: dict[str, Any] | None = None,
    to_ref: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
    namespace: str = "web",
    **to_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": top or {"kind": "Mesh"},
        "to": [{"targetRef": to_ref or WEBSITE, "rules": list(rules) or [http_rule()], **to_extra}],
    }
    return policy("MeshHTTPRoute", spec, namespace=namespace)


def mtp(rules: Any = None, *, top: dict[str, Any] | None = None, from_: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"targetRef": top or {"kind": "Dataplane", "labels": {"app": "db"}}}
    if from_ is not None:
        body["from"] = from_
    if rules is not None:
        body["rules"] = rules
    return policy("MeshTrafficPermission", body)


def allow(*matches: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"default": {"allow": list(matches)}}]


SPIFFE = {"spiffeID": {"type": "Exact", "value": ORDERS}}


def rewrite(**body: Any) -> list[dict[str, Any]]:
    return [{"type": "URLRewrite", "urlRewrite": body}]


CASES = [
    RuleCase(
        "kuma.policy-role",
        policy(
            "MeshHTTPRoute",
            {
                "to": [
                    {"targetRef": WEBSITE, "rules": [http_rule()]},
                    {"targetRef": {**WEBSITE, "namespace": "shop"}, "rules": [http_rule()]},
                ]
            },
        ),
        policy(
            "MeshHTTPRoute",
            {
                "to": [
                    {"targetRef": WEBSITE, "rules": [http_rule()]},
                    {"targetRef": {**WEBSITE, "name": "api"}, "rules": [http_rule()]},
                ]
            },
        ),
    ),
    RuleCase(
        "kuma.mesh-label",
        policy("MeshTrafficPermission", {"rules": allow(SPIFFE)}, **{"kuma.io/mesh": "Prod"}),
        policy("MeshTrafficPermission", {"rules": allow(SPIFFE)}, **{"kuma.io/mesh": "prod"}),
    ),
    RuleCase(
        "kuma.origin-label",
        policy("MeshTrafficPermission", {"rules": allow(SPIFFE)}, **{"kuma.io/origin": "local"}),
        policy("MeshTrafficPermission", {"rules": allow(SPIFFE)}, **{"kuma.io/origin": "zone"}),
    ),
    RuleCase(
        "kuma.targetref.kind-required",
        mhr(to_ref={"name": "website"}),
        mhr(to_ref={"kind": "MeshService", "name": "website"}),
    ),
    RuleCase(
        "kuma.targetref.kind-supported",
        mtp(allow(SPIFFE), top={"kind": "MeshGateway", "name": "gw"}),
        mtp(allow(SPIFFE), top={"kind": "Dataplane", "name": "gw"}),
    ),
    # Only a system policy may sit on a MeshGateway: the role label decides (validation.go:28-56).
    RuleCase(
        "kuma.targetref.kind-supported",
        mhr(top={"kind": "MeshGateway", "name": "gw"}, to_ref={"kind": "Mesh"}),
        mhr(top={"kind": "MeshGateway", "name": "gw"}, to_ref={"kind": "Mesh"}, namespace="kuma-system"),
        note="gateway-needs-system-role",
    ),
    RuleCase(
        "kuma.targetref.field-not-allowed",
        mhr(top={"kind": "Mesh", "namespace": "web"}),
        mhr(top={"kind": "Mesh"}),
    ),
    RuleCase(
        "kuma.targetref.name-required",
        mtp(allow(SPIFFE), top={"kind": "MeshServiceSubset"}),
        mtp(allow(SPIFFE), top={"kind": "MeshServiceSubset", "name": "db"}),
    ),
    RuleCase("kuma.targetref.name-chars", mhr(to_ref={**WEBSITE, "name": "Website"}), mhr(to_ref=WEBSITE)),
    RuleCase(
        "kuma.targetref.name-or-labels",
        mhr(to_ref={"kind": "MeshService"}),
        mhr(to_ref={"kind": "MeshService", "labels": {"app": "website"}}),
    ),
    RuleCase(
        "kuma.targetref.labels-exclusive",
        mtp(allow(SPIFFE), top={"kind": "Dataplane", "labels": {"app": "db"}, "name": "db-0"}),
        mtp(allow(SPIFFE), top={"kind": "Dataplane", "labels": {"app": "db"}}),
    ),
    RuleCase(
        "kuma.targetref.section-inbound-only",
        mhr(top={"kind": "Dataplane", "labels": {"app": "web"}, "sectionName": "http"}),
        mhr(top={"kind": "Dataplane", "labels": {"app": "web"}}),
    ),
    RuleCase(
        "kuma.targetref.proxy-types-empty",
        mhr(top={"kind": "Mesh", "proxyTypes": []}),
        mhr(top={"kind": "Mesh", "proxyTypes": ["Sidecar"]}),
    ),
    RuleCase(
        "kuma.targetref.tags",
        mtp(allow(SPIFFE), top={"kind": "MeshSubset", "tags": {"app": ""}}),
        mtp(allow(SPIFFE), top={"kind": "MeshSubset", "tags": {"app": "db"}}),
    ),
    RuleCase(
        "kuma.backendref.port-required",
        mhr(http_rule(backends=[{"kind": "MeshMultiZoneService", "name": "website"}])),
        mhr(http_rule(backends=[{"kind": "MeshMultiZoneService", "name": "website", "port": 80}])),
    ),
    RuleCase("kuma.mhr.hostnames", mhr(hostnames=["website.example"]), mhr()),
    RuleCase(
        "kuma.mhr.path-absolute",
        mhr(http_rule([{"path": {"type": "Exact", "value": "api"}}])),
        mhr(http_rule([{"path": {"type": "Exact", "value": "/api"}}])),
    ),
    RuleCase(
        "kuma.mhr.path-prefix-trailing-slash",
        mhr(http_rule([{"path": {"type": "PathPrefix", "value": "/api/"}}])),
        mhr(http_rule([{"path": {"type": "PathPrefix", "value": "/api"}}])),
    ),
    RuleCase(
        "kuma.mhr.header-value",
        mhr(http_rule([{"headers": [{"type": "Present", "name": "x-canary", "value": "1"}]}])),
        mhr(http_rule([{"headers": [{"type": "Present", "name": "x-canary"}]}])),
    ),
    RuleCase(
        "kuma.mhr.query-param-duplicate",
        mhr(
            http_rule(
                [
                    {
                        "queryParams": [
                            {"type": "Exact", "name": "v", "value": "1"},
                            {"type": "Exact", "name": "v", "value": "2"},
                        ]
                    }
                ]
            )
        ),
        mhr(
            http_rule(
                [
                    {
                        "queryParams": [
                            {"type": "Exact", "name": "v", "value": "1"},
                            {"type": "Exact", "name": "w", "value": "2"},
                        ]
                    }
                ]
            )
        ),
    ),
    RuleCase(
        "kuma.mhr.filter-config-missing",
        mhr(http_rule(filters=[{"type": "RequestHeaderModifier"}])),
        mhr(
            http_rule(
                filters=[
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]},
                    }
                ]
            )
        ),
    ),
    RuleCase(
        "kuma.mhr.header-modifier-empty",
        mhr(http_rule(filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}])),
        mhr(
            http_rule(filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}}])
        ),
    ),
    RuleCase(
        "kuma.mhr.header-modifier-duplicate",
        mhr(
            http_rule(
                filters=[
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"set": [{"name": "x", "value": "1"}], "remove": ["x"]},
                    }
                ]
            )
        ),
        mhr(
            http_rule(
                filters=[
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"set": [{"name": "x", "value": "1"}], "remove": ["y"]},
                    }
                ]
            )
        ),
    ),
    RuleCase(
        "kuma.mhr.replace-prefix-needs-prefix-matches",
        mhr(
            http_rule(
                [{"path": {"type": "Exact", "value": "/a"}}],
                rewrite(path={"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}),
            )
        ),
        mhr(
            http_rule(
                [{"path": {"type": "PathPrefix", "value": "/a"}}],
                rewrite(path={"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}),
            )
        ),
    ),
    RuleCase(
        "kuma.mhr.precise-hostname",
        mhr(http_rule(filters=rewrite(hostname="10.0.0.1"))),
        mhr(http_rule(filters=rewrite(hostname="website.example"))),
    ),
    RuleCase(
        "kuma.mhr.precise-hostname",
        mhr(http_rule(filters=rewrite(hostname="010.0.0.1"))),
        mhr(http_rule(filters=rewrite(hostname="a010.0.0.1"))),
        note="sloppy-ipv4",
    ),
    RuleCase(
        "kuma.mhr.host-to-backend-hostname",
        mhr(http_rule(filters=rewrite(hostToBackendHostname=True))),
        mhr(http_rule(filters=rewrite(hostToBackendHostname=False))),
    ),
    RuleCase(
        "kuma.mhr.backend-refs-empty",
        mhr(
            http_rule(backends=[]),
            top={"kind": "MeshGateway", "name": "gw"},
            to_ref={"kind": "Mesh"},
            namespace="kuma-system",
        ),
        mhr(
            http_rule(),
            top={"kind": "MeshGateway", "name": "gw"},
            to_ref={"kind": "Mesh"},
            namespace="kuma-system",
        ),
    ),
    RuleCase(
        "kuma.mtcpr.backend-refs-required",
        policy(
            "MeshTCPRoute",
            {
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": WEBSITE, "rules": [{"default": {"backendRefs": []}}]}],
            },
        ),
        policy(
            "MeshTCPRoute",
            {
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": WEBSITE, "rules": [{"default": {"backendRefs": [BACKEND]}}]}],
            },
        ),
    ),
    RuleCase(
        "kuma.mtp.from-with-rules",
        mtp(allow(SPIFFE), from_=[{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]),
        mtp(allow(SPIFFE)),
    ),
    RuleCase("kuma.mtp.from-or-rules", mtp(), mtp(allow(SPIFFE))),
    RuleCase("kuma.mtp.rule-empty", mtp([{"default": {}}]), mtp([{"default": {"deny": [SPIFFE]}}])),
    RuleCase(
        "kuma.mtp.spiffe-id",
        mtp(allow({"spiffeID": {"type": "Exact", "value": ORDERS + "/"}})),
        mtp(allow(SPIFFE)),
    ),
    # ValidateMatch parses every spiffeID value, whatever its type: a prefix must be a whole SPIFFE ID.
    RuleCase(
        "kuma.mtp.spiffe-id",
        mtp(allow({"spiffeID": {"type": "Prefix", "value": "spiffe://cluster.local/"}})),
        mtp(allow({"spiffeID": {"type": "Prefix", "value": "spiffe://cluster.local"}})),
        note="prefix",
    ),
    RuleCase(
        "kuma.mtp.sni",
        mtp(allow({"sni": {"type": "Exact", "value": "Orders_Svc"}})),
        mtp(allow({"sni": {"type": "Exact", "value": "orders.svc"}})),
    ),
    RuleCase(
        "kuma.mtp.from-action",
        mtp(from_=[{"targetRef": {"kind": "Mesh"}, "default": {}}]),
        mtp(from_=[{"targetRef": {"kind": "Mesh"}, "default": {"action": "Deny"}}]),
    ),
    # Deprecations: the bad example is admitted with the warning, the good one without it.
    RuleCase(
        "kuma.deprecated.from",
        mtp(from_=[{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]),
        mtp(allow({"spiffeID": {"type": "Prefix", "value": "spiffe://cluster.local/ns/shop"}})),
    ),
    RuleCase(
        "kuma.deprecated.from-mesh-service",
        mtp(from_=[{"targetRef": {"kind": "MeshService", "name": "orders"}, "default": {"action": "Allow"}}]),
        mtp(
            from_=[
                {
                    "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "orders"}},
                    "default": {"action": "Allow"},
                }
            ]
        ),
    ),
    RuleCase(
        "kuma.deprecated.top-level-kind",
        mhr(top={"kind": "MeshService", "name": "website"}),
        mhr(top={"kind": "Dataplane", "labels": {"app": "website"}}),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_rejects_bad_and_passes_close_good(case: RuleCase) -> None:
    bad, good = kuma.validate(case.bad), kuma.validate(case.good)
    if case.rule in WARNING_RULES:
        assert bad.allowed, bad.errors
        assert case.rule in bad.warning_rules, bad.warnings
        assert good.allowed, good.errors
        assert case.rule not in good.warning_rules, good.warnings
    else:
        assert case.rule in bad.error_rules, bad.errors
        assert good.allowed, good.errors


def test_every_rule_has_a_bad_example() -> None:
    assert {c.rule for c in CASES} == set(kuma.RULE_IDS)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        # go-spiffe v2.6.0 spiffeid/id_test.go's kinds of input, restated.
        ("spiffe://trustdomain", True),
        ("spiffe://trustdomain/path/element", True),
        ("spiffe://td/Upper_case-and.dots", True),
        ("", False),
        ("http://trustdomain/path", False),
        ("spiffe:///path", False),
        ("spiffe://Trust/path", False),
        ("spiffe://td:8080/path", False),
        ("spiffe://td/path/", False),
        ("spiffe://td//path", False),
        ("spiffe://td/./path", False),
        ("spiffe://td/path/..", False),
        ("spiffe://td/path?query", False),
    ],
)
def test_spiffe_id_parser(value: str, valid: bool) -> None:
    assert (kuma.spiffe_id_problem(value) == "") is valid


def test_producer_consumer_roles_follow_the_namespace() -> None:
    """A route to a MeshService of another namespace is a consumer policy; both kinds are admitted."""
    producer = mhr(to_ref={**WEBSITE, "namespace": "web"})
    consumer = mhr(to_ref={**WEBSITE, "namespace": "shop"})
    assert kuma.validate(producer).allowed
    assert kuma.validate(consumer).allowed


def test_denied_policy_carries_no_warnings() -> None:
    """Warnings come only with an allowed answer (validation.go:78-87)."""
    verdict = kuma.validate(
        mhr(
            http_rule([{"path": {"type": "Exact", "value": "api"}}]),
            top={"kind": "MeshService", "name": "website"},
        )
    )
    assert not verdict.allowed
    assert verdict.warnings == []


def test_other_kinds_are_not_judged() -> None:
    with pytest.raises(NotCovered):
        kuma.validate(policy("MeshTimeout", {}))
