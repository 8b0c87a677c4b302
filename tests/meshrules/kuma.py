"""Kuma 2.14.3's admission of MeshHTTPRoute, MeshTCPRoute and MeshTrafficPermission, in Python.

Re-expressed from kumahq/kuma at tag v2.14.3 (every rule cites its file and
lines there). On Kubernetes a policy passes two webhooks in turn:

1. the defaulting webhook (``pkg/plugins/runtime/k8s/webhooks/defaulter.go``)
   computes labels: ``kuma.io/mesh`` (``default``), ``kuma.io/origin``
   (``zone``), ``k8s.kuma.io/namespace`` and ``kuma.io/policy-role``, whose
   computation refuses some policies outright;
2. the validating webhook (``.../webhooks/validation.go:50-89``) checks the mesh
   label, the origin label and the policy's own ``validate()``, then answers
   with the policy's deprecation warnings.

The control plane modelled is a standalone zone (the default Kubernetes
install): ``ResourceAdmissionChecker.isResourceAllowed`` does nothing there
(``resourceadmissionchecker.go:66-72``), and no privileged user is involved.
The CRD's OpenAPI schema (enums, required fields) is the API server's job and
is checked by the CRD tier, not here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tests.meshrules import (
    Collector,
    NotCovered,
    Obj,
    Verdict,
    as_list,
    as_map,
    as_str,
    is_dns1123_subdomain,
    maps,
)

KINDS = ("MeshHTTPRoute", "MeshTCPRoute", "MeshTrafficPermission")
SYSTEM_NAMESPACE = "kuma-system"

MESH_LABEL = "kuma.io/mesh"
ORIGIN_LABEL = "kuma.io/origin"
ROLE_LABEL = "kuma.io/policy-role"
NAMESPACE_LABEL = "k8s.kuma.io/namespace"

RULE_IDS = (
    # webhooks and labels
    "kuma.policy-role",
    "kuma.mesh-label",
    "kuma.origin-label",
    # targetRef (shared by every position that holds one)
    "kuma.targetref.kind-required",
    "kuma.targetref.kind-supported",
    "kuma.targetref.field-not-allowed",
    "kuma.targetref.name-required",
    "kuma.targetref.name-chars",
    "kuma.targetref.name-or-labels",
    "kuma.targetref.labels-exclusive",
    "kuma.targetref.section-inbound-only",
    "kuma.targetref.proxy-types-empty",
    "kuma.targetref.tags",
    "kuma.backendref.port-required",
    # MeshHTTPRoute
    "kuma.mhr.hostnames",
    "kuma.mhr.path-absolute",
    "kuma.mhr.path-prefix-trailing-slash",
    "kuma.mhr.header-value",
    "kuma.mhr.query-param-duplicate",
    "kuma.mhr.filter-config-missing",
    "kuma.mhr.header-modifier-empty",
    "kuma.mhr.header-modifier-duplicate",
    "kuma.mhr.replace-prefix-needs-prefix-matches",
    "kuma.mhr.precise-hostname",
    "kuma.mhr.host-to-backend-hostname",
    "kuma.mhr.backend-refs-empty",
    # MeshTCPRoute
    "kuma.mtcpr.backend-refs-required",
    # MeshTrafficPermission
    "kuma.mtp.from-with-rules",
    "kuma.mtp.from-or-rules",
    "kuma.mtp.rule-empty",
    "kuma.mtp.spiffe-id",
    "kuma.mtp.sni",
    "kuma.mtp.from-action",
    # deprecation warnings (never deny)
    "kuma.deprecated.from",
    "kuma.deprecated.from-mesh-service",
    "kuma.deprecated.top-level-kind",
)

# api/common/v1alpha1 TargetRefKind values.
MESH, MESH_SUBSET, MESH_SERVICE, MESH_SERVICE_SUBSET = (
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
)
MESH_GATEWAY, MESH_HTTP_ROUTE, DATAPLANE = "MeshGateway", "MeshHTTPRoute", "Dataplane"
MESH_EXTERNAL_SERVICE, MESH_MULTI_ZONE_SERVICE = "MeshExternalService", "MeshMultiZoneService"


def validate(obj: Obj, *, system_namespace: str = SYSTEM_NAMESPACE) -> Verdict:
    """Kuma's answer to creating ``obj``: its errors, or its deprecation warnings."""
    kind = obj.get("kind")
    if kind not in KINDS or not str(obj.get("apiVersion", "")).startswith("kuma.io/"):
        raise NotCovered(f"{obj.get('apiVersion')} {kind}")
    c = Collector(RULE_IDS)
    meta = as_map(obj.get("metadata"))
    spec = as_map(obj.get("spec"))
    namespace = as_str(meta.get("namespace"))

    labels = _defaulted_labels(kind, spec, dict(as_map(meta.get("labels"))), namespace, system_namespace, c)
    # defaulter.go:70-82: a label computation error fails the request before validation.
    if c.errors:
        return c.verdict()

    # validation.go:69-76: the mesh and origin checks each answer on their own.
    _validate_mesh(labels.get(MESH_LABEL, "default"), c)
    if c.errors:
        return c.verdict()
    _validate_origin(labels, c)
    if c.errors:
        return c.verdict()

    # validation.go:78-84: the policy's validate(); its paths are rooted at "spec".
    role = labels.get(ROLE_LABEL) or "system"
    if kind == "MeshHTTPRoute":
        _validate_mesh_http_route(spec, role, c)
    elif kind == "MeshTCPRoute":
        _validate_mesh_tcp_route(spec, role, c)
    else:
        _validate_mesh_traffic_permission(spec, c)
    if c.errors:
        return c.verdict()

    # validation.go:86-87: warnings only accompany an allowed answer.
    _deprecations(kind, spec, c)
    return c.verdict()


def validate_batch(objs: Iterable[Obj], *, system_namespace: str = SYSTEM_NAMESPACE) -> list[Verdict]:
    """Kuma's webhooks judge each object alone; the batch form keeps the API uniform."""
    return [validate(o, system_namespace=system_namespace) for o in objs]


# --- defaulting webhook: labels --------------------------------------------------


def _defaulted_labels(
    kind: str, spec: Obj, labels: dict[str, str], namespace: str, system_namespace: str, c: Collector
) -> dict[str, str]:
    # kumahq/kuma v2.14.3 pkg/core/resources/labels/compute.go:127-163 (Compute), zone mode on
    # Kubernetes: these three kinds are mesh-scoped, provided by zones and plugin-originated policies.
    labels.setdefault(MESH_LABEL, "default")
    labels.setdefault(ORIGIN_LABEL, "zone")
    # pkg/core/resources/model/resource.go:472-483 (IsLocallyOriginated, zone mode)
    local = labels[ORIGIN_LABEL] == "zone"
    if namespace and local:
        labels.setdefault(NAMESPACE_LABEL, namespace)
        role = _policy_role(kind, spec, namespace, namespace == system_namespace, c)
        if role is not None:
            labels[ROLE_LABEL] = role
    return labels


def _policy_role(kind: str, spec: Obj, namespace: str, system: bool, c: Collector) -> str | None:
    # kumahq/kuma v2.14.3 pkg/core/resources/labels/compute.go:207-260 (ComputePolicyRole)
    if system:
        return "system"
    to = as_list(spec.get("to")) if kind in ("MeshHTTPRoute", "MeshTCPRoute") else []
    from_ = as_list(spec.get("from")) if kind == "MeshTrafficPermission" else []
    if to and from_:
        c.error("kuma.policy-role", "spec", "a policy cannot hold both 'to' and 'from' items")
        return None
    if from_ or not to:
        return "workload-owner"

    def producer(ref: Obj) -> bool:
        ns = as_str(ref.get("namespace"))
        return (
            ref.get("kind") in (MESH_SERVICE, MESH_HTTP_ROUTE)
            and as_str(ref.get("name")) != ""
            and ns in ("", namespace)
        )

    producers = sum(producer(as_map(as_map(item).get("targetRef"))) for item in to)
    if producers == len(to):
        return "producer"
    if producers == 0:
        return "consumer"
    c.error("kuma.policy-role", "spec.to", "producer and consumer items cannot be mixed in one policy")
    return None


# --- validating webhook: metadata ---------------------------------------------------

# kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/meta_validator.go:11,31-50 (ValidateMesh)
_MESH_NAME = re.compile(r"[0-9a-z\-_.]*")


def _validate_mesh(mesh: str, c: Collector) -> None:
    if mesh == "":
        c.error("kuma.mesh-label", "mesh", "empty mesh name")
    elif len(mesh) > 253:
        c.error("kuma.mesh-label", "mesh", "mesh name longer than 253")
    elif not _MESH_NAME.fullmatch(mesh):
        c.error("kuma.mesh-label", "mesh", f"bad characters in mesh name {mesh!r}")


def _validate_origin(labels: Mapping[str, str], c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/plugins/runtime/k8s/webhooks/validation.go:118-127, with
    # api/mesh/v1alpha1/dataplane_helpers.go:143-150 (ResourceOrigin.IsValid)
    origin = labels.get(ORIGIN_LABEL)
    if origin is not None and origin not in ("global", "zone"):
        c.error("kuma.origin-label", f"labels[{ORIGIN_LABEL}]", f"unknown origin {origin!r}")


# --- shared: targetRef ------------------------------------------------------------------

# kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/validators.go:27-31
_NAME_CHARS = re.compile(r"[0-9a-z.\-_]*")
_TAG_NAME_CHARS = re.compile(r"[a-zA-Z0-9.\-_:/]*")
_TAG_VALUE_CHARS = re.compile(r"[a-zA-Z0-9.\-_:]*")
_SELECTOR_VALUE_CHARS = re.compile(r"[a-zA-Z0-9.\-_:/]*|\*")


def _is_set(ref: Obj, field: str) -> bool:
    value = ref.get(field)
    return bool(value) if isinstance(value, (str, Mapping, list)) else False


def _disallow(ref: Obj, path: str, kind: str, fields: Sequence[str], c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/validators.go:506-518 (disallowedField)
    for field in fields:
        if _is_set(ref, field):
            c.error("kuma.targetref.field-not-allowed", f"{path}.{field}", f"not allowed with kind {kind}")


def _validate_name(ref: Obj, path: str, allowed_invalid: Sequence[str], c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/validators.go:493-504 (validateName)
    name = as_str(ref.get("name"))
    if name not in allowed_invalid and not _NAME_CHARS.fullmatch(name):
        c.error("kuma.targetref.name-chars", f"{path}.name", f"bad characters in {name!r}")


def _validate_tags(tags: Obj, path: str, selector: bool, c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/validators.go:89-152
    # (ValidateSelector / ValidateTags -> validateTagKeyValues)
    values = _SELECTOR_VALUE_CHARS if selector else _TAG_VALUE_CHARS
    for key in sorted(tags):
        value = as_str(tags[key])
        if key == "" or not _TAG_NAME_CHARS.fullmatch(key):
            c.error("kuma.targetref.tags", f"{path}[{key}]", "bad tag name")
        if value == "" or not values.fullmatch(value):
            c.error("kuma.targetref.tags", f"{path}[{key}]", f"bad tag value {value!r}")


def validate_target_ref(
    ref: Obj,
    path: str,
    supported: Sequence[str],
    c: Collector,
    *,
    gateway_listener_tags: bool = False,
    inbound: bool = False,
    allowed_invalid_names: Sequence[str] = (),
) -> None:
    """``mesh.ValidateTargetRef`` with its options, for the targetRef at ``path``."""
    # kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/validators.go:356-454 (ValidateTargetRef)
    kind = as_str(ref.get("kind"))
    if kind == "":
        c.error("kuma.targetref.kind-required", f"{path}.kind", "must be set")
        return
    if kind not in supported:
        c.error("kuma.targetref.kind-supported", f"{path}.kind", f"{kind} is not supported here")
        return
    name, has_labels = as_str(ref.get("name")), bool(as_map(ref.get("labels")))
    named_or_namespaced = name != "" or as_str(ref.get("namespace")) != ""
    proxy_types = ref.get("proxyTypes")
    # validators.go:483-491 (validateProxyTypes): an explicit empty list is refused.
    proxy_types_empty = isinstance(proxy_types, list) and not proxy_types
    if kind == MESH:
        if name:
            c.error("kuma.targetref.field-not-allowed", f"{path}.name", "not supported with kind Mesh")
        _disallow(ref, path, kind, ("mesh", "tags", "labels", "namespace", "sectionName"), c)
        if proxy_types_empty:
            c.error("kuma.targetref.proxy-types-empty", f"{path}.proxyTypes", "empty list")
    elif kind == DATAPLANE:
        _disallow(ref, path, kind, ("tags", "mesh", "proxyTypes"), c)
        if has_labels and named_or_namespaced:
            c.error("kuma.targetref.labels-exclusive", f"{path}.labels", "labels exclude name and namespace")
        if not inbound and as_str(ref.get("sectionName")):
            c.error("kuma.targetref.section-inbound-only", f"{path}.sectionName", "only for inbound policies")
    elif kind == MESH_SUBSET:
        _disallow(ref, path, kind, ("name", "mesh"), c)
        _validate_tags(as_map(ref.get("tags")), f"{path}.tags", False, c)
        _disallow(ref, path, kind, ("labels", "namespace", "sectionName"), c)
        if proxy_types_empty:
            c.error("kuma.targetref.proxy-types-empty", f"{path}.proxyTypes", "empty list")
    elif kind in (MESH_SERVICE, MESH_HTTP_ROUTE, MESH_EXTERNAL_SERVICE):
        _validate_name(ref, path, allowed_invalid_names, c)
        _disallow(ref, path, kind, ("mesh", "tags", "proxyTypes"), c)
        if kind == MESH_HTTP_ROUTE:
            _disallow(ref, path, kind, ("sectionName",), c)
        if not has_labels and name == "":
            c.error("kuma.targetref.name-or-labels", path, f"name or labels needed with kind {kind}")
        if has_labels and named_or_namespaced:
            c.error("kuma.targetref.labels-exclusive", f"{path}.labels", "labels exclude name and namespace")
        if kind == MESH_EXTERNAL_SERVICE:
            _disallow(ref, path, kind, ("sectionName",), c)
    elif kind in (MESH_SERVICE_SUBSET, MESH_GATEWAY):
        if name == "":
            c.error("kuma.targetref.name-required", f"{path}.name", f"must be set with kind {kind}")
        _validate_name(ref, path, allowed_invalid_names, c)
        _disallow(ref, path, kind, ("mesh", "proxyTypes"), c)
        _validate_tags(as_map(ref.get("tags")), f"{path}.tags", True, c)
        if kind == MESH_GATEWAY and not gateway_listener_tags:
            _disallow(ref, path, kind, ("tags",), c)
        _disallow(ref, path, kind, ("labels", "namespace", "sectionName"), c)
    # MeshMultiZoneService and the other kinds carry no field rule in ValidateTargetRef.


def _validate_backend_ref(ref: Obj, path: str, c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/core/validators/common_validators.go:343-349 (ValidateBackendRef)
    if ref.get("kind") == MESH_MULTI_ZONE_SERVICE and ref.get("port") is None:
        c.error("kuma.backendref.port-required", f"{path}.port", "needed with kind MeshMultiZoneService")


def _top_target_ref(spec: Obj, role: str, path: str, kinds_with_gateway: Sequence[str], c: Collector) -> None:
    # MeshHTTPRoute validation.go:28-56 and MeshTCPRoute validator.go:23-51 (validateTop):
    # MeshGateway (with listener tags) only for system policies.
    ref = spec.get("targetRef")
    if ref is None:
        return
    if role == "system":
        validate_target_ref(as_map(ref), path, kinds_with_gateway, c, gateway_listener_tags=True)
    else:
        kinds = [k for k in kinds_with_gateway if k != MESH_GATEWAY]
        validate_target_ref(as_map(ref), path, kinds, c)


def _to_target_ref(top_kind: str, ref: Obj, path: str, c: Collector) -> None:
    # MeshHTTPRoute validation.go:58-75 and MeshTCPRoute validator.go:53-70 (validateToRef)
    if top_kind == MESH_GATEWAY:
        validate_target_ref(ref, path, (MESH,), c)
    else:
        validate_target_ref(ref, path, (MESH_SERVICE, MESH_EXTERNAL_SERVICE, MESH_MULTI_ZONE_SERVICE), c)


_ROUTE_TOP_KINDS = (MESH, MESH_GATEWAY, MESH_SUBSET, MESH_SERVICE, MESH_SERVICE_SUBSET, DATAPLANE)
_BACKEND_KINDS = (MESH_SERVICE, MESH_SERVICE_SUBSET, MESH_EXTERNAL_SERVICE, MESH_MULTI_ZONE_SERVICE)


# --- MeshHTTPRoute -----------------------------------------------------------------------


def _validate_mesh_http_route(spec: Obj, role: str, c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/plugins/policies/meshhttproute/api/v1alpha1/validation.go:20-26 (validate)
    _top_target_ref(spec, role, "spec.targetRef", _ROUTE_TOP_KINDS, c)
    top_kind = as_str(as_map(spec.get("targetRef")).get("kind")) or MESH
    # validation.go:77-88 (validateTos)
    for i, to in enumerate(maps(spec.get("to"))):
        path = f"spec.to[{i}]"
        _to_target_ref(top_kind, as_map(to.get("targetRef")), f"{path}.targetRef", c)
        # validation.go:90-105 (validateRules)
        for j, rule in enumerate(maps(to.get("rules"))):
            rpath = f"{path}.rules[{j}]"
            matches = [as_map(m) for m in as_list(rule.get("matches"))]
            for k, match in enumerate(matches):
                _http_match(match, f"{rpath}.matches[{k}]", c)
            default = as_map(rule.get("default"))
            filters = default.get("filters")
            if filters is not None:
                _http_filters(top_kind, [as_map(f) for f in as_list(filters)], matches, rpath, c)
            _http_backend_refs(
                top_kind,
                [as_map(b) for b in as_list(default.get("backendRefs"))],
                [as_map(f) for f in as_list(filters)],
                f"{rpath}.default.backendRefs",
                c,
            )
        _hostnames(top_kind, as_list(to.get("hostnames")), f"{path}.hostnames", c)


def _hostnames(top_kind: str, hostnames: list[Any], path: str, c: Collector) -> None:
    # validation.go:107-119 (validateHostnames): hostnames belong to MeshGateway routes only.
    if top_kind != MESH_GATEWAY and hostnames:
        c.error("kuma.mhr.hostnames", path, "only allowed when the top-level targetRef is a MeshGateway")


def _http_match(match: Obj, path: str, c: Collector) -> None:
    # validation.go:121-132 (validateMatches)
    _http_path(match.get("path"), f"{path}.path", c)
    _query_params([as_map(q) for q in as_list(match.get("queryParams"))], f"{path}.queryParams", c)
    _http_headers([as_map(h) for h in as_list(match.get("headers"))], f"{path}.headers", c)


def _http_path(path_match: Any, path: str, c: Collector) -> None:
    # validation.go:134-163 (validatePath)
    if not isinstance(path_match, Mapping):
        return
    kind, value = path_match.get("type"), as_str(path_match.get("value"))
    if kind == "PathPrefix" and value != "/":
        if value.endswith("/"):
            c.error("kuma.mhr.path-prefix-trailing-slash", f"{path}.value", "prefix must not end in '/'")
        if not value.startswith("/"):
            c.error("kuma.mhr.path-absolute", f"{path}.value", "path must start with '/'")
    elif kind == "Exact" and not value.startswith("/"):
        c.error("kuma.mhr.path-absolute", f"{path}.value", "path must start with '/'")


def _http_headers(headers: list[Obj], path: str, c: Collector) -> None:
    # validation.go:165-189 (validateHeaders): Present and Absent carry no value.
    for i, header in enumerate(headers):
        kind = header.get("type") or "Exact"
        if kind in ("Present", "Absent") and as_str(header.get("value")):
            c.error("kuma.mhr.header-value", f"{path}[{i}].value", f"no value with type {kind}")


def _query_params(params: list[Obj], path: str, c: Collector) -> None:
    # validation.go:191-204 (validateQueryParams)
    seen: set[str] = set()
    for i, param in enumerate(params):
        name = as_str(param.get("name"))
        if name in seen:
            c.error("kuma.mhr.query-param-duplicate", f"{path}[{i}].name", f"{name!r} listed twice")
        seen.add(name)


def _any_match_without_prefix(matches: list[Obj]) -> bool:
    # validation.go:206-215 (hasAnyMatchesWithoutPrefix): no matches at all counts as a prefix.
    return any(as_map(m.get("path")).get("type") != "PathPrefix" for m in matches)


def _http_filters(top_kind: str, filters: list[Obj], matches: list[Obj], rpath: str, c: Collector) -> None:
    # validation.go:217-290 (validateFilters)
    for i, f in enumerate(filters):
        path = f"{rpath}.default.filters[{i}]"
        kind = f.get("type")
        field = {
            "RequestHeaderModifier": "requestHeaderModifier",
            "ResponseHeaderModifier": "responseHeaderModifier",
            "RequestRedirect": "requestRedirect",
            "URLRewrite": "urlRewrite",
            "RequestMirror": "requestMirror",
        }.get(as_str(kind))
        if field is None:
            continue
        body = f.get(field)
        if body is None:
            c.error("kuma.mhr.filter-config-missing", f"{path}.{field}", f"needed with type {kind}")
            continue
        body = as_map(body)
        if field in ("requestHeaderModifier", "responseHeaderModifier"):
            _header_modifier(body, f"{path}.{field}", c)
        elif field in ("requestRedirect", "urlRewrite"):
            if as_map(body.get("path")).get("replacePrefixMatch") is not None and _any_match_without_prefix(
                matches
            ):
                c.error(
                    "kuma.mhr.replace-prefix-needs-prefix-matches",
                    f"{path}.{field}.path.replacePrefixMatch",
                    "every match must be a path prefix match",
                )
            _precise_hostname(body.get("hostname"), f"{path}.{field}.hostname", c)
            if field == "urlRewrite" and body.get("hostToBackendHostname") is True:
                if top_kind != MESH_GATEWAY:
                    c.error(
                        "kuma.mhr.host-to-backend-hostname",
                        f"{path}.urlRewrite.hostToBackendHostname",
                        "only with a MeshGateway",
                    )
                if body.get("hostname") is not None:
                    c.error(
                        "kuma.mhr.host-to-backend-hostname",
                        f"{path}.urlRewrite.hostToBackendHostname",
                        "excludes hostname",
                    )
        else:
            validate_target_ref(
                as_map(body.get("backendRef")),
                f"{path}.requestMirror.backendRef",
                (MESH_SERVICE, MESH_SERVICE_SUBSET),
                c,
            )


def _precise_hostname(hostname: Any, path: str, c: Collector) -> None:
    # validation.go:299-316 (validatePreciseHostname): a DNS-1123 subdomain, never an IP address.
    if hostname is None:
        return
    text = as_str(hostname)
    if _is_ip_sloppy(text):
        c.error("kuma.mhr.precise-hostname", path, "an IP address is not a hostname")
    elif not is_dns1123_subdomain(text):
        c.error("kuma.mhr.precise-hostname", path, f"{text!r} is not a DNS-1123 subdomain")


def _is_ip_sloppy(text: str) -> bool:
    # k8s.io/utils net.ParseIPSloppy: Go's pre-1.17 parser, which also reads IPv4 octets with
    # leading zeros ("010.0.0.1") as decimal.
    octets = text.split(".")
    if len(octets) == 4 and all(o.isascii() and o.isdigit() and int(o) < 256 for o in octets):
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _header_modifier(modifier: Obj, path: str, c: Collector) -> None:
    # validation.go:318-350 (validateHeaderModifier): one of set/add/remove, each name once overall.
    if all(modifier.get(k) is None for k in ("set", "add", "remove")):
        c.error("kuma.mhr.header-modifier-empty", path, "needs set, add or remove")
        return
    seen: set[str] = set()
    for key in ("set", "add", "remove"):
        for i, item in enumerate(as_list(modifier.get(key))):
            name = as_str(item) if key == "remove" else as_str(as_map(item).get("name"))
            if name in seen:
                c.error("kuma.mhr.header-modifier-duplicate", f"{path}.{key}[{i}].name", f"{name!r} twice")
            seen.add(name)


def _http_backend_refs(top_kind: str, refs: list[Obj], filters: list[Obj], path: str, c: Collector) -> None:
    # validation.go:352-392 (validateBackendRefs)
    if not refs and top_kind == MESH_GATEWAY and not any(f.get("type") == "RequestRedirect" for f in filters):
        c.error("kuma.mhr.backend-refs-empty", path, "a MeshGateway rule without a redirect needs a backend")
    for i, ref in enumerate(refs):
        validate_target_ref(
            ref, f"{path}[{i}]", _BACKEND_KINDS, c, allowed_invalid_names=("kuma.io/unresolved-backend",)
        )
        _validate_backend_ref(ref, f"{path}[{i}]", c)


# --- MeshTCPRoute -----------------------------------------------------------------------


def _validate_mesh_tcp_route(spec: Obj, role: str, c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/plugins/policies/meshtcproute/api/v1alpha1/validator.go:12-21 (validate)
    _top_target_ref(spec, role, "spec.targetRef", _ROUTE_TOP_KINDS, c)
    top_kind = as_str(as_map(spec.get("targetRef")).get("kind")) or MESH
    # validator.go:72-83 (validateTo)
    for i, to in enumerate(maps(spec.get("to"))):
        path = f"spec.to[{i}]"
        _to_target_ref(top_kind, as_map(to.get("targetRef")), f"{path}.targetRef", c)
        # validator.go:85-101 (validateRules): every rule names at least one backend.
        for j, rule in enumerate(as_list(to.get("rules"))):
            refs = [as_map(b) for b in as_list(as_map(as_map(rule).get("default")).get("backendRefs"))]
            rpath = f"{path}.rules[{j}].default.backendRefs"
            if not refs:
                c.error("kuma.mtcpr.backend-refs-required", rpath, "must be set")
            # validator.go:103-132 (validateBackendRefs)
            for k, ref in enumerate(refs):
                validate_target_ref(ref, f"{rpath}[{k}]", _BACKEND_KINDS, c)
                _validate_backend_ref(ref, f"{rpath}[{k}]", c)


# --- MeshTrafficPermission ------------------------------------------------------------


def _validate_mesh_traffic_permission(spec: Obj, c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/plugins/policies/meshtrafficpermission/api/v1alpha1/validator.go:11-24
    from_, rules = as_list(spec.get("from")), as_list(spec.get("rules"))
    # validator.go:26-41 (validateTop), with pkg/plugins/policies/core/rules/inbound/inboundrules.go:151-161
    # (AffectsInbounds): sectionName on a Dataplane is allowed because the policy is inbound.
    ref = spec.get("targetRef")
    if ref is not None:
        validate_target_ref(
            as_map(ref),
            "spec.targetRef",
            (MESH, MESH_SUBSET, MESH_SERVICE, MESH_SERVICE_SUBSET, DATAPLANE),
            c,
            inbound=bool(from_ or rules),
        )
    if from_ and rules:
        c.error("kuma.mtp.from-with-rules", "spec", "'from' must be empty when 'rules' is set")
    if not from_ and not rules:
        c.error("kuma.mtp.from-or-rules", "spec", "needs 'from' or 'rules'")
    # validator.go:43-55 (validateRules)
    for i, rule in enumerate(rules):
        default = as_map(as_map(rule).get("default"))
        path = f"spec.rules[{i}]"
        if not any(as_list(default.get(k)) for k in ("deny", "allow", "allowWithShadowDeny")):
            c.error("kuma.mtp.rule-empty", path, "needs allow, allowWithShadowDeny or deny")
        # validator.go:57-64 (validateMatches)
        for key in ("allow", "allowWithShadowDeny", "deny"):
            for j, match in enumerate(as_list(default.get(key))):
                _validate_match(as_map(match), f"{path}.{key}[{j}]", c)
    # validator.go:66-91 (validateFrom, validateDefault)
    for i, item in enumerate(maps(from_)):
        path = f"spec.from[{i}]"
        validate_target_ref(
            as_map(item.get("targetRef")),
            f"{path}.targetRef",
            (MESH, MESH_SUBSET, MESH_SERVICE, MESH_SERVICE_SUBSET),
            c,
        )
        if not as_str(as_map(item.get("default")).get("action")):
            c.error("kuma.mtp.from-action", f"{path}.default.action", "must be set")


def _validate_match(match: Obj, path: str, c: Collector) -> None:
    # kumahq/kuma v2.14.3 pkg/core/resources/apis/mesh/validators.go:456-481 (ValidateMatch)
    spiffe = match.get("spiffeID")
    if spiffe is not None:
        problem = spiffe_id_problem(as_str(as_map(spiffe).get("value")))
        if problem:
            c.error("kuma.mtp.spiffe-id", f"{path}.spiffeID", problem)
    sni = match.get("sni")
    if sni is not None:
        sni = as_map(sni)
        kind, value = as_str(sni.get("type")), as_str(sni.get("value"))
        if kind != "Exact":
            c.error("kuma.mtp.sni", f"{path}.sni.type", "must be Exact")
        if not is_dns1123_subdomain(value):
            c.error("kuma.mtp.sni", f"{path}.sni.value", f"{value!r} is not a DNS-1123 subdomain")


# github.com/spiffe/go-spiffe/v2 v2.6.0 (Kuma's pin, go.mod:57) spiffeid/trustdomain.go:114-127 and
# path.go:92-107, built without the spiffeid_charset_backcompat tag.
_TRUST_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_PATH_CHARS = _TRUST_DOMAIN_CHARS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def spiffe_id_problem(value: str) -> str:
    """Why go-spiffe's ``spiffeid.FromString`` refuses ``value``, or ``""``."""
    # spiffeid/id.go:51-82 (FromString)
    prefix = "spiffe://"
    if value == "":
        return "empty"
    if not value.startswith(prefix):
        return "scheme is not spiffe://"
    rest = value[len(prefix) :]
    cut = rest.find("/")
    domain, path = (rest, "") if cut < 0 else (rest[:cut], rest[cut:])
    if any(ch not in _TRUST_DOMAIN_CHARS for ch in domain):
        return "bad trust domain character"
    if domain == "":
        return "no trust domain"
    # spiffeid/path.go:38-70 (ValidatePath): no empty, dot or trailing segment, limited characters.
    if path == "":
        return ""
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        if any(ch not in _PATH_CHARS for ch in segment):
            return "bad path character"
        if segment == "":
            return "trailing slash" if index == len(segments) - 1 else "empty path segment"
        if segment in (".", ".."):
            return "dot path segment"
    return ""


# --- deprecation warnings -------------------------------------------------------------------


def _deprecations(kind: str, spec: Obj, c: Collector) -> None:
    if kind == "MeshTrafficPermission":
        # kumahq/kuma v2.14.3 pkg/plugins/policies/meshtrafficpermission/api/v1alpha1/deprecated.go:9-20
        from_ = as_list(spec.get("from"))
        if from_:
            c.warn("kuma.deprecated.from", "spec.from", "'from' is deprecated in favour of 'rules'")
        for i, item in enumerate(from_):
            if as_map(as_map(item).get("targetRef")).get("kind") == MESH_SERVICE:
                c.warn(
                    "kuma.deprecated.from-mesh-service",
                    f"spec.from[{i}].targetRef.kind",
                    "MeshService here is deprecated in favour of MeshSubset",
                )
    # meshhttproute/.../deprecated.go:7-9, meshtcproute/.../deprecated.go:7-9, and
    # pkg/plugins/policies/core/jsonpatch/validators/validator.go:121-141 (TopLevelTargetRefDeprecations)
    top = as_str(as_map(spec.get("targetRef")).get("kind"))
    if top in (MESH_SERVICE, MESH_SERVICE_SUBSET, MESH_SUBSET):
        c.warn("kuma.deprecated.top-level-kind", "spec.targetRef.kind", f"{top} is deprecated: use Dataplane")
    elif top == MESH_HTTP_ROUTE:
        c.warn(
            "kuma.deprecated.top-level-kind",
            "spec.targetRef.kind",
            "MeshHTTPRoute belongs in spec.to[].targetRef",
        )
