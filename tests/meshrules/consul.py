"""consul-k8s 2.0.3's webhooks for ServiceDefaults, ServiceRouter, ServiceSplitter and ServiceIntentions.

Re-expressed from hashicorp/consul-k8s at tag v2.0.3 (every rule cites its
file and lines under ``control-plane/api``). Each of these kinds has one
mutating webhook that defaults, checks uniqueness on create, then calls the
type's ``Validate(consulMeta)``:

* ServiceDefaults, ServiceRouter, ServiceSplitter go through
  ``common/configentry_webhook.go:29-68`` (``ValidateConfigEntry``);
* ServiceIntentions has its own handler,
  ``v1alpha1/serviceintentions_webhook.go:39-100``.

The answer depends on how consul-k8s maps Kubernetes namespaces
(``ConsulMeta``): :func:`meta_for` gives the two modes smi2mesh generates for,
Consul CE (namespaces off) and Enterprise with namespace mirroring. Admin
partitions are off in both, as in the chart's default.

Uniqueness is checked against the objects that already exist, so it needs
the whole set: :func:`validate_batch` admits a list in order, each object
against those before it, as ``kubectl apply`` of one stream would.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.meshrules import Collector, NotCovered, Obj, Verdict, as_list, as_map, as_str, maps

GROUP = "consul.hashicorp.com"
KINDS = ("ServiceDefaults", "ServiceRouter", "ServiceSplitter", "ServiceIntentions")

RULE_IDS = (
    "consul.unique-name",
    "consul.intentions.unique-destination",
    # ServiceSplitter
    "consul.splitter.weight-range",
    "consul.splitter.weights-sum",
    "consul.splitter.namespace-needs-enterprise",
    "consul.splitter.partition-needs-partitions",
    # ServiceRouter
    "consul.router.prefix-rewrite-needs-path",
    "consul.router.one-path-match",
    "consul.router.path-slash",
    "consul.router.header-one-match",
    "consul.router.query-one-match",
    "consul.router.namespace-needs-enterprise",
    "consul.router.partition-needs-partitions",
    # ServiceIntentions
    "consul.intentions.sources-required",
    "consul.intentions.action-xor-permissions",
    "consul.intentions.action",
    "consul.intentions.source-name",
    "consul.intentions.wildcard",
    "consul.intentions.partition-needs-partitions",
    "consul.intentions.peer-partition-sameness",
    "consul.intentions.description-length",
    "consul.intentions.one-path-match",
    "consul.intentions.path-slash",
    "consul.intentions.method",
    "consul.intentions.method-duplicate",
    "consul.intentions.header-one-match",
    "consul.intentions.header-ignore-case",
    "consul.intentions.namespace-needs-enterprise",
    "consul.intentions.jwt-provider-name",
    # ServiceDefaults
    "consul.defaults.protocol",
    "consul.defaults.mesh-gateway-mode",
    "consul.defaults.transparent-proxy",
    "consul.defaults.mutual-tls-mode",
    "consul.defaults.mode",
    "consul.defaults.destination",
    "consul.defaults.negative-number",
    "consul.defaults.balance-inbound",
    "consul.defaults.upstream",
    "consul.defaults.expose",
    "consul.defaults.rate-limits",
    "consul.defaults.envoy-extension",
)


@dataclass(frozen=True, slots=True)
class ConsulMeta:
    """The part of consul-k8s's ``common.ConsulMeta`` its webhooks read."""

    namespaces_enabled: bool = False
    mirroring: bool = False
    mirroring_prefix: str = ""
    destination_namespace: str = "default"
    partitions_enabled: bool = False


def meta_for(mode: str) -> ConsulMeta:
    """``off``: Consul CE. ``mirror``: Enterprise, each Kubernetes namespace one Consul namespace."""
    if mode == "off":
        return ConsulMeta()
    if mode == "mirror":
        return ConsulMeta(namespaces_enabled=True, mirroring=True)
    raise ValueError(f"unknown Consul namespace mode {mode!r}")


def validate(obj: Obj, *, mode: str = "off", existing: Sequence[Obj] = ()) -> Verdict:
    """consul-k8s's answer to creating ``obj`` while ``existing`` objects are stored."""
    kind = obj.get("kind")
    if kind not in KINDS or not str(obj.get("apiVersion", "")).startswith(f"{GROUP}/"):
        raise NotCovered(f"{obj.get('apiVersion')} {kind}")
    meta = meta_for(mode)
    c = Collector(RULE_IDS)
    obj = _defaulted(obj, meta)
    stored = [_defaulted(o, meta) for o in existing if o.get("kind") == kind]
    spec = as_map(obj.get("spec"))
    if kind == "ServiceIntentions":
        # v1alpha1/serviceintentions_webhook.go:52-74: on create, the destination is unique in
        # its Consul namespace: by name alone unless namespaces are mirrored.
        if _duplicate_destination(obj, stored, meta, c):
            return c.verdict()
        _validate_intentions(spec, meta, c)
        return c.verdict()
    # common/configentry_webhook.go:41-63: unless namespaces are mirrored, every Kubernetes
    # namespace maps to one Consul namespace, so a config entry's name is unique cluster-wide.
    single_consul_ns = not (meta.namespaces_enabled and meta.mirroring)
    name = as_str(as_map(obj.get("metadata")).get("name"))
    if single_consul_ns and any(as_str(as_map(o.get("metadata")).get("name")) == name for o in stored):
        c.error("consul.unique-name", "metadata.name", f"another {kind} is named {name!r}")
        return c.verdict()
    # common/configentry_webhook.go:64-66
    if kind == "ServiceSplitter":
        _validate_splitter(spec, meta, c)
    elif kind == "ServiceRouter":
        _validate_router(spec, meta, c)
    else:
        _validate_defaults(spec, meta, c)
    return c.verdict()


def validate_batch(objs: Iterable[Obj], *, mode: str = "off") -> list[Verdict]:
    """Admit ``objs`` in order, each while the previous ones are stored."""
    done: list[Obj] = []
    verdicts = []
    for obj in objs:
        verdicts.append(validate(obj, mode=mode, existing=done))
        done.append(obj)
    return verdicts


# --- defaulting ------------------------------------------------------------------------------


def _consul_namespace(kube_ns: str, meta: ConsulMeta) -> str:
    # hashicorp/consul-k8s v2.0.3 control-plane/namespaces/namespaces.go:84-95 (ConsulNamespace)
    if not meta.namespaces_enabled:
        return ""
    return f"{meta.mirroring_prefix}{kube_ns}" if meta.mirroring else meta.destination_namespace


def _defaulted(obj: Obj, meta: ConsulMeta) -> Obj:
    """The object after ``DefaultNamespaceFields`` (common/configentry_webhook.go:72-88)."""
    if not meta.namespaces_enabled:
        return obj
    out: dict[str, Any] = json.loads(json.dumps(obj))
    spec: dict[str, Any] = out["spec"] if isinstance(out.get("spec"), dict) else {}
    namespace = _consul_namespace(as_str(as_map(out.get("metadata")).get("namespace")), meta)
    if out.get("kind") == "ServiceIntentions":
        # v1alpha1/serviceintentions_types.go:384-396
        destination = spec.setdefault("destination", {})
        if isinstance(destination, dict) and not as_str(destination.get("namespace")):
            destination["namespace"] = namespace
    elif out.get("kind") == "ServiceRouter":
        # v1alpha1/servicerouter_types.go:294-310
        for route in as_list(spec.get("routes")):
            destination = as_map(route).get("destination")
            if isinstance(destination, dict) and not as_str(destination.get("namespace")):
                destination["namespace"] = namespace
    # ServiceSplitter and ServiceDefaults default nothing (servicesplitter_types.go:199-202,
    # servicedefaults_types.go:696-698).
    return out


def _duplicate_destination(obj: Obj, stored: list[Obj], meta: ConsulMeta, c: Collector) -> bool:
    # v1alpha1/serviceintentions_webhook.go:52-74
    single_consul_ns = not (meta.namespaces_enabled and meta.mirroring)
    mine = as_map(as_map(obj.get("spec")).get("destination"))
    for other in stored:
        theirs = as_map(as_map(other.get("spec")).get("destination"))
        same_name = as_str(theirs.get("name")) == as_str(mine.get("name"))
        same_ns = as_str(theirs.get("namespace")) == as_str(mine.get("namespace"))
        if same_name and (single_consul_ns or same_ns):
            c.error(
                "consul.intentions.unique-destination",
                "spec.destination",
                f"another ServiceIntentions has destination {mine.get('name')!r}",
            )
            return True
    return False


# --- ServiceSplitter ------------------------------------------------------------------------


def _float32(value: Any) -> float:
    """Go decodes ``weight`` into a float32; arithmetic on it rounds to float32 at every step."""
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
    return float(struct.unpack("f", struct.pack("f", number))[0])


def _validate_splitter(spec: Obj, meta: ConsulMeta, c: Collector) -> None:
    # hashicorp/consul-k8s v2.0.3 control-plane/api/v1alpha1/servicesplitter_types.go:186-197 (Validate)
    splits = [as_map(s) for s in as_list(spec.get("splits"))]
    # servicesplitter_types.go:245-267 (ServiceSplits.validate): weights in float32 add up to exactly 100.
    total = 0.0
    for i, split in enumerate(splits):
        weight = _float32(split.get("weight"))
        # servicesplitter_types.go:269-276: 0, or a percentage from 0.01 to 100.
        if weight != 0 and (weight > 100 or weight < _float32(0.01)):
            c.error("consul.splitter.weight-range", f"spec.splits[{i}].weight", f"{weight} is out of range")
        total = _float32(total + weight)
    if total != 100:
        c.error("consul.splitter.weights-sum", "spec.splits", f"weights add up to {total}, not 100")
    # servicesplitter_types.go:225-243 (validateEnterprise)
    for i, split in enumerate(splits):
        if not meta.namespaces_enabled and as_str(split.get("namespace")):
            c.error(
                "consul.splitter.namespace-needs-enterprise",
                f"spec.splits[{i}].namespace",
                "set while Consul namespaces are off",
            )
    for i, split in enumerate(splits):
        if not meta.partitions_enabled and as_str(split.get("partition")):
            c.error(
                "consul.splitter.partition-needs-partitions",
                f"spec.splits[{i}].partition",
                "set while admin partitions are off",
            )


# --- ServiceRouter --------------------------------------------------------------------------


def _non_zero(*values: Any) -> int:
    # servicerouter_types.go:493-512 (numNonZeroValue): non-empty strings and true booleans.
    return sum(1 for v in values if (isinstance(v, str) and v != "") or v is True)


def _invalid_path_prefix(path: str) -> bool:
    # hashicorp/consul-k8s v2.0.3 control-plane/api/v1alpha1/shared_types.go:357-359
    return path != "" and not path.startswith("/")


def _validate_router(spec: Obj, meta: ConsulMeta, c: Collector) -> None:
    # hashicorp/consul-k8s v2.0.3 control-plane/api/v1alpha1/servicerouter_types.go:276-291 (Validate)
    routes = [as_map(r) for r in as_list(spec.get("routes"))]
    for i, route in enumerate(routes):
        path = f"spec.routes[{i}]"
        destination, match = route.get("destination"), route.get("match")
        http = as_map(match).get("http") if isinstance(match, dict) else None
        # servicerouter_types.go:394-405: prefixRewrite needs a pathPrefix or pathExact match.
        if isinstance(destination, dict) and as_str(destination.get("prefixRewrite")):
            http_map = as_map(http)
            if http is None or (
                not as_str(http_map.get("pathPrefix")) and not as_str(http_map.get("pathExact"))
            ):
                c.error("consul.router.prefix-rewrite-needs-path", path, "prefixRewrite without a path match")
        if isinstance(http, dict):
            _validate_route_http(http, f"{path}.match.http", c)
    # servicerouter_types.go:370-392 (validateEnterprise)
    for i, route in enumerate(routes):
        destination = route.get("destination")
        if (
            isinstance(destination, dict)
            and not meta.namespaces_enabled
            and as_str(destination.get("namespace"))
        ):
            c.error(
                "consul.router.namespace-needs-enterprise",
                f"spec.routes[{i}].destination.namespace",
                "set while Consul namespaces are off",
            )
    for i, route in enumerate(routes):
        destination = route.get("destination")
        if (
            isinstance(destination, dict)
            and not meta.partitions_enabled
            and as_str(destination.get("partition"))
        ):
            c.error(
                "consul.router.partition-needs-partitions",
                f"spec.routes[{i}].destination.partition",
                "set while admin partitions are off",
            )


def _validate_route_http(http: Obj, path: str, c: Collector) -> None:
    # servicerouter_types.go:437-465 (ServiceRouteHTTPMatch.validate)
    exact, prefix, regex = (as_str(http.get(k)) for k in ("pathExact", "pathPrefix", "pathRegex"))
    if _non_zero(exact, prefix, regex) > 1:
        c.error("consul.router.one-path-match", path, "more than one of pathExact, pathPrefix, pathRegex")
    if _invalid_path_prefix(exact):
        c.error("consul.router.path-slash", f"{path}.pathExact", f"{exact!r} does not start with '/'")
    if _invalid_path_prefix(prefix):
        c.error("consul.router.path-slash", f"{path}.pathPrefix", f"{prefix!r} does not start with '/'")
    # servicerouter_types.go:467-477: one header match kind.
    for i, header in enumerate(maps(http.get("header"))):
        if _non_zero(*(header.get(k) for k in ("exact", "prefix", "suffix", "regex", "present"))) > 1:
            c.error("consul.router.header-one-match", f"{path}.header[{i}]", "more than one match kind")
    # servicerouter_types.go:479-489: one query parameter match kind.
    for i, param in enumerate(maps(http.get("queryParam"))):
        if _non_zero(*(param.get(k) for k in ("exact", "regex", "present"))) > 1:
            c.error("consul.router.query-one-match", f"{path}.queryParam[{i}]", "more than one match kind")


# --- ServiceIntentions ----------------------------------------------------------------------

_ACTIONS = ("allow", "deny")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")


def _validate_intentions(spec: Obj, meta: ConsulMeta, c: Collector) -> None:
    # hashicorp/consul-k8s v2.0.3 control-plane/api/v1alpha1/serviceintentions_types.go:311-341 (Validate)
    sources = [as_map(s) for s in as_list(spec.get("sources"))]
    if not sources:
        c.error("consul.intentions.sources-required", "spec.sources", "at least one source")
    for i, source in enumerate(sources):
        path = f"spec.sources[{i}]"
        permissions = [as_map(p) for p in as_list(source.get("permissions"))]
        action = as_str(source.get("action"))
        # serviceintentions_types.go:318-327: an L4 action or L7 permissions, never both.
        if permissions and action:
            c.error("consul.intentions.action-xor-permissions", path, "both action and permissions")
        elif not permissions:
            _validate_action(action, f"{path}.action", c)
        else:
            _validate_permissions(permissions, f"{path}.permissions", c)
        _validate_source(source, path, meta, c)
    # serviceintentions_types.go:590-604 (validateNamespaces)
    if not meta.namespaces_enabled:
        destination_ns = as_str(as_map(spec.get("destination")).get("namespace"))
        if destination_ns:
            c.error(
                "consul.intentions.namespace-needs-enterprise",
                "spec.destination.namespace",
                "set while Consul namespaces are off",
            )
        for i, source in enumerate(sources):
            if as_str(source.get("namespace")):
                c.error(
                    "consul.intentions.namespace-needs-enterprise",
                    f"spec.sources[{i}].namespace",
                    "set while Consul namespaces are off",
                )
    _validate_jwt(spec.get("jwt"), "spec.jwt", c)


def _validate_action(action: str, path: str, c: Collector) -> None:
    # serviceintentions_types.go:606-612 (IntentionAction.validate)
    if action not in _ACTIONS:
        c.error("consul.intentions.action", path, f"{action!r} is neither allow nor deny")


def _validate_source(source: Obj, path: str, meta: ConsulMeta, c: Collector) -> None:
    # serviceintentions_types.go:343-381 (SourceIntention.validate)
    name, partition = as_str(source.get("name")), as_str(source.get("partition"))
    peer, sameness = as_str(source.get("peer")), as_str(source.get("samenessGroup"))
    if name == "":
        c.error("consul.intentions.source-name", f"{path}.name", "required")
    for field, value in (("partition", partition), ("peer", peer), ("samenessGroup", sameness)):
        if "*" in value:
            c.error("consul.intentions.wildcard", f"{path}.{field}", "no wildcard here")
    if partition and not meta.partitions_enabled:
        c.error(
            "consul.intentions.partition-needs-partitions",
            f"{path}.partition",
            "set while admin partitions are off",
        )
    for first, second in ((peer, partition), (sameness, partition), (sameness, peer)):
        if first and second:
            c.error(
                "consul.intentions.peer-partition-sameness",
                path,
                "at most one of peer, partition, samenessGroup",
            )
    # shared_types.go:20 (metaValueMaxLength)
    if len(as_str(source.get("description"))) > 512:
        c.error("consul.intentions.description-length", path, "description longer than 512")


def _validate_permissions(permissions: list[Obj], path: str, c: Collector) -> None:
    # serviceintentions_types.go:507-520 (IntentionPermissions.validate)
    for i, permission in enumerate(permissions):
        ppath = f"{path}[{i}]"
        _validate_action(as_str(permission.get("action")), f"{ppath}.action", c)
        if isinstance(permission.get("http"), dict):
            _validate_http_permission(permission["http"], ppath, c)
        _validate_jwt(permission.get("jwt"), f"{ppath}.jwt", c)


def _validate_http_permission(http: Obj, path: str, c: Collector) -> None:
    # serviceintentions_types.go:522-568 (IntentionHTTPPermission.validate)
    exact, prefix, regex = (as_str(http.get(k)) for k in ("pathExact", "pathPrefix", "pathRegex"))
    if _invalid_path_prefix(prefix):
        c.error("consul.intentions.path-slash", f"{path}.pathPrefix", f"{prefix!r} does not start with '/'")
    if _invalid_path_prefix(exact):
        c.error("consul.intentions.path-slash", f"{path}.pathExact", f"{exact!r} does not start with '/'")
    if sum(1 for p in (exact, prefix, regex) if p) > 1:
        c.error("consul.intentions.one-path-match", path, "more than one of pathExact, pathPrefix, pathRegex")
    seen: set[str] = set()
    for i, method in enumerate(as_str(m) for m in as_list(http.get("methods"))):
        if method not in _METHODS:
            c.error("consul.intentions.method", f"{path}.methods[{i}]", f"{method!r} is not an HTTP method")
        if method in seen:
            c.error("consul.intentions.method-duplicate", f"{path}.methods[{i}]", f"{method!r} twice")
        seen.add(method)
    # serviceintentions_types.go:570-588 (IntentionHTTPHeaderPermissions.validate)
    for i, header in enumerate(maps(http.get("header"))):
        hpath = f"{path}.header[{i}]"
        kinds = (header.get("present") is True) + sum(
            1 for k in ("exact", "regex", "prefix", "suffix", "contains") if as_str(header.get(k))
        )
        if kinds > 1:
            c.error("consul.intentions.header-one-match", hpath, "more than one match kind")
        if header.get("ignoreCase") is True and (
            header.get("present") is True or as_str(header.get("regex"))
        ):
            c.error(
                "consul.intentions.header-ignore-case",
                hpath,
                "ignoreCase needs exact, prefix, suffix or contains",
            )


def _validate_jwt(jwt: Any, path: str, c: Collector) -> None:
    # serviceintentions_types.go:624-643 (IntentionJWTRequirement / IntentionJWTProvider validate)
    for i, provider in enumerate(as_list(as_map(jwt).get("providers"))):
        if isinstance(provider, dict) and not as_str(provider.get("name")):
            c.error("consul.intentions.jwt-provider-name", f"{path}.providers[{i}].name", "required")


# --- ServiceDefaults ------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _validate_defaults(spec: Obj, meta: ConsulMeta, c: Collector) -> None:
    # hashicorp/consul-k8s v2.0.3 control-plane/api/v1alpha1/servicedefaults_types.go:466-518 (Validate)
    protocol = as_str(spec.get("protocol"))
    if protocol and protocol not in ("tcp", "http", "http2", "grpc"):
        c.error("consul.defaults.protocol", "spec.protocol", f"{protocol!r} is not tcp, http, http2 or grpc")
    _mesh_gateway(as_map(spec.get("meshGateway")), "spec.meshGateway", c)
    # shared_types.go:200-208 (TransparentProxy.validate): set by annotation, not here.
    if _int(as_map(spec.get("transparentProxy")).get("outboundListenerPort")) != 0:
        c.error(
            "consul.defaults.transparent-proxy",
            "spec.transparentProxy.outboundListenerPort",
            "configured by pod annotation",
        )
    # shared_types.go:76-84 (MutualTLSMode.validate)
    if as_str(spec.get("mutualTLSMode")) not in ("", "strict", "permissive"):
        c.error("consul.defaults.mutual-tls-mode", "spec.mutualTLSMode", "not '', strict or permissive")
    # shared_types.go:210-215 (ProxyMode.validate): any mode at all is refused here.
    if spec.get("mode") is not None:
        c.error("consul.defaults.mode", "spec.mode", "configured by pod annotation")
    if spec.get("destination") is not None:
        _destination(as_map(spec.get("destination")), "spec.destination", c)
    for field in ("maxInboundConnections", "localConnectTimeoutMs", "localRequestTimeoutMs"):
        if _int(spec.get(field)) < 0:
            c.error("consul.defaults.negative-number", f"spec.{field}", "negative")
    if as_str(spec.get("balanceInboundConnections")) not in ("", "exact_balance"):
        c.error(
            "consul.defaults.balance-inbound", "spec.balanceInboundConnections", "not '' or exact_balance"
        )
    if spec.get("upstreamConfig") is not None:
        _upstreams(as_map(spec.get("upstreamConfig")), "spec.upstreamConfig", meta, c)
    _expose(as_map(spec.get("expose")), "spec.expose", c)
    if spec.get("rateLimits") is not None:
        _rate_limits(
            as_map(as_map(spec.get("rateLimits")).get("instanceLevel")), "spec.rateLimits.instanceLevel", c
        )
    # shared_types.go:251-278 (EnvoyExtensions.validate): arguments present and a JSON object.
    for i, ext in enumerate(as_list(spec.get("envoyExtensions"))):
        if not isinstance(as_map(ext).get("arguments"), dict):
            c.error(
                "consul.defaults.envoy-extension", f"spec.envoyExtensions[{i}].arguments", "must be a map"
            )


def _mesh_gateway(gateway: Obj, path: str, c: Collector) -> None:
    # shared_types.go:145-151 (MeshGateway.validate)
    if as_str(gateway.get("mode")) not in ("remote", "local", "none", ""):
        c.error("consul.defaults.mesh-gateway-mode", f"{path}.mode", "not remote, local, none or ''")


def _destination(destination: Obj, path: str, c: Collector) -> None:
    # servicedefaults_types.go:638-684 (ServiceDefaultsDestination.validate, validEndpointAddress)
    addresses = [as_str(a) for a in as_list(destination.get("addresses"))]
    if not addresses:
        c.error("consul.defaults.destination", f"{path}.addresses", "at least one address")
    seen: set[str] = set()
    for i, address in enumerate(addresses):
        if address in seen:
            c.error("consul.defaults.destination", f"{path}.addresses[{i}]", "duplicate")
            continue
        seen.add(address)
        if not _valid_endpoint_address(address):
            c.error(
                "consul.defaults.destination", f"{path}.addresses[{i}]", f"{address!r} is no IP or hostname"
            )
    port = _int(destination.get("port"))
    if port < 1 or port > 65535:
        c.error("consul.defaults.destination", f"{path}.port", "not a port number")


def _valid_endpoint_address(address: str) -> bool:
    if address == "":
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        return True
    # miekg/dns IsDomainName: labels of 1-63 octets, 255 octets in all; no wildcard allowed here.
    name = address[:-1] if address.endswith(".") else address
    return (
        "*" not in address and 0 < len(name) < 255 and all(0 < len(label) < 64 for label in name.split("."))
    )


def _upstreams(upstreams: Obj, path: str, meta: ConsulMeta, c: Collector) -> None:
    # servicedefaults_types.go:520-585 (Upstreams.validate, Upstream.validate)
    defaults = upstreams.get("defaults")
    if isinstance(defaults, dict):
        for field in ("name", "namespace", "partition", "peer"):
            if as_str(defaults.get(field)):
                c.error(
                    "consul.defaults.upstream",
                    f"{path}.defaults.{field}",
                    "must be empty for the default upstream",
                )
        _upstream_common(defaults, f"{path}.defaults", meta, c)
    for i, override in enumerate(as_list(upstreams.get("overrides"))):
        if not isinstance(override, dict):
            continue
        opath = f"{path}.overrides[{i}]"
        if not as_str(override.get("name")):
            c.error("consul.defaults.upstream", f"{opath}.name", "required for an override")
        peer = as_str(override.get("peer"))
        for field in ("namespace", "partition"):
            if as_str(override.get(field)) and peer:
                c.error("consul.defaults.upstream", opath, f"{field} and peer together")
        _upstream_common(override, opath, meta, c)


def _upstream_common(upstream: Obj, path: str, meta: ConsulMeta, c: Collector) -> None:
    if not meta.partitions_enabled and as_str(upstream.get("partition")):
        c.error("consul.defaults.upstream", f"{path}.partition", "set while admin partitions are off")
    mode = as_str(as_map(upstream.get("meshGateway")).get("mode"))
    if mode not in ("remote", "local", "none", ""):
        c.error(
            "consul.defaults.mesh-gateway-mode", f"{path}.meshGateway.mode", "not remote, local, none or ''"
        )


def _expose(expose: Obj, path: str, c: Collector) -> None:
    # shared_types.go:169-188 (Expose.validate)
    for i, item in enumerate(maps(expose.get("paths"))):
        if _invalid_path_prefix(as_str(item.get("path"))):
            c.error("consul.defaults.expose", f"{path}.paths[{i}].path", "does not start with '/'")
        protocol = as_str(item.get("protocol"))
        if protocol and protocol not in ("http", "http2"):
            c.error("consul.defaults.expose", f"{path}.paths[{i}].protocol", "not http or http2")


def _rate_limits(limits: Obj, path: str, c: Collector) -> None:
    # servicedefaults_types.go:255-343 (RateLimits.validate, InstanceLevelRateLimits.validate)
    rps, burst = _int(limits.get("requestsPerSecond")), _int(limits.get("requestsMaxBurst"))
    limited = rps > 0
    if rps < 0:
        c.error("consul.defaults.rate-limits", f"{path}.requestsPerSecond", "negative")
    if rps == 0 and burst > 0:
        c.error("consul.defaults.rate-limits", f"{path}.requestsPerSecond", "needed with requestsMaxBurst")
    if burst < 0:
        c.error("consul.defaults.rate-limits", f"{path}.requestsMaxBurst", "negative")
    for i, route in enumerate(maps(limits.get("routes"))):
        rpath = f"{path}.routes[{i}]"
        if sum(1 for k in ("pathExact", "pathPrefix", "pathRegex") if as_str(route.get(k))) != 1:
            c.error("consul.defaults.rate-limits", rpath, "exactly one of pathExact, pathPrefix, pathRegex")
        route_rps = _int(route.get("requestsPerSecond"))
        limited = limited or route_rps > 0
        if route_rps <= 0:
            c.error("consul.defaults.rate-limits", f"{rpath}.requestsPerSecond", "must be positive")
        if _int(route.get("requestsMaxBurst")) < 0:
            c.error("consul.defaults.rate-limits", f"{rpath}.requestsMaxBurst", "negative")
    if not limited:
        c.error("consul.defaults.rate-limits", f"{path}.requestsPerSecond", "no limit set anywhere")
