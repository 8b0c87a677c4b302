"""Each re-expressed consul-k8s 2.0.3 webhook rule rejects its bad example and passes a close good one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.meshrules import NotCovered, RuleCase, Verdict, consul

V1A1 = "consul.hashicorp.com/v1alpha1"


def entry(
    kind: str, spec: dict[str, Any], *, name: str = "website", namespace: str = "web"
) -> dict[str, Any]:
    return {
        "apiVersion": V1A1,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def splitter(*splits: dict[str, Any], **meta: str) -> dict[str, Any]:
    return entry("ServiceSplitter", {"splits": list(splits) or [{"service": "v1", "weight": 100}]}, **meta)


def weights(*ws: float) -> dict[str, Any]:
    return entry("ServiceSplitter", {"splits": [{"service": f"v{i}", "weight": w} for i, w in enumerate(ws)]})


def router(**route: Any) -> dict[str, Any]:
    return entry("ServiceRouter", {"routes": [{"destination": {"service": "website-v2"}, **route}]})


def http_match(**http: Any) -> dict[str, Any]:
    return {"http": http}


def intentions(
    *sources: dict[str, Any], destination: str = "catalog", namespace: str = "store", **spec: Any
) -> dict[str, Any]:
    body = {"destination": {"name": destination}, "sources": list(sources), **spec}
    return entry("ServiceIntentions", body, name=destination, namespace=namespace)


def source(**fields: Any) -> dict[str, Any]:
    return {"name": "frontend", "action": "allow", **fields}


def permission(**http: Any) -> dict[str, Any]:
    return {"name": "frontend", "permissions": [{"action": "allow", "http": http}]}


def defaults(**spec: Any) -> dict[str, Any]:
    return entry("ServiceDefaults", {"protocol": "http", **spec})


CASES = [
    # Batch rules: the last object of each list is the one judged.
    RuleCase(
        "consul.unique-name",
        [splitter(namespace="web"), splitter(namespace="shop")],
        [splitter(namespace="web"), splitter(name="website-shop", namespace="shop")],
    ),
    RuleCase(
        "consul.unique-name",
        [splitter(namespace="web"), splitter(namespace="shop")],
        [splitter(namespace="web"), splitter(namespace="shop")],
        good_mode="mirror",
        note="mirrored",
    ),
    RuleCase(
        "consul.intentions.unique-destination",
        [intentions(source()), intentions(source(), namespace="shop")],
        [intentions(source()), intentions(source(), destination="payments", namespace="shop")],
    ),
    RuleCase(
        "consul.intentions.unique-destination",
        [intentions(source()), intentions(source())],
        [intentions(source()), intentions(source(), namespace="shop")],
        mode="mirror",
        note="mirrored",
    ),
    RuleCase("consul.splitter.weight-range", weights(0.005, 99.995), weights(0.01, 99.99)),
    RuleCase("consul.splitter.weights-sum", weights(50, 40), weights(60, 40)),
    # The sum is taken in float32 (servicesplitter_types.go:249-260): exact in decimal is not enough.
    RuleCase(
        "consul.splitter.weights-sum",
        weights(10.34, 82.92, 6.74),
        weights(10.34, 6.74, 82.92),
        note="float32",
    ),
    RuleCase(
        "consul.splitter.namespace-needs-enterprise",
        splitter({"service": "v2", "weight": 100, "namespace": "x"}),
        splitter({"service": "v2", "weight": 100, "namespace": "x"}),
        good_mode="mirror",
    ),
    RuleCase(
        "consul.splitter.partition-needs-partitions",
        splitter({"service": "v2", "weight": 100, "partition": "p"}),
        splitter({"service": "v2", "weight": 100}),
    ),
    RuleCase(
        "consul.router.prefix-rewrite-needs-path",
        router(
            match=http_match(header=[{"name": "x-canary", "exact": "1"}]),
            destination={"service": "website-v2", "prefixRewrite": "/"},
        ),
        router(
            match=http_match(pathPrefix="/v2", header=[{"name": "x-canary", "exact": "1"}]),
            destination={"service": "website-v2", "prefixRewrite": "/"},
        ),
    ),
    RuleCase(
        "consul.router.one-path-match",
        router(match=http_match(pathExact="/a", pathPrefix="/a")),
        router(match=http_match(pathPrefix="/a")),
    ),
    RuleCase(
        "consul.router.path-slash",
        router(match=http_match(pathPrefix="api")),
        router(match=http_match(pathPrefix="/api")),
    ),
    RuleCase(
        "consul.router.header-one-match",
        router(match=http_match(header=[{"name": "x", "exact": "a", "prefix": "b"}])),
        router(match=http_match(header=[{"name": "x", "exact": "a"}])),
    ),
    RuleCase(
        "consul.router.query-one-match",
        router(match=http_match(queryParam=[{"name": "q", "exact": "a", "present": True}])),
        router(match=http_match(queryParam=[{"name": "q", "exact": "a"}])),
    ),
    RuleCase(
        "consul.router.namespace-needs-enterprise",
        router(destination={"service": "website-v2", "namespace": "shop"}),
        router(destination={"service": "website-v2", "namespace": "shop"}),
        good_mode="mirror",
    ),
    RuleCase(
        "consul.router.partition-needs-partitions",
        router(destination={"service": "website-v2", "partition": "p"}),
        router(destination={"service": "website-v2"}),
    ),
    RuleCase("consul.intentions.sources-required", intentions(), intentions(source())),
    RuleCase(
        "consul.intentions.action-xor-permissions",
        intentions({**permission(pathPrefix="/products"), "action": "allow"}),
        intentions(permission(pathPrefix="/products")),
    ),
    RuleCase(
        "consul.intentions.action", intentions(source(action="permit")), intentions(source(action="deny"))
    ),
    RuleCase("consul.intentions.source-name", intentions(source(name="")), intentions(source())),
    RuleCase("consul.intentions.wildcard", intentions(source(peer="*")), intentions(source(peer="dc2"))),
    RuleCase(
        "consul.intentions.partition-needs-partitions",
        intentions(source(partition="p")),
        intentions(source()),
    ),
    RuleCase(
        "consul.intentions.peer-partition-sameness",
        intentions(source(peer="dc2", samenessGroup="g")),
        intentions(source(peer="dc2")),
    ),
    RuleCase(
        "consul.intentions.description-length",
        intentions(source(description="d" * 513)),
        intentions(source(description="d" * 512)),
    ),
    RuleCase(
        "consul.intentions.one-path-match",
        intentions(permission(pathExact="/a", pathRegex="/a.*")),
        intentions(permission(pathRegex="/a.*")),
    ),
    RuleCase(
        "consul.intentions.path-slash",
        intentions(permission(pathPrefix="products")),
        intentions(permission(pathPrefix="/products")),
    ),
    RuleCase(
        "consul.intentions.method",
        intentions(permission(methods=["FETCH"])),
        intentions(permission(methods=["GET"])),
    ),
    RuleCase(
        "consul.intentions.method-duplicate",
        intentions(permission(methods=["GET", "GET"])),
        intentions(permission(methods=["GET", "HEAD"])),
    ),
    RuleCase(
        "consul.intentions.header-one-match",
        intentions(permission(header=[{"name": "accept", "exact": "a", "present": True}])),
        intentions(permission(header=[{"name": "accept", "exact": "a"}])),
    ),
    RuleCase(
        "consul.intentions.header-ignore-case",
        intentions(permission(header=[{"name": "accept", "regex": "a.*", "ignoreCase": True}])),
        intentions(permission(header=[{"name": "accept", "prefix": "a", "ignoreCase": True}])),
    ),
    RuleCase(
        "consul.intentions.namespace-needs-enterprise",
        intentions(source(namespace="web")),
        intentions(source(namespace="web")),
        good_mode="mirror",
    ),
    RuleCase(
        "consul.intentions.namespace-needs-enterprise",
        {
            **intentions(source()),
            "spec": {"destination": {"name": "catalog", "namespace": "store"}, "sources": [source()]},
        },
        intentions(source()),
        note="destination",
    ),
    RuleCase(
        "consul.intentions.jwt-provider-name",
        intentions(source(), jwt={"providers": [{}]}),
        intentions(source(), jwt={"providers": [{"name": "okta"}]}),
    ),
    RuleCase("consul.defaults.protocol", defaults(protocol="https"), defaults(protocol="http2")),
    RuleCase(
        "consul.defaults.mesh-gateway-mode",
        defaults(meshGateway={"mode": "remotely"}),
        defaults(meshGateway={"mode": "remote"}),
    ),
    RuleCase(
        "consul.defaults.transparent-proxy",
        defaults(transparentProxy={"outboundListenerPort": 15001}),
        defaults(transparentProxy={"dialedDirectly": True}),
    ),
    RuleCase(
        "consul.defaults.mutual-tls-mode",
        defaults(mutualTLSMode="strictest"),
        defaults(mutualTLSMode="strict"),
    ),
    RuleCase("consul.defaults.mode", defaults(mode="transparent"), defaults()),
    RuleCase(
        "consul.defaults.destination",
        defaults(destination={"addresses": [], "port": 443}),
        defaults(destination={"addresses": ["api.example.com"], "port": 443}),
    ),
    RuleCase(
        "consul.defaults.negative-number",
        defaults(maxInboundConnections=-1),
        defaults(maxInboundConnections=0),
    ),
    RuleCase(
        "consul.defaults.balance-inbound",
        defaults(balanceInboundConnections="round_robin"),
        defaults(balanceInboundConnections="exact_balance"),
    ),
    RuleCase(
        "consul.defaults.upstream",
        defaults(upstreamConfig={"overrides": [{"connectTimeoutMs": 5}]}),
        defaults(upstreamConfig={"overrides": [{"name": "db", "connectTimeoutMs": 5}]}),
    ),
    RuleCase(
        "consul.defaults.expose",
        defaults(expose={"paths": [{"path": "health", "protocol": "http"}]}),
        defaults(expose={"paths": [{"path": "/health", "protocol": "http"}]}),
    ),
    RuleCase(
        "consul.defaults.rate-limits",
        defaults(rateLimits={"instanceLevel": {}}),
        defaults(rateLimits={"instanceLevel": {"requestsPerSecond": 10}}),
    ),
    RuleCase(
        "consul.defaults.envoy-extension",
        defaults(envoyExtensions=[{"name": "builtin/lua"}]),
        defaults(envoyExtensions=[{"name": "builtin/lua", "arguments": {"Script": "x"}}]),
    ),
]


def _judge(objs: Any, mode: str) -> Verdict:
    batch = objs if isinstance(objs, list) else [objs]
    return consul.validate_batch(batch, mode=mode)[-1]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_rejects_bad_and_passes_close_good(case: RuleCase) -> None:
    bad, good = _judge(case.bad, case.mode), _judge(case.good, case.good_mode or case.mode)
    assert case.rule in bad.error_rules, bad.errors
    assert good.allowed, good.errors


def test_every_rule_has_a_bad_example() -> None:
    assert {c.rule for c in CASES} == set(consul.RULE_IDS)


@pytest.mark.parametrize("mode", ["off", "mirror"])
def test_intention_sources_namespace_depends_on_the_mode(mode: str) -> None:
    """The rejection issue 11 found on Consul CE, and its absence with Enterprise namespaces."""
    verdict = consul.validate(intentions(source(namespace="web")), mode=mode)
    assert verdict.allowed is (mode == "mirror")


def test_mirroring_defaults_the_destination_namespace() -> None:
    """With mirroring, an intention without destination.namespace is in its Kubernetes namespace."""
    first = intentions(source())
    same_place = {
        **intentions(source()),
        "spec": {"destination": {"name": "catalog", "namespace": "store"}, "sources": [source()]},
    }
    assert not consul.validate_batch([first, same_place], mode="mirror")[1].allowed


def test_uniqueness_is_per_kind() -> None:
    objs = [splitter(namespace="web"), router(), defaults()]
    assert all(v.allowed for v in consul.validate_batch(objs))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Consul namespace mode"):
        consul.meta_for("prefix")


def test_other_kinds_are_not_judged() -> None:
    with pytest.raises(NotCovered):
        consul.validate(entry("ServiceResolver", {}))
