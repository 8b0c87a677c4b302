"""Linkerd 2.20's policy admission webhook, in Python.

Re-expressed from linkerd/linkerd2 at tag version-2.20: the handler
``policy-controller/runtime/src/admission.rs`` and what it calls (the spec
types of ``policy-controller/k8s/api``, the index's conversions in
``policy-controller/k8s/index``, ``runtime/src/validation.rs``). Every rule
cites its file and lines there. The webhook sees the kinds its chart
registers (``charts/linkerd-control-plane/templates/destination-rbac.yaml:
177-197``); those smi2mesh emits are covered here: Server, HTTPRoute (both
groups), AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication,
Gateway API TCPRoute and TLSRoute.

A request passes two stages (``admission.rs:173-203``): the spec must
deserialize into the Rust type (``serde``; a failure denies, except for
Gateway API kinds, which are admitted with a log line), then the kind's
``Validate`` impl runs and its first error denies. Like the Rust code, the
semantic stage stops at its first error.

Two stand-ins: Rust's ``regex`` crate (1.12) is judged by RE2 (google-re2),
which shares its syntax family (no look-around, no back-references); and the
``http`` crate's header parsers (1.2) are restated from their byte tables.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import re2

from tests.meshrules import Collector, NotCovered, Obj, Verdict, as_list, as_map, as_str, maps

POLICY = "policy.linkerd.io"
GATEWAY = "gateway.networking.k8s.io"

RULE_IDS = (
    "linkerd.parse",
    "linkerd.server.access-policy",
    "linkerd.authz.namespace-target",
    "linkerd.authz.single-meshtls",
    "linkerd.authz.single-serviceaccount",
    "linkerd.authz.meshtls-with-serviceaccount",
    "linkerd.authz.single-network",
    "linkerd.authz.authn-kind",
    "linkerd.authz.target-kind",
    "linkerd.meshtls.identity",
    "linkerd.meshtls.identity-ref",
    "linkerd.netauthn.networks-empty",
    "linkerd.network.except-negates",
    "linkerd.network.except-outside",
    "linkerd.route.egress-port",
    "linkerd.route.annotations",
    "linkerd.route.path-absolute",
    "linkerd.route.regex",
    "linkerd.route.header-name",
    "linkerd.route.header-value",
    "linkerd.route.redirect",
    "linkerd.route.timeouts",
    "linkerd.route.backend-port",
    "linkerd.tcproute.single-rule",
    "linkerd.tlsroute.single-rule",
)


class _Deny(Exception):
    """The first error of the semantic stage: the Rust code returns it with ``?``/``bail!``."""

    def __init__(self, rule: str, path: str, detail: str) -> None:
        super().__init__(detail)
        self.rule, self.path, self.detail = rule, path, detail


def _group(obj: Obj) -> str:
    return str(obj.get("apiVersion", "")).split("/", 1)[0].lower()


def validate(obj: Obj) -> Verdict:
    """Linkerd's answer to creating ``obj``."""
    # admission.rs:118-171 (admit): dispatch on group and kind, case-insensitively.
    key = (_group(obj), str(obj.get("kind", "")).lower())
    handler = _HANDLERS.get(key)
    if handler is None:
        raise NotCovered(f"{obj.get('apiVersion')} {obj.get('kind')}")
    parse, check, lenient = handler
    c = Collector(RULE_IDS)
    meta = as_map(obj.get("metadata"))
    # admission.rs:225-240 (parse_spec): a missing spec fails to parse.
    spec = obj.get("spec")
    problems = ["spec is missing"] if not isinstance(spec, Mapping) else parse(spec)
    if problems:
        # admission.rs:181-191: Gateway API kinds are admitted when their spec does not parse.
        if not lenient:
            for problem in problems:
                c.error("linkerd.parse", "spec", problem)
        return c.verdict()
    assert isinstance(spec, Mapping)
    try:
        check(
            spec,
            as_str(meta.get("namespace")),
            {k: str(v) for k, v in as_map(meta.get("annotations")).items()},
        )
    except _Deny as deny:
        c.error(deny.rule, deny.path, deny.detail)
    return c.verdict()


def validate_batch(objs: Iterable[Obj]) -> list[Verdict]:
    """Linkerd's webhook judges each object alone; the batch form keeps the API uniform."""
    return [validate(o) for o in objs]


# --- serde: does the spec deserialize? ---------------------------------------------------

_Problems = list[str]


def _required_str(m: Obj, field: str, path: str, out: _Problems) -> None:
    if not isinstance(m.get(field), str):
        out.append(f"{path}.{field}: required string")


def _opt_str(m: Obj, field: str, path: str, out: _Problems) -> None:
    if m.get(field) is not None and not isinstance(m.get(field), str):
        out.append(f"{path}.{field}: not a string")


def _parse_target_ref(ref: Any, path: str, out: _Problems, *, namespaced: bool) -> None:
    # policy-controller/k8s/api/src/policy/target_ref.rs:12-29 (LocalTargetRef, NamespacedTargetRef)
    if not isinstance(ref, Mapping):
        out.append(f"{path}: required object")
        return
    _required_str(ref, "kind", path, out)
    _required_str(ref, "name", path, out)
    _opt_str(ref, "group", path, out)
    if namespaced:
        _opt_str(ref, "namespace", path, out)


def _parse_selector(sel: Any, path: str, out: _Problems) -> None:
    # policy-controller/k8s/api/src/labels.rs:15-37 (Selector, Expression, Operator)
    if not isinstance(sel, Mapping):
        out.append(f"{path}: not a label selector")
        return
    labels = sel.get("matchLabels")
    if labels is not None and not (
        isinstance(labels, Mapping) and all(isinstance(v, str) for v in labels.values())
    ):
        out.append(f"{path}.matchLabels: not a map of strings")
    for i, expr in enumerate(maps(sel.get("matchExpressions"))):
        if not isinstance(expr.get("key"), str):
            out.append(f"{path}.matchExpressions[{i}].key: required string")
        if expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
            out.append(f"{path}.matchExpressions[{i}].operator: unknown operator")


def _parse_server(spec: Obj) -> _Problems:
    # policy-controller/k8s/api/src/policy/server.rs:16-54 (ServerSpec)
    out: _Problems = []
    selectors = [k for k in ("podSelector", "externalWorkloadSelector") if k in spec]
    if not selectors:
        out.append("podSelector or externalWorkloadSelector: one is required")
    for key in selectors:
        _parse_selector(spec[key], f"spec.{key}", out)
    port = spec.get("port")
    # server.rs:32-38: a port is a non-zero u16 or a name.
    if isinstance(port, bool) or not ((isinstance(port, int) and 0 < port < 65536) or isinstance(port, str)):
        out.append(f"spec.port: {port!r} is neither a port number in 1-65535 nor a name")
    if spec.get("proxyProtocol") is not None and spec.get("proxyProtocol") not in (
        "unknown",
        "HTTP/1",
        "HTTP/2",
        "gRPC",
        "opaque",
        "TLS",
    ):
        out.append(f"spec.proxyProtocol: unknown protocol {spec.get('proxyProtocol')!r}")
    _opt_str(spec, "accessPolicy", "spec", out)
    return out


def _parse_authorization_policy(spec: Obj) -> _Problems:
    # policy-controller/k8s/api/src/policy/authorization_policy.rs (AuthorizationPolicySpec):
    # targetRef and requiredAuthenticationRefs are both required.
    out: _Problems = []
    _parse_target_ref(spec.get("targetRef"), "spec.targetRef", out, namespaced=False)
    refs = spec.get("requiredAuthenticationRefs")
    if not isinstance(refs, list):
        out.append("spec.requiredAuthenticationRefs: required list")
    for i, ref in enumerate(as_list(refs)):
        _parse_target_ref(ref, f"spec.requiredAuthenticationRefs[{i}]", out, namespaced=True)
    return out


def _parse_meshtls(spec: Obj) -> _Problems:
    # policy-controller/k8s/api/src/policy/meshtls_authentication.rs (MeshTLSAuthenticationSpec)
    out: _Problems = []
    for i, ident in enumerate(as_list(spec.get("identities"))):
        if not isinstance(ident, str):
            out.append(f"spec.identities[{i}]: not a string")
    for i, ref in enumerate(as_list(spec.get("identityRefs"))):
        _parse_target_ref(ref, f"spec.identityRefs[{i}]", out, namespaced=True)
    return out


def _parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    # policy-controller/k8s/api/src/policy/network.rs:46-53,93-107 (Cidr: an IpNet or an IpAddr);
    # ipnet keeps host bits and takes only a numeric prefix length.
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?", value):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _parse_networks(networks: Any, path: str, out: _Problems) -> None:
    if not isinstance(networks, list):
        out.append(f"{path}: required list")
        return
    for i, net in enumerate(maps(networks)):
        if _parse_cidr(net.get("cidr")) is None:
            out.append(f"{path}[{i}].cidr: not an IP address or CIDR")
        for j, ex in enumerate(as_list(net.get("except"))):
            if _parse_cidr(ex) is None:
                out.append(f"{path}[{i}].except[{j}]: not an IP address or CIDR")


def _parse_network_authentication(spec: Obj) -> _Problems:
    # policy-controller/k8s/api/src/policy/network_authentication.rs (networks: Vec<Network>)
    out: _Problems = []
    _parse_networks(spec.get("networks"), "spec.networks", out)
    return out


_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def _parse_route_common(spec: Obj, out: _Problems) -> None:
    # The generated Gateway API types (HTTPRouteParentRefs, HTTPRouteRulesMatches) used by both
    # HTTPRoute kinds: a parent names its target; match types and methods are closed enums.
    for i, parent in enumerate(as_list(spec.get("parentRefs"))):
        _required_str(as_map(parent), "name", f"spec.parentRefs[{i}]", out)
    for i, rule in enumerate(as_list(spec.get("rules"))):
        for j, match in enumerate(maps(as_map(rule).get("matches"))):
            mpath = f"spec.rules[{i}].matches[{j}]"
            if as_map(match.get("path")).get("type") not in (
                None,
                "Exact",
                "PathPrefix",
                "RegularExpression",
            ):
                out.append(f"{mpath}.path.type: unknown")
            if match.get("method") is not None and match.get("method") not in _METHODS:
                out.append(f"{mpath}.method: unknown method {match.get('method')!r}")
            for k, header in enumerate(maps(match.get("headers"))):
                if header.get("type") not in (None, "Exact", "RegularExpression"):
                    out.append(f"{mpath}.headers[{k}].type: unknown")
                _required_str(header, "name", f"{mpath}.headers[{k}]", out)
                _required_str(header, "value", f"{mpath}.headers[{k}]", out)
            for k, param in enumerate(maps(match.get("queryParams"))):
                if param.get("type") not in (None, "Exact", "RegularExpression"):
                    out.append(f"{mpath}.queryParams[{k}].type: unknown")
                _required_str(param, "name", f"{mpath}.queryParams[{k}]", out)
                _required_str(param, "value", f"{mpath}.queryParams[{k}]", out)


def _parse_policy_http_route(spec: Obj) -> _Problems:
    # policy-controller/k8s/api/src/policy/httproute.rs:24-150 (HttpRouteSpec, HttpRouteRule,
    # HttpRouteFilter): filters are tagged by type, and only three types exist.
    out: _Problems = []
    _parse_route_common(spec, out)
    for i, rule in enumerate(maps(spec.get("rules"))):
        for j, f in enumerate(maps(rule.get("filters"))):
            field = {
                "RequestHeaderModifier": "requestHeaderModifier",
                "ResponseHeaderModifier": "responseHeaderModifier",
                "RequestRedirect": "requestRedirect",
            }.get(as_str(f.get("type")))
            if field is None:
                out.append(f"spec.rules[{i}].filters[{j}].type: {f.get('type')!r} is not a Linkerd filter")
            elif not isinstance(f.get(field), Mapping):
                out.append(f"spec.rules[{i}].filters[{j}].{field}: required")
        timeouts = as_map(rule.get("timeouts"))
        for key in ("request", "backendRequest"):
            if timeouts.get(key) is not None and go_duration(timeouts.get(key)) is None:
                out.append(f"spec.rules[{i}].timeouts.{key}: not a duration")
    return out


def _parse_gateway_http_route(spec: Obj) -> _Problems:
    out: _Problems = []
    _parse_route_common(spec, out)
    return out


def _parse_single_rule_route(spec: Obj) -> _Problems:
    # The generated TCPRouteSpec / TLSRouteSpec: rules is a required list.
    return [] if isinstance(spec.get("rules"), list) else ["spec.rules: required list"]


# --- semantics, per kind --------------------------------------------------------------------


def _targets(ref: Obj, group: str, kind: str) -> bool:
    # policy-controller/k8s/api/src/policy.rs:31-48 (targets_kind): no group or an empty one is "core".
    ref_group = as_str(ref.get("group")) or "core"
    return ref_group.lower() == (group or "core").lower() and as_str(ref.get("kind")).lower() == kind.lower()


def _check_server(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:347-365, with policy-controller/k8s/index/src/defaults.rs:31-57 (DefaultPolicy::from_str)
    policy = spec.get("accessPolicy")
    modes = (
        "all-authenticated",
        "all-unauthenticated",
        "cluster-authenticated",
        "cluster-unauthenticated",
        "deny",
        "audit",
    )
    if policy is not None and policy not in modes:
        raise _Deny("linkerd.server.access-policy", "spec.accessPolicy", f"unknown mode {policy!r}")


def _check_authorization_policy(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:242-307
    target = as_map(spec.get("targetRef"))
    if _targets(target, "", "Namespace") and as_str(target.get("name")) != ns:
        raise _Deny("linkerd.authz.namespace-target", "spec.targetRef.name", "another namespace")
    refs = [as_map(r) for r in as_list(spec.get("requiredAuthenticationRefs"))]
    mtls = sum(_targets(r, POLICY, "MeshTLSAuthentication") for r in refs)
    sas = sum(_targets(r, "", "ServiceAccount") for r in refs)
    nets = sum(_targets(r, POLICY, "NetworkAuthentication") for r in refs)
    path = "spec.requiredAuthenticationRefs"
    if mtls > 1:
        raise _Deny("linkerd.authz.single-meshtls", path, f"{mtls} MeshTLSAuthentications")
    if sas > 1:
        raise _Deny("linkerd.authz.single-serviceaccount", path, f"{sas} ServiceAccounts")
    if mtls + sas > 1:
        raise _Deny(
            "linkerd.authz.meshtls-with-serviceaccount",
            path,
            "both a MeshTLSAuthentication and a ServiceAccount",
        )
    if nets > 1:
        raise _Deny("linkerd.authz.single-network", path, f"{nets} NetworkAuthentications")
    if mtls + sas + nets < len(refs):
        raise _Deny("linkerd.authz.authn-kind", path, "an unsupported authentication kind")
    # admission.rs:302-303 -> policy-controller/k8s/index/src/inbound/authorization_policy.rs:64-87 (target)
    if not (
        _targets(target, POLICY, "Server")
        or _targets(target, "", "Namespace")
        or _targets(target, POLICY, "HTTPRoute")
        or _targets(target, GATEWAY, "HTTPRoute")
        or _targets(target, GATEWAY, "GRPCRoute")
    ):
        raise _Deny("linkerd.authz.target-kind", "spec.targetRef", f"cannot target {target.get('kind')!r}")


# policy-controller/runtime/src/validation.rs:6-12
_TRUST_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_PATH_CHARS = _TRUST_DOMAIN_CHARS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DNS_LIKE_IDENTITY = re.compile(r"(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def identity_problem(identity: str) -> str:
    """Why Linkerd refuses a MeshTLSAuthentication identity, or ``""``."""
    # policy-controller/runtime/src/validation.rs:55-113 (validate_identity, validate_path)
    prefix = "spiffe://"
    if not identity.startswith(prefix):
        return "" if _DNS_LIKE_IDENTITY.fullmatch(identity) else "neither a SPIFFE ID nor a DNS-like name"
    rest = identity[len(prefix) :]
    cut = rest.find("/")
    domain, path = (rest, "") if cut < 0 else (rest[:cut], rest[cut:])
    if domain == "":
        return "no trust domain"
    if any(ch not in _TRUST_DOMAIN_CHARS for ch in domain):
        return "bad trust domain character"
    segments = path.split("/")[1:] if path else []
    for index, segment in enumerate(segments):
        if any(ch not in _PATH_CHARS for ch in segment):
            return "bad path character"
        if segment == "":
            return "trailing slash" if index == len(segments) - 1 else "empty path segment"
        if segment in (".", ".."):
            return "dot path segment"
    return ""


def _check_meshtls(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:324-345
    for i, ident in enumerate(as_list(spec.get("identities"))):
        problem = identity_problem(ident)
        if problem:
            raise _Deny("linkerd.meshtls.identity", f"spec.identities[{i}]", f"{ident!r}: {problem}")
    # admission.rs:309-322 (validate_identity_ref): ServiceAccounts, or cluster-scoped Namespaces.
    for i, ref in enumerate(maps(spec.get("identityRefs"))):
        path = f"spec.identityRefs[{i}]"
        if _targets(ref, "", "ServiceAccount"):
            continue
        if _targets(ref, "", "Namespace"):
            if ref.get("namespace") is not None:
                raise _Deny(
                    "linkerd.meshtls.identity-ref", f"{path}.namespace", "a Namespace ref has no namespace"
                )
            continue
        raise _Deny("linkerd.meshtls.identity-ref", f"{path}.kind", f"{ref.get('kind')!r} is not an identity")


def _net_contains(
    outer: ipaddress.IPv4Network | ipaddress.IPv6Network, inner: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> bool:
    # policy-controller/k8s/api/src/policy/network.rs:61-70 (Cidr::contains), via ipnet's contains
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _check_networks(networks: list[Any], path: str) -> None:
    # admission.rs:405-426 (validate_networks)
    for i, net in enumerate(maps(networks)):
        cidr = _parse_cidr(net.get("cidr"))
        assert cidr is not None
        for j, ex in enumerate(as_list(net.get("except"))):
            except_net = _parse_cidr(ex)
            assert except_net is not None
            if _net_contains(except_net, cidr):
                raise _Deny(
                    "linkerd.network.except-negates", f"{path}[{i}].except[{j}]", "covers the whole cidr"
                )
            if not _net_contains(cidr, except_net):
                raise _Deny("linkerd.network.except-outside", f"{path}[{i}].except[{j}]", "outside the cidr")


def _check_network_authentication(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:367-382
    networks = as_list(spec.get("networks"))
    if not networks:
        raise _Deny("linkerd.netauthn.networks-empty", "spec.networks", "needs at least one network")
    _check_networks(networks, "spec.networks")


def _is_parent_egress_network(parent: Obj) -> bool:
    # policy-controller/k8s/index/src/outbound/index.rs:1630-1652
    return (
        as_str(parent.get("group")).lower() == POLICY
        and parent.get("kind") is not None
        and as_str(parent.get("kind")).lower() == "egressnetwork"
    )


def _is_parent_service(parent: Obj) -> bool:
    # policy-controller/k8s/index/src/outbound/index.rs:1621-1644: a parent ref needs a kind.
    group = parent.get("group")
    return (
        parent.get("kind") is not None
        and (group is None or as_str(group).lower() in ("core", ""))
        and as_str(parent.get("kind")).lower() == "service"
    )


def _check_egress_parents(spec: Obj) -> None:
    # admission.rs:490-496 (and 616-622, 760-766, 789-795): an EgressNetwork parent needs a port.
    for i, parent in enumerate(maps(spec.get("parentRefs"))):
        if _is_parent_egress_network(parent) and parent.get("port") is None:
            raise _Deny(
                "linkerd.route.egress-port", f"spec.parentRefs[{i}].port", "needed for an EgressNetwork"
            )


_RUST_U16 = re.compile(r"\+?[0-9]+")


def linkerd_duration_ms(text: str) -> int | None:
    """``parse_duration`` of the outbound index, in milliseconds, or None when refused."""
    # policy-controller/k8s/index/src/outbound/index.rs:2322-2359 (parse_duration)
    s = text.strip()
    if s.startswith("-"):
        return None
    digits = [i for i, ch in enumerate(s) if ch.isascii() and ch.isdigit()]
    if not digits:
        return None
    magnitude, unit = s[: digits[-1] + 1], s[digits[-1] + 1 :]
    if "." in magnitude or not _RUST_U16.fullmatch(magnitude):
        return None
    value = int(magnitude)
    mul = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}.get(unit)
    if unit == "" and value == 0:
        return 0
    if mul is None or value * mul >= 1 << 64:
        return None
    return value * mul


def _check_route_annotations(spec: Obj, annotations: Mapping[str, str]) -> None:
    # admission.rs:498-506 (and 624-631): only for routes with a Service or EgressNetwork parent.
    parents = [as_map(p) for p in as_list(spec.get("parentRefs"))]
    if not any(_is_parent_service(p) or _is_parent_egress_network(p) for p in parents):
        return

    def bad(key: str) -> _Deny:
        return _Deny(
            "linkerd.route.annotations", f"metadata.annotations[{key}]", f"{annotations[key]!r} refused"
        )

    # policy-controller/k8s/index/src/outbound/index/http.rs:371-445 (parse_http_retry)
    if "retry.linkerd.io/limit" in annotations:
        limit = annotations["retry.linkerd.io/limit"]
        if not _RUST_U16.fullmatch(limit) or int(limit) > 65535:
            raise bad("retry.linkerd.io/limit")
    if (
        "retry.linkerd.io/timeout" in annotations
        and linkerd_duration_ms(annotations["retry.linkerd.io/timeout"]) is None
    ):
        raise bad("retry.linkerd.io/timeout")
    if "retry.linkerd.io/http" in annotations:

        def code(s: str) -> int | None:
            return int(s) if re.fullmatch(r"\+?[0-9]+", s) and 100 <= int(s) < 600 else None

        for cond in annotations["retry.linkerd.io/http"].split(","):
            if cond.lower() in ("5xx", "gateway-error") or code(cond) is not None:
                continue
            start, sep, end = cond.partition("-")
            lo, hi = code(start), code(end)
            if not (sep and lo is not None and hi is not None and lo <= hi):
                raise bad("retry.linkerd.io/http")
    # policy-controller/k8s/index/src/outbound/index.rs:2236-2256 (parse_timeouts)
    for key in ("timeout.linkerd.io/response", "timeout.linkerd.io/request", "timeout.linkerd.io/idle"):
        if key in annotations and linkerd_duration_ms(annotations[key]) is None:
            raise bad(key)


# The http crate (1.2): a header name is an RFC 9110 token; a value has no control bytes but tab.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_name(name: str, path: str) -> None:
    if not _TOKEN.fullmatch(name) or len(name.encode()) >= 1 << 16:
        raise _Deny("linkerd.route.header-name", path, f"{name!r} is not a header name")


def _header_value(value: str, path: str) -> None:
    if any((b < 32 and b != 9) or b == 127 for b in value.encode()):
        raise _Deny("linkerd.route.header-value", path, "control characters in a header value")


def _regex(pattern: str, path: str) -> None:
    try:
        re2.compile(pattern)
    except re2.error as exc:
        raise _Deny("linkerd.route.regex", path, f"{pattern!r} does not compile") from exc


def _check_match(match: Obj, path: str) -> None:
    # policy-controller/k8s/index/src/routes/http.rs:6-94 (try_match, path_match, header_match,
    # query_param_match): prefix and exact paths are absolute, regexes compile, headers parse.
    path_match = match.get("path")
    if isinstance(path_match, Mapping):
        value = path_match.get("value")
        value = "/" if value is None else as_str(value)
        kind = path_match.get("type")
        if kind in (None, "Exact", "PathPrefix") and not value.startswith("/"):
            raise _Deny("linkerd.route.path-absolute", f"{path}.path.value", f"{value!r} is not absolute")
        if kind == "RegularExpression":
            _regex(value, f"{path}.path.value")
    for i, header in enumerate(maps(match.get("headers"))):
        hpath = f"{path}.headers[{i}]"
        _header_name(as_str(header.get("name")), f"{hpath}.name")
        if header.get("type") == "RegularExpression":
            _regex(as_str(header.get("value")), f"{hpath}.value")
        else:
            _header_value(as_str(header.get("value")), f"{hpath}.value")
    for i, param in enumerate(maps(match.get("queryParams"))):
        if param.get("type") == "RegularExpression":
            _regex(as_str(param.get("value")), f"{path}.queryParams[{i}].value")


def _check_header_modifier(modifier: Obj, path: str) -> None:
    # policy-controller/k8s/index/src/routes/http.rs:96-124,158-186 (request/response_header_modifier)
    for key in ("add", "set"):
        for i, item in enumerate(maps(modifier.get(key))):
            _header_name(as_str(item.get("name")), f"{path}.{key}[{i}].name")
            _header_value(as_str(item.get("value")), f"{path}.{key}[{i}].value")
    for i, name in enumerate(as_list(modifier.get("remove"))):
        _header_name(as_str(name), f"{path}.remove[{i}]")


def _check_redirect(redirect: Obj, path: str) -> None:
    # policy-controller/k8s/index/src/routes/http.rs:220-246 (req_redirect) and 280-302 (path_modifier)
    modifier = redirect.get("path")
    if isinstance(modifier, Mapping):
        full, prefix = modifier.get("replaceFullPath"), modifier.get("replacePrefixMatch")
        chosen = full if full is not None else prefix
        if chosen is None:
            raise _Deny(
                "linkerd.route.redirect", f"{path}.path", "needs replaceFullPath or replacePrefixMatch"
            )
        if not as_str(chosen).startswith("/"):
            raise _Deny("linkerd.route.redirect", f"{path}.path", f"{chosen!r} is not absolute")
    status = redirect.get("statusCode")
    # StatusCode::from_u16 takes 100-999.
    if status is not None and not (isinstance(status, int) and 100 <= status <= 999):
        raise _Deny("linkerd.route.redirect", f"{path}.statusCode", f"{status!r} is not a status code")


def _check_filters(rule: Obj, path: str, *, tagged: bool) -> None:
    # admission.rs:508-522 (Linkerd filters: one body, chosen by type) and 633-644 (Gateway API
    # filters: every body present is checked).
    for i, f in enumerate(maps(rule.get("filters"))):
        fpath = f"{path}.filters[{i}]"
        kind = f.get("type")
        for field, check in (
            ("requestHeaderModifier", _check_header_modifier),
            ("responseHeaderModifier", _check_header_modifier),
            ("requestRedirect", _check_redirect),
        ):
            if tagged and as_str(kind).lower() != field.lower():
                continue
            body = f.get(field)
            if isinstance(body, Mapping):
                check(body, f"{fpath}.{field}")


def go_duration(text: Any) -> tuple[bool, float] | None:
    """``K8sDuration::from_str``: (is negative, seconds), or None when refused."""
    # policy-controller/k8s/api/src/duration.rs:68-125
    if not isinstance(text, str):
        return None
    units = {
        "ns": 1e-9,
        "us": 1e-6,
        "\u00b5s": 1e-6,
        "\u03bcs": 1e-6,
        "ms": 1e-3,
        "s": 1.0,
        "m": 60.0,
        "h": 3600.0,
    }
    negative = text.startswith("-")
    s = text.lstrip("+").lstrip("-")
    total = 0.0
    while s:
        start = next((i for i, ch in enumerate(s) if ch.isalpha()), None)
        if start is None:
            return (negative, 0.0) if s == "0" else None
        value, rest = s[:start], s[start:]
        end = next((i for i, ch in enumerate(rest) if not ch.isalpha()), len(rest))
        unit, s = rest[:end], rest[end:]
        if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", value) or unit not in units:
            return None
        total += float(value) * units[unit]
    return negative, total


def _check_timeouts(timeouts: Obj, path: str) -> None:
    # admission.rs:524-545 (validate_timeouts)
    request, backend = go_duration(timeouts.get("request")), go_duration(timeouts.get("backendRequest"))
    if backend is not None and backend[0]:
        raise _Deny("linkerd.route.timeouts", f"{path}.backendRequest", "negative")
    if request is not None and request[0]:
        raise _Deny("linkerd.route.timeouts", f"{path}.request", "negative")
    if request is not None and backend is not None and request[1] < backend[1]:
        raise _Deny("linkerd.route.timeouts", f"{path}.backendRequest", "longer than the request timeout")


def _check_policy_http_route(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:481-573
    _check_egress_parents(spec)
    _check_route_annotations(spec, annotations)
    for i, rule in enumerate(maps(spec.get("rules"))):
        for j, match in enumerate(as_list(rule.get("matches"))):
            _check_match(as_map(match), f"spec.rules[{i}].matches[{j}]")
        _check_filters(rule, f"spec.rules[{i}]", tagged=True)
        if rule.get("timeouts") is not None:
            _check_timeouts(as_map(rule.get("timeouts")), f"spec.rules[{i}].timeouts")


def _check_gateway_http_route(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:603-672
    _check_egress_parents(spec)
    _check_route_annotations(spec, annotations)
    for i, rule in enumerate(maps(spec.get("rules"))):
        for j, match in enumerate(as_list(rule.get("matches"))):
            _check_match(as_map(match), f"spec.rules[{i}].matches[{j}]")
        _check_filters(rule, f"spec.rules[{i}]", tagged=False)
        # admission.rs:575-587 (validate_http_backend_if_service): a Service backend needs a port.
        for k, ref in enumerate(maps(rule.get("backendRefs"))):
            is_service = ref.get("group") in (None, "core", "") and ref.get("kind") in (None, "Service")
            if is_service and ref.get("port") in (None, 0):
                raise _Deny("linkerd.route.backend-port", f"spec.rules[{i}].backendRefs[{k}].port", "needed")


def _check_tcp_route(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:776-803
    _check_egress_parents(spec)
    if len(as_list(spec.get("rules"))) != 1:
        raise _Deny("linkerd.tcproute.single-rule", "spec.rules", "exactly one rule")


def _check_tls_route(spec: Obj, ns: str, annotations: Mapping[str, str]) -> None:
    # admission.rs:747-774
    _check_egress_parents(spec)
    if len(as_list(spec.get("rules"))) != 1:
        raise _Deny("linkerd.tlsroute.single-rule", "spec.rules", "exactly one rule")


_Parse = Callable[[Obj], _Problems]
_Check = Callable[[Obj, str, Mapping[str, str]], None]

# admission.rs:39-55 (lenient() is true only for the Gateway API kinds) and 118-171 (dispatch).
_HANDLERS: dict[tuple[str, str], tuple[_Parse, _Check, bool]] = {
    (POLICY, "server"): (_parse_server, _check_server, False),
    (POLICY, "authorizationpolicy"): (_parse_authorization_policy, _check_authorization_policy, False),
    (POLICY, "meshtlsauthentication"): (_parse_meshtls, _check_meshtls, False),
    (POLICY, "networkauthentication"): (_parse_network_authentication, _check_network_authentication, False),
    (POLICY, "httproute"): (_parse_policy_http_route, _check_policy_http_route, False),
    (GATEWAY, "httproute"): (_parse_gateway_http_route, _check_gateway_http_route, True),
    (GATEWAY, "tcproute"): (_parse_single_rule_route, _check_tcp_route, True),
    (GATEWAY, "tlsroute"): (_parse_single_rule_route, _check_tls_route, True),
}
