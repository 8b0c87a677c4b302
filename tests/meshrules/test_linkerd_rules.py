"""Each re-expressed Linkerd 2.20 admission rule rejects its bad example and passes a close good one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.meshrules import NotCovered, RuleCase, linkerd, linkerd_sp

POLICY_V1A1 = "policy.linkerd.io/v1alpha1"
POLICY_V1B3 = "policy.linkerd.io/v1beta3"
GATEWAY_V1 = "gateway.networking.k8s.io/v1"
GATEWAY_V1A2 = "gateway.networking.k8s.io/v1alpha2"

MTLS = {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "clients"}
NET = {"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": "cluster"}
SA = {"kind": "ServiceAccount", "name": "reviews", "namespace": "books"}
SERVER_REF = {"group": "policy.linkerd.io", "kind": "Server", "name": "ratings-9080"}
SERVICE_PARENT = {"group": "core", "kind": "Service", "name": "ratings", "port": 9080}


def obj(api_version: str, kind: str, spec: Any, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "namespace": "books"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}


def server(**spec: Any) -> dict[str, Any]:
    return obj(
        POLICY_V1B3, "Server", {"podSelector": {"matchLabels": {"app": "ratings"}}, "port": 9080, **spec}
    )


def authz(*refs: dict[str, Any], target: dict[str, Any] = SERVER_REF) -> dict[str, Any]:
    return obj(
        POLICY_V1A1, "AuthorizationPolicy", {"targetRef": target, "requiredAuthenticationRefs": list(refs)}
    )


def meshtls(**spec: Any) -> dict[str, Any]:
    return obj(POLICY_V1A1, "MeshTLSAuthentication", spec)


def netauthn(*networks: dict[str, Any]) -> dict[str, Any]:
    return obj(POLICY_V1A1, "NetworkAuthentication", {"networks": list(networks)})


def policy_route(*rules: dict[str, Any]) -> dict[str, Any]:
    return obj(POLICY_V1B3, "HTTPRoute", {"parentRefs": [SERVER_REF], "rules": list(rules)})


def gateway_route(
    *rules: dict[str, Any],
    parents: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec = {"parentRefs": parents or [SERVICE_PARENT], "rules": list(rules)}
    return obj(GATEWAY_V1, "HTTPRoute", spec, annotations)


def match(**m: Any) -> dict[str, Any]:
    return {"matches": [m]}


def backends(*refs: dict[str, Any]) -> dict[str, Any]:
    return {"backendRefs": list(refs)}


def tcp_route(n: int) -> dict[str, Any]:
    rules = [{"backendRefs": [{"name": "ratings", "port": 9080}]}] * n
    return obj(GATEWAY_V1A2, "TCPRoute", {"parentRefs": [SERVICE_PARENT], "rules": rules})


def tls_route(n: int) -> dict[str, Any]:
    rules = [{"backendRefs": [{"name": "ratings", "port": 9443}]}] * n
    return obj(GATEWAY_V1A2, "TLSRoute", {"parentRefs": [SERVICE_PARENT], "rules": rules})


def redirect(path: dict[str, Any]) -> dict[str, Any]:
    return {"filters": [{"type": "RequestRedirect", "requestRedirect": {"path": path}}]}


CASES = [
    RuleCase("linkerd.parse", server(port=0), server(port=9080), note="server-port-zero"),
    RuleCase(
        "linkerd.parse",
        obj(POLICY_V1A1, "AuthorizationPolicy", {"targetRef": SERVER_REF}),
        authz(),
        note="authz-refs-required",
    ),
    RuleCase(
        "linkerd.parse",
        policy_route(match(method="FETCH")),
        policy_route(match(method="GET")),
        note="policy-route-method",
    ),
    RuleCase(
        "linkerd.parse",
        policy_route({"filters": [{"type": "URLRewrite", "urlRewrite": {}}]}),
        policy_route({"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}]}),
        note="policy-route-filter",
    ),
    RuleCase("linkerd.server.access-policy", server(accessPolicy="allow"), server(accessPolicy="deny")),
    RuleCase(
        "linkerd.authz.namespace-target",
        authz(MTLS, target={"kind": "Namespace", "name": "shop"}),
        authz(MTLS, target={"kind": "Namespace", "name": "books"}),
    ),
    RuleCase("linkerd.authz.single-meshtls", authz(MTLS, {**MTLS, "name": "more"}), authz(MTLS)),
    RuleCase("linkerd.authz.single-serviceaccount", authz(SA, {**SA, "name": "other"}), authz(SA)),
    RuleCase("linkerd.authz.meshtls-with-serviceaccount", authz(MTLS, SA), authz(MTLS, NET)),
    RuleCase("linkerd.authz.single-network", authz(NET, {**NET, "name": "more"}), authz(NET)),
    RuleCase("linkerd.authz.authn-kind", authz({"kind": "Deployment", "name": "reviews"}), authz(SA)),
    RuleCase(
        "linkerd.authz.target-kind",
        authz(MTLS, target={"kind": "Service", "name": "ratings"}),
        authz(MTLS, target=SERVER_REF),
    ),
    RuleCase(
        "linkerd.meshtls.identity",
        meshtls(identities=["reviews.books.serviceaccount.identity."]),
        meshtls(identities=["reviews.books.serviceaccount.identity.linkerd.cluster.local"]),
    ),
    RuleCase(
        "linkerd.meshtls.identity",
        meshtls(identities=["spiffe://td/ns/books/sa/reviews/"]),
        meshtls(identities=["spiffe://td/ns/books/sa/reviews"]),
        note="spiffe",
    ),
    RuleCase(
        "linkerd.meshtls.identity-ref",
        meshtls(identityRefs=[{"kind": "Namespace", "name": "books", "namespace": "books"}]),
        meshtls(identityRefs=[{"kind": "Namespace", "name": "books"}]),
    ),
    RuleCase(
        "linkerd.meshtls.identity-ref",
        meshtls(identityRefs=[{"kind": "Deployment", "name": "reviews"}]),
        meshtls(identityRefs=[{"kind": "ServiceAccount", "name": "reviews"}]),
        note="kind",
    ),
    RuleCase("linkerd.netauthn.networks-empty", netauthn(), netauthn({"cidr": "10.0.0.0/8"})),
    RuleCase(
        "linkerd.network.except-negates",
        netauthn({"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]}),
        netauthn({"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}),
    ),
    RuleCase(
        "linkerd.network.except-outside",
        netauthn({"cidr": "10.0.0.0/16", "except": ["192.168.0.0/24"]}),
        netauthn({"cidr": "10.0.0.0/16", "except": ["10.0.1.7"]}),
    ),
    RuleCase(
        "linkerd.route.egress-port",
        gateway_route(parents=[{"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "out"}]),
        gateway_route(
            parents=[{"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": "out", "port": 443}]
        ),
    ),
    RuleCase(
        "linkerd.route.annotations",
        gateway_route(annotations={"timeout.linkerd.io/request": "5"}),
        gateway_route(annotations={"timeout.linkerd.io/request": "5s"}),
    ),
    RuleCase(
        "linkerd.route.annotations",
        gateway_route(annotations={"retry.linkerd.io/http": "5xx,600"}),
        gateway_route(annotations={"retry.linkerd.io/http": "5xx,429"}),
        note="retry-condition",
    ),
    RuleCase(
        "linkerd.route.path-absolute",
        policy_route(match(path={"type": "PathPrefix", "value": "api"})),
        policy_route(match(path={"type": "PathPrefix", "value": "/api"})),
    ),
    RuleCase(
        "linkerd.route.regex",
        policy_route(match(path={"type": "RegularExpression", "value": "/(?=api)"})),
        policy_route(match(path={"type": "RegularExpression", "value": "/api.*"})),
    ),
    RuleCase(
        "linkerd.route.header-name",
        policy_route(match(headers=[{"name": "x caller", "value": "a"}])),
        policy_route(match(headers=[{"name": "x-caller", "value": "a"}])),
    ),
    RuleCase(
        "linkerd.route.header-value",
        gateway_route(match(headers=[{"name": "x-caller", "value": "a\nb"}])),
        gateway_route(match(headers=[{"name": "x-caller", "value": "a b"}])),
    ),
    RuleCase(
        "linkerd.route.redirect",
        policy_route(redirect({"type": "ReplaceFullPath", "replaceFullPath": "v2"})),
        policy_route(redirect({"type": "ReplaceFullPath", "replaceFullPath": "/v2"})),
    ),
    RuleCase(
        "linkerd.route.timeouts",
        policy_route({"timeouts": {"request": "1s", "backendRequest": "2s"}}),
        policy_route({"timeouts": {"request": "2s", "backendRequest": "1500ms"}}),
    ),
    RuleCase(
        "linkerd.route.backend-port",
        gateway_route(backends({"name": "ratings-v2"})),
        gateway_route(backends({"name": "ratings-v2", "port": 9080})),
    ),
    RuleCase("linkerd.tcproute.single-rule", tcp_route(2), tcp_route(1)),
    RuleCase("linkerd.tlsroute.single-rule", tls_route(0), tls_route(1)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_rejects_bad_and_passes_close_good(case: RuleCase) -> None:
    bad, good = linkerd.validate(case.bad), linkerd.validate(case.good)
    assert case.rule in bad.error_rules, bad.errors
    assert good.allowed, good.errors


def test_every_rule_has_a_bad_example() -> None:
    assert {c.rule for c in CASES} == set(linkerd.RULE_IDS)


def test_gateway_kinds_are_admitted_when_they_do_not_parse() -> None:
    """admission.rs:181-191: for Gateway API kinds a spec that does not deserialize is let through."""
    bad_method = match(method="FETCH")
    assert "linkerd.parse" in linkerd.validate(policy_route(bad_method)).error_rules
    assert linkerd.validate(gateway_route(bad_method, backends({"name": "no-port"}))).allowed


def test_backend_port_is_required_only_of_services() -> None:
    other = backends({"group": "example.com", "kind": "Bucket", "name": "b"})
    assert linkerd.validate(gateway_route(other)).allowed


@pytest.mark.parametrize(
    ("identity", "valid"),
    [
        # The inputs of policy-controller/runtime/src/validation.rs:115-244's own tests.
        ("system.local", True),
        ("*", True),
        ("*.system.local", True),
        ("system.local.*", False),
        ("system.local.", False),
        (".system.local", False),
        ("system..local", False),
        ("spiffe://trustdomain", True),
        ("spiffe://trustdomain/path/element", True),
        ("http://domain.test/path/element", False),
        ("spiffe:/path/element", False),
        ("spiffe:///path/element", False),
        ("spiffe:path/element", False),
        ("spiffe://domain.test/path/element?query=", False),
        ("spiffe://domain.test/path/element#fragment-1", False),
        ("spiffe://domain.test:8080/path/element", False),
        ("spiffe://user:password@test.org/path/element", False),
        ("spiffe://test.org/", False),
        ("spiffe://test.org//", False),
        ("spiffe://test.org/path/other/", False),
        ("spiffe://test.org/./other", False),
        ("spiffe://test.org/../other", False),
    ],
)
def test_identity_patterns(identity: str, valid: bool) -> None:
    assert (linkerd.identity_problem(identity) == "") is valid


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        # The inputs of policy-controller/k8s/index/src/outbound/index.rs:2381-2510's own tests.
        ("10s", 10_000),
        ("500ms", 500),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("0", 0),
        ("0s", 0),
        ("0ms", 0),
        ("0.5s", None),
        ("0.0s", None),
        ("0.5m", None),
        ("5", None),
        ("100", None),
        ("999999999999999999d", None),
        ("10x", None),
        ("", None),
        ("-5s", None),
        ("-0.5s", None),
    ],
)
def test_annotation_durations(text: str, ms: int | None) -> None:
    assert linkerd.linkerd_duration_ms(text) == ms


def test_other_kinds_are_not_judged() -> None:
    with pytest.raises(NotCovered):
        linkerd.validate(obj(GATEWAY_V1, "GRPCRoute", {}))


# ---- ServiceProfiles (tests.meshrules.linkerd_sp) -------------------------------------------


def _profile(spec: dict[str, Any], name: str = "web.shop.svc.cluster.local", **top: Any) -> dict[str, Any]:
    return {"apiVersion": "linkerd.io/v1alpha2", "kind": "ServiceProfile",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec, **top}


_SPLIT = {"dstOverrides": [{"authority": "web-v1.shop.svc.cluster.local:80", "weight": 9},
                           {"authority": "web-v2.shop.svc.cluster.local:80", "weight": "100m"}]}
_ROUTE = {"name": "GET /", "condition": {"method": "GET", "pathRegex": "/"}}

SP_CASES = [
    RuleCase("linkerd.sp.strict", _profile({**_SPLIT, "split": []}), _profile(_SPLIT)),
    RuleCase("linkerd.sp.strict", _profile({"dstOverrides": [{"authority": "a:80", "weight": "ten"}]}),
             _profile({"dstOverrides": [{"authority": "a:80", "weight": "10"}]}), note="weight"),
    RuleCase("linkerd.sp.name", _profile(_SPLIT, name="Web.shop"), _profile(_SPLIT, name="web.shop")),
    RuleCase("linkerd.sp.route-name", _profile({"routes": [{**_ROUTE, "name": ""}]}),
             _profile({"routes": [_ROUTE]})),
    RuleCase("linkerd.sp.route-condition", _profile({"routes": [{"name": "r", "condition": {"all": [{}]}}]}),
             _profile({"routes": [{"name": "r", "condition": {"all": [{"method": "GET"}]}}]})),
    RuleCase("linkerd.sp.retry-budget", _profile({"retryBudget": {"retryRatio": 0.2, "ttl": "ten"}}),
             _profile({"retryBudget": {"retryRatio": 0.2, "ttl": "10s"}})),
]


@pytest.mark.parametrize("case", SP_CASES, ids=lambda c: c.id)
def test_service_profile_rule_rejects_bad_and_passes_close_good(case: RuleCase) -> None:
    bad, good = linkerd_sp.validate(case.bad), linkerd_sp.validate(case.good)
    assert case.rule in bad.error_rules, bad.errors
    assert good.allowed, good.errors


def test_every_service_profile_rule_has_a_bad_example() -> None:
    assert {c.rule for c in SP_CASES} == set(linkerd_sp.RULE_IDS)
