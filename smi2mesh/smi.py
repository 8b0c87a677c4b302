"""SMI wire models for every version, and parsing into the internal model.

One pydantic model per (kind, version) describes what that version accepts,
tolerant of what real repositories and clusters hold: string ports, header
maps or lists, Quantity weights (in every split version), Services written
as hostnames, and the top-level (v1alpha1) layout in any version. The
same models generate the project's CRDs (:mod:`smi2mesh.crdgen`), so the
CRDs accept exactly what the parser accepts.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from smi2mesh import model, regex, weights
from smi2mesh.errors import Problem
from smi2mesh.findings import FindingReason
from smi2mesh.model import SmiKind

# ---- field types -------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# RFC 7230 token characters: what Envoy and the Gateway API accept as a header name.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
METHODS = ("*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a valid name (lowercase RFC 1123 label, at most 63 characters)")
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a valid name (lowercase RFC 1123 subdomain)")
    return value


def _port(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("port must be a number, not a boolean")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError(f"port {value!r} is not a number")
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} is out of range 1-65535")
    return value


def _regex(value: str) -> str:
    err = regex.re2_error(value)
    if err:
        raise ValueError(err)
    return value


def _headers(value: object) -> list[tuple[str, str]]:
    """Accept ``{name: regex}`` (the Go type and spec) or ``[{name: regex}]`` / ``[{name, value}]``.

    smi-sdk-go's CRD declares headers as a list of maps while its Go type and
    the spec use a map, so both shapes are in the wild.
    """
    items: list[tuple[object, object]] = []
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            if not isinstance(entry, Mapping):
                raise ValueError(f"headers[{i}] must be a mapping of header name to regex")
            if set(entry) == {"name", "value"}:
                items.append((entry["name"], entry["value"]))
            else:
                items.extend(entry.items())
    else:
        raise ValueError("headers must be a mapping of header name to regex, or a list of them")
    out: list[tuple[str, str]] = []
    for name, val in items:
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if not isinstance(val, str):
            raise ValueError(f"header {name!r} value must be a regex string")
        err = regex.re2_error(val)
        if err:
            raise ValueError(f"header {name!r}: {err}")
        out.append((name.lower(), val))
    return out


def _host(value: str) -> str:
    # The spec calls these fields FQDNs, so any DNS name is accepted here;
    # which Service it names is decided while converting (see model.Host).
    name = value.lower().removesuffix(".")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name) or any(len(x) > 63 for x in name.split(".")):
        raise ValueError(f"{value!r} is neither a Service name nor a hostname (RFC 1123)")
    return value


def _int_weight(value: object) -> tuple[int, str | None]:
    """A whole number as milli-units, or a Quantity string with its text (to report).

    linkerd-smi stores v1alpha1 and serves it as v1alpha2 without
    conversion, so ``weight: 500m`` is a real v1alpha2 state: a string is
    read as a Quantity, by milli-value, and reported as rewritten.
    """
    if isinstance(value, bool):
        raise ValueError("weight must be a whole number, not a boolean")
    if isinstance(value, str):
        milli = weights.quantity_to_milli(value)
        if milli < 0:
            raise ValueError(f"weight {value!r} must not be negative")
        return milli, value
    if not isinstance(value, int):
        raise ValueError(f"weight {value!r} must be a whole number in this version")
    if value < 0:
        raise ValueError(f"weight {value} must not be negative")
    if value * 1000 > weights.MAX_MILLI:
        raise ValueError(f"weight {value} is out of range")
    return value * 1000, None


def _quantity_weight(value: object) -> int:
    milli = weights.quantity_to_milli(value)
    if milli < 0:
        raise ValueError(f"weight {value!r} must not be negative")
    return milli


_INT_OR_STRING = WithJsonSchema({"x-kubernetes-int-or-string": True})
Name = Annotated[str, AfterValidator(_dns_label)]
# ServiceAccount names are DNS subdomains (up to 253 characters), unlike Service names.
AccountName = Annotated[str, AfterValidator(_dns_subdomain)]
Port = Annotated[int, BeforeValidator(_port), _INT_OR_STRING]
Regex = Annotated[str, AfterValidator(_regex)]
Headers = Annotated[
    list[tuple[str, str]],
    BeforeValidator(_headers),
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]
Method = Literal["*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
QuantityWeight = Annotated[int, BeforeValidator(_quantity_weight), _INT_OR_STRING]
IntWeight = Annotated[tuple[int, str | None], BeforeValidator(_int_weight), _INT_OR_STRING]
# spec.service and backends[].service: a Service name or its hostname.
Host = Annotated[str, AfterValidator(_host)]


class Wire(BaseModel):
    """Base of every SMI wire model: camelCase aliases, unknown fields kept to be reported."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )


# ---- specs.smi-spec.io -------------------------------------------------------


class HTTPMatchWire(Wire):
    """One named HTTP match (all versions; ``headers`` from v1alpha2)."""

    name: Annotated[str, Field(min_length=1)]
    methods: list[Method] | None = None
    path_regex: Regex | None = None
    headers: Headers | None = None


class HTTPRouteGroupSpec(Wire):
    """HTTPRouteGroup body (top level in v1alpha1/v1alpha2, ``spec`` later)."""

    matches: list[HTTPMatchWire] = []


class PortMatchWire(Wire):
    """TCPRoute/UDPRoute v1alpha4 ``matches``: an object, not a list."""

    name: str | None = None
    ports: list[Port] = []


class PortRouteSpec(Wire):
    """TCPRoute (every version) and UDPRoute v1alpha4.

    TCPRoute v1alpha1-v1alpha3 have no fields, but ``matches.ports`` is
    honoured there too when present: dropping a port restriction would widen
    access, like ``destination.port`` in access v1alpha3.
    """

    matches: PortMatchWire | None = None


# ---- split.smi-spec.io -------------------------------------------------------


class QuantityBackend(Wire):
    """v1alpha1 backend: weight is a Kubernetes Quantity."""

    service: Host
    weight: QuantityWeight


class IntBackend(Wire):
    """v1alpha2+ backend: weight is a whole number."""

    service: Host
    weight: IntWeight


class TypedRef(Wire):
    """corev1.TypedLocalObjectReference, as used by TrafficSplit ``matches``."""

    kind: Literal["HTTPRouteGroup"]
    name: Name
    api_group: str | None = None


class TrafficSplitSpecV1(Wire):
    """TrafficSplit v1alpha1."""

    service: Host
    backends: Annotated[list[QuantityBackend], Field(min_length=1)]


class TrafficSplitSpecV2(Wire):
    """TrafficSplit v1alpha2."""

    service: Host
    backends: Annotated[list[IntBackend], Field(min_length=1)]


class TrafficSplitSpecV3(Wire):
    """TrafficSplit v1alpha3 and v1alpha4 (identical)."""

    service: Host
    backends: Annotated[list[IntBackend], Field(min_length=1)]
    matches: list[TypedRef] | None = None


# ---- access.smi-spec.io ------------------------------------------------------


class Subject(Wire):
    """A source identity."""

    kind: Literal["ServiceAccount"]
    name: AccountName
    namespace: Name | None = None


class Destination(Wire):
    """The destination identity. ``port`` exists in v1alpha1/v1alpha2; it is
    honoured in every version because dropping it would widen access."""

    kind: Literal["ServiceAccount"]
    name: AccountName
    namespace: Name | None = None
    port: Port | None = None


class RuleWire(Wire):
    """A rule: a route object and optionally some of its match names."""

    kind: Literal["HTTPRouteGroup", "TCPRoute", "UDPRoute"]
    name: Name
    matches: list[str] | None = None


class TrafficTargetSpecV1(Wire):
    """TrafficTarget v1alpha1: ``specs`` instead of ``rules``."""

    destination: Destination
    sources: list[Subject] = []
    specs: list[RuleWire] = []


class TrafficTargetSpecV2(Wire):
    """TrafficTarget v1alpha2 and v1alpha3."""

    destination: Destination
    sources: list[Subject] = []
    rules: list[RuleWire] = []


# ---- the version table -------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """One served (kind, version): its wire model and where its fields live."""

    kind: SmiKind
    group: str
    version: str
    spec: type[Wire]
    top_level: bool  # whether this version's own layout is top-level (no ``spec``)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def _versions() -> dict[tuple[str, str], Version]:
    table: list[Version] = []
    split, access, specs = (model.SMI_GROUPS[k] for k in (
        SmiKind.TRAFFIC_SPLIT, SmiKind.TRAFFIC_TARGET, SmiKind.HTTP_ROUTE_GROUP))
    table.append(Version(SmiKind.TRAFFIC_SPLIT, split, "v1alpha1", TrafficSplitSpecV1, False))
    table.append(Version(SmiKind.TRAFFIC_SPLIT, split, "v1alpha2", TrafficSplitSpecV2, False))
    for v in ("v1alpha3", "v1alpha4"):
        table.append(Version(SmiKind.TRAFFIC_SPLIT, split, v, TrafficSplitSpecV3, False))
    table.append(Version(SmiKind.TRAFFIC_TARGET, access, "v1alpha1", TrafficTargetSpecV1, True))
    for v in ("v1alpha2", "v1alpha3"):
        table.append(Version(SmiKind.TRAFFIC_TARGET, access, v, TrafficTargetSpecV2, False))
    for v in ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"):
        top = v in ("v1alpha1", "v1alpha2")
        table.append(Version(SmiKind.HTTP_ROUTE_GROUP, specs, v, HTTPRouteGroupSpec, top))
        table.append(Version(SmiKind.TCP_ROUTE, specs, v, PortRouteSpec, False))
    table.append(Version(SmiKind.UDP_ROUTE, specs, "v1alpha4", PortRouteSpec, False))
    return {(x.api_version, x.kind.value): x for x in table}


VERSIONS: Mapping[tuple[str, str], Version] = _versions()
SMI_API_GROUPS = frozenset(model.SMI_GROUPS.values())


# ---- parsing -----------------------------------------------------------------


def field_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic/JSON location as ``spec.backends[0].weight``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _holds_models(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_models(arg) for arg in typing.get_args(annotation))


@functools.cache
def _nested_fields(cls: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """(attribute, alias) of the fields of *cls* that can hold other models."""
    return tuple((name, info.alias or name) for name, info in cls.model_fields.items()
                 if _holds_models(info.annotation))


def _extras(obj: BaseModel, path: str) -> Iterator[str]:
    """Field paths of unknown fields anywhere in *obj*, to report as findings."""
    for key in obj.__pydantic_extra__ or ():
        yield f"{path}.{key}" if path else key
    for name, alias in _nested_fields(type(obj)):
        value = getattr(obj, name)
        sub = f"{path}.{alias}" if path else alias
        if isinstance(value, BaseModel):
            yield from _extras(value, sub)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _extras(item, f"{sub}[{i}]")


_META_KEYS = frozenset(("apiVersion", "kind", "metadata", "status"))


class _Doc:
    """A raw input document with the identity used in error messages."""

    __slots__ = ("body", "kind", "name", "namespace", "source")

    def __init__(self, body: Mapping[str, Any], source: str) -> None:
        self.body = body
        self.source = source
        meta = body.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        kind, name, ns = body.get("kind"), meta.get("name"), meta.get("namespace")
        self.kind = kind if isinstance(kind, str) else ""
        self.name = name if isinstance(name, str) else ""
        self.namespace = ns if isinstance(ns, str) and ns else "default"

    def problem(self, field: str, message: str) -> Problem:
        return Problem(message, field, self.kind, self.namespace, self.name, self.source)


def _string_map(doc: _Doc, value: object, field: str, problems: list[Problem]) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problems.append(doc.problem(field, "must be a mapping of strings to strings"))
        return {}
    return dict(value)


_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _key_problem(key: str) -> str:
    """Why *key* is not a Kubernetes label or annotation key ("" when it is one)."""
    prefix, _, name = key.rpartition("/")
    if prefix:
        try:
            _dns_subdomain(prefix)
        except ValueError as exc:
            return f"prefix {prefix!r}: {exc}"
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (f"name {name!r} must be at most 63 characters: alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric")
    return ""


def _check_keys(doc: _Doc, field: str, values: Mapping[str, str], labels: bool,
                problems: list[Problem]) -> None:
    """Keys (and label values) the API server would refuse, as it would name them."""
    for key, value in values.items():
        where = f"{field}[{key}]"
        # The API server checks annotation keys lowercased (Flagger's
        # "VirtualService.v1alpha3.networking.istio.io/spec.gateways" is one),
        # label keys as they are.
        if why := _key_problem(key if labels else key.lower()):
            problems.append(doc.problem(where, f"invalid key: {why}"))
        elif labels and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            problems.append(doc.problem(where, f"invalid value {value!r}: a label value must be "
                                        "at most 63 characters: alphanumerics, '-', '_' or '.', "
                                        "starting and ending with an alphanumeric"))


def _meta(doc: _Doc, problems: list[Problem]) -> model.Meta:
    raw = doc.body.get("metadata")
    if not isinstance(raw, Mapping):
        problems.append(doc.problem("metadata", "is required and must be a mapping"))
        raw = {}
    if not doc.name:
        problems.append(doc.problem("metadata.name", "is required"))
    else:
        try:
            _dns_subdomain(doc.name)
        except ValueError as exc:
            problems.append(doc.problem("metadata.name", str(exc)))
    ns = raw.get("namespace")
    if ns is not None:
        try:
            _dns_label(ns if isinstance(ns, str) else "")
        except ValueError as exc:
            problems.append(doc.problem("metadata.namespace", str(exc)))
    gen = raw.get("generation")
    labels = _string_map(doc, raw.get("labels"), "metadata.labels", problems)
    annotations = _string_map(doc, raw.get("annotations"), "metadata.annotations", problems)
    _check_keys(doc, "metadata.labels", labels, True, problems)
    _check_keys(doc, "metadata.annotations", annotations, False, problems)
    return model.Meta(
        name=doc.name,
        namespace=doc.namespace,
        labels=labels,
        annotations=annotations,
        uid=str(raw.get("uid") or ""),
        generation=gen if isinstance(gen, int) and not isinstance(gen, bool) else 0,
    )


def _body(doc: _Doc, version: Version, problems: list[Problem]) -> tuple[dict[str, Any], str]:
    """Pick the fields of the object: ``spec`` or, for the old layout, the top level."""
    top = {k: v for k, v in doc.body.items() if k not in _META_KEYS and k != "spec"}
    spec = doc.body.get("spec")
    if spec is not None:
        if not isinstance(spec, Mapping):
            problems.append(doc.problem("spec", "must be a mapping"))
            return {}, "spec."
        if top:
            fields = ", ".join(sorted(top))
            problems.append(
                doc.problem(fields, "found both top-level fields and spec; use one layout")
            )
        return dict(spec), "spec."
    if not top and not version.top_level and version.spec.model_fields:
        # A body-less object of a kind with fields: point at spec, as the CRD would.
        return {}, "spec."
    return top, ""


def parse_smi(body: Mapping[str, Any], source: str = "") -> tuple[model.SmiObject | None, list[Problem]]:
    """Parse one SMI document into the internal model, returning all its problems."""
    doc = _Doc(body, source)
    problems: list[Problem] = []
    api_version = body.get("apiVersion")
    version = VERSIONS.get((str(api_version), doc.kind))
    if version is None:
        kinds = sorted({k for (av, k) in VERSIONS if av.split("/")[0] == str(api_version).split("/")[0]})
        hint = f"; known kinds: {', '.join(kinds)}" if kinds else ""
        versions = sorted(av for (av, k) in VERSIONS if k == doc.kind)
        if versions:
            hint = f"; {doc.kind} is served as {', '.join(versions)}"
        problems.append(doc.problem(
            "apiVersion", f"unknown SMI apiVersion/kind {api_version}/{doc.kind}{hint}"))
        return None, problems
    meta = _meta(doc, problems)
    fields, prefix = _body(doc, version, problems)
    try:
        wire = version.spec.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = prefix + field_path(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required"
            problems.append(doc.problem(path.rstrip("."), msg))
        return None, problems
    if problems:
        return None, problems
    ignored = tuple(prefix + p for p in _extras(wire, ""))
    obj = _CONVERT[type(wire)](wire, meta, version, prefix, ignored, doc, problems)
    return (None if problems else obj), problems


def _conv_route_group(w: Any, meta: model.Meta, v: Version, prefix: str,
                      ignored: tuple[str, ...], doc: _Doc, problems: list[Problem]) -> model.SmiObject:
    matches: list[model.HTTPMatch] = []
    seen: set[str] = set()
    for i, m in enumerate(w.matches):
        if m.name in seen:
            problems.append(doc.problem(f"{prefix}matches[{i}].name", f"duplicate match name {m.name!r}"))
        seen.add(m.name)
        methods = tuple(m.methods or ())
        if "*" in methods:
            methods = ()
        matches.append(model.HTTPMatch(
            name=m.name,
            methods=tuple(dict.fromkeys(methods)),
            path_regex=m.path_regex,
            headers=tuple(model.HeaderMatch(n, val) for n, val in (m.headers or ())),
        ))
    return model.HTTPRouteGroup(meta, v.api_version, prefix, ignored, matches=tuple(matches))


def _conv_port_route(w: Any, meta: model.Meta, v: Version, prefix: str,
                     ignored: tuple[str, ...], doc: _Doc, problems: list[Problem]) -> model.SmiObject:
    proto = model.Protocol.UDP if v.kind is SmiKind.UDP_ROUTE else model.Protocol.TCP
    m = w.matches
    ports = tuple(sorted(set(m.ports))) if m else ()
    return model.PortRoute(meta, v.api_version, prefix, ignored, protocol=proto,
                           match_name=m.name if m else None, ports=ports)


def _resolve_host(text: str, namespace: str, field: str, doc: _Doc,
                  problems: list[Problem]) -> model.Host | None:
    """What a Service field names; None for a bare name (nothing to resolve or report)."""
    labels = text.lower().removesuffix(".").split(".")
    if len(labels) == 1:
        # DNS names are case-insensitive: "Web" or "web." still name Service web.
        return None if text == labels[0] else model.Host(text, labels[0])
    if len(labels) > 2 and labels[2] != "svc":
        # An external host (podinfo.example.com): no Service of this cluster.
        return model.Host(text, None)
    if labels[1] != namespace:
        problems.append(doc.problem(field, (
            f"{text!r} names Service {labels[0]!r} of namespace {labels[1]!r}; a TrafficSplit's "
            f"Services must be in its own namespace {namespace!r}")))
        return None
    # _host made every label a DNS label, so labels[0] is a valid Service name.
    domain = ".".join(labels[3:]) if len(labels) > 3 else None
    return model.Host(text, labels[0], domain)


def _conv_split(w: Any, meta: model.Meta, v: Version, prefix: str,
                ignored: tuple[str, ...], doc: _Doc, problems: list[Problem]) -> model.SmiObject:
    ns = meta.namespace
    backends: list[model.Backend] = []
    notes: list[model.Note] = []
    for i, b in enumerate(w.backends):
        field = f"{prefix}backends[{i}]"
        milli, text = b.weight if isinstance(b.weight, tuple) else (b.weight, None)
        if text is not None:
            notes.append(model.Note(f"{field}.weight", FindingReason.REWRITTEN, (
                f"weight {text!r} is a string in split {v.version}, which declares a whole number; "
                "read as a Kubernetes Quantity, by milli-value (1 = 1000m), relative to the other "
                "backends")))
        host = _resolve_host(b.service, ns, f"{field}.service", doc, problems)
        name = host.name if host is not None and host.name is not None else b.service
        backends.append(model.Backend(name, milli, host))
    if sum(b.weight_milli for b in backends) <= 0:
        problems.append(doc.problem(
            f"{prefix}backends", "all backend weights are zero; at least one must be positive"))
    seen: set[str] = set()
    for i, b in enumerate(backends):
        if b.service in seen:
            problems.append(doc.problem(f"{prefix}backends[{i}].service", f"duplicate backend {b.service!r}"))
        seen.add(b.service)
    root = _resolve_host(w.service, ns, f"{prefix}service", doc, problems)
    refs = tuple(model.RouteRef(SmiKind(r.kind), r.name) for r in (getattr(w, "matches", None) or ()))
    return model.TrafficSplit(
        meta, v.api_version, prefix, ignored, tuple(notes),
        service=root.name if root is not None and root.name is not None else w.service,
        backends=tuple(backends), matches=refs, service_host=root)


def _conv_target(w: Any, meta: model.Meta, v: Version, prefix: str,
                 ignored: tuple[str, ...], doc: _Doc, problems: list[Problem]) -> model.SmiObject:
    dest = w.destination
    dest_ns = dest.namespace or meta.namespace
    if dest_ns != meta.namespace:
        # Keeps one namespace's SMI objects from writing policy into another's.
        problems.append(doc.problem(
            f"{prefix}destination.namespace",
            f"must equal the TrafficTarget's namespace {meta.namespace!r}, got {dest_ns!r}"))
    rules_field = "specs" if isinstance(w, TrafficTargetSpecV1) else "rules"
    raw_rules = w.specs if isinstance(w, TrafficTargetSpecV1) else w.rules
    other = "rules" if rules_field == "specs" else "specs"
    if other in (w.__pydantic_extra__ or {}):
        # Left unread, the rules would vanish and the target would allow
        # nothing here, but "rules: []" is allow-all on Traefik Mesh.
        others = "v1alpha2 and v1alpha3" if other == "rules" else "v1alpha1"
        problems.append(doc.problem(prefix + other, (
            f"access {v.version} holds its rules in {rules_field!r}; {other!r} is the field of "
            f"access {others}, so these rules cannot be read")))
    return model.TrafficTarget(
        meta, v.api_version, prefix, ignored,
        destination=model.Identity(dest.name, dest_ns),
        port=dest.port,
        sources=tuple(model.Identity(s.name, s.namespace or meta.namespace) for s in w.sources),
        rules=tuple(
            model.Rule(SmiKind(r.kind), r.name, None if r.matches is None else tuple(r.matches))
            for r in raw_rules
        ),
        rules_field=rules_field,
    )


_Converter = Callable[[Any, model.Meta, Version, str, tuple[str, ...], _Doc, list[Problem]], model.SmiObject]
_CONVERT: Mapping[type[Wire], _Converter] = {
    HTTPRouteGroupSpec: _conv_route_group,
    PortRouteSpec: _conv_port_route,
    TrafficSplitSpecV1: _conv_split,
    TrafficSplitSpecV2: _conv_split,
    TrafficSplitSpecV3: _conv_split,
    TrafficTargetSpecV1: _conv_target,
    TrafficTargetSpecV2: _conv_target,
}
