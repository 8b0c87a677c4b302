"""Offline, strict validation of Kubernetes custom objects against upstream CRD schemas.

Tests of the translation layer validate every emitted object with this module, the way
the API server would with ``fieldValidation=Strict``: structural OpenAPI v3 rules, unknown
fields as errors, ObjectMeta checks. CEL rules (``x-kubernetes-validations``) cannot run
offline; they are only counted, a separate test tier applies objects to a real API server.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
try:  # Go's RE2 syntax (e.g. \p{..}, \z) is a superset of what Python's re accepts here.
    _re2: Any = importlib.import_module("re2")
except ImportError:  # pragma: no cover - optional dependency
    _re2 = None

TOP_LEVEL = ("apiVersion", "kind", "metadata")
_META_KEYS = frozenset({
    "name", "generateName", "namespace", "labels", "annotations", "ownerReferences",
    "finalizers", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"})
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def default_crds_dir() -> Path:
    """``$MESH_CRDS_DIR``, else ``<repo root>/../shared/upstream-crds``."""
    env = os.environ.get("MESH_CRDS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "upstream-crds"


@dataclass(frozen=True)
class CrdVersion:
    """One version of one CRD from one file; ``source`` is the file path relative to the root."""

    group: str
    version: str
    kind: str
    scope: str
    served: bool
    storage: bool
    deprecated: bool
    schema: Mapping[str, Any] | None = field(repr=False, compare=False)
    source: str
    # apiextensions v1beta1 CRDs default to preserveUnknownFields: true; the API server then
    # neither prunes nor reports unknown fields, so neither do we.
    preserve_unknown_fields: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@dataclass
class ValidationResult:
    """Outcome of validating one object against one candidate (or none)."""

    errors: list[str]
    candidate: CrdVersion | None = None
    skipped_cel_rules: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _in_source(src: str, prefix: str) -> bool:
    prefix = prefix.strip("/")
    return src == prefix or src.startswith(prefix + "/")


def _folder_version(src: str) -> tuple[int, ...]:
    # Untagged "main" snapshots post-date every tag of their project (see SOURCES.md).
    if re.search(r"(^|[-/])main(/|$)", src):
        return (10**9,)
    nums = re.findall(r"(\d+(?:\.\d+)+)", src.rsplit("/", 1)[0])
    return tuple(int(x) for x in nums[-1].split(".")) if nums else ()


def _rank(crd: CrdVersion, prefer: Sequence[str]) -> tuple[Any, ...]:
    pref = next((i for i, p in enumerate(prefer) if _in_source(crd.source, p)), len(prefer))
    parts = crd.source.split("/")
    channel = 0 if "standard" in parts else 2 if "experimental" in parts else 1
    ver = _folder_version(crd.source)
    newest_first = tuple(-x for x in ver + (0,) * (4 - len(ver)))
    return (pref, not crd.served, channel, newest_first, crd.source)


def _versions_of(doc: Mapping[str, Any], source: str) -> list[CrdVersion]:
    spec = doc.get("spec") or {}
    v1beta1 = str(doc.get("apiVersion", "")).endswith("/v1beta1")
    shared = (spec.get("validation") or {}).get("openAPIV3Schema")
    versions = spec.get("versions") or [{"name": spec.get("version"), "storage": True}]
    return [
        CrdVersion(
            group=spec["group"], version=str(v["name"]), kind=spec["names"]["kind"],
            scope=spec.get("scope", "Namespaced"), served=bool(v.get("served", True)),
            storage=bool(v.get("storage", False)), deprecated=bool(v.get("deprecated", False)),
            schema=(v.get("schema") or {}).get("openAPIV3Schema", shared), source=source,
            preserve_unknown_fields=spec.get("preserveUnknownFields", v1beta1) is True)
        for v in versions]


@functools.cache
def _load_root(root: Path) -> tuple[CrdVersion, ...]:
    out: list[CrdVersion] = []
    for path in sorted(root.rglob("*.yaml")):
        if "legacy-spec-jsonschema" in path.parts:  # JSON schemas of Kuma specs, not CRDs
            continue
        for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader):
            if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition":
                out.extend(_versions_of(doc, path.relative_to(root).as_posix()))
    return tuple(out)


class CrdIndex:
    """All CRD versions under a root, looked up by (group, version, kind)."""

    def __init__(self, versions: Sequence[CrdVersion], prefer: Sequence[str] = ()) -> None:
        self.versions = tuple(versions)
        self.prefer = tuple(prefer)
        self._by_gvk: dict[tuple[str, str], list[CrdVersion]] = {}
        for crd in sorted(self.versions, key=lambda c: _rank(c, self.prefer)):
            self._by_gvk.setdefault((crd.api_version, crd.kind), []).append(crd)

    @classmethod
    def load(cls, root: Path | str | None = None, prefer: Sequence[str] = ()) -> CrdIndex:
        """Index every CRD below ``root``; folders matching ``prefer`` (prefixes) rank first."""
        return _cached_index(Path(root or default_crds_dir()).resolve(), tuple(prefer))

    def candidates(self, api_version: str, kind: str, *, source: str | None = None,
                   served_only: bool = False) -> list[CrdVersion]:
        """Every CRD version defining apiVersion/kind, best first.

        Ranking: ``prefer`` folders, served before unserved, gateway-api ``standard`` before
        ``experimental``, newest folder version first.
        """
        return [c for c in self._by_gvk.get((api_version, kind), [])
                if (source is None or _in_source(c.source, source))
                and (c.served or not served_only)]

    def check(self, obj: Mapping[str, Any], *, source: str | None = None) -> ValidationResult:
        """Validate against the best candidate."""
        cands = self.candidates(str(obj.get("apiVersion")), str(obj.get("kind")), source=source)
        return check_against(obj, cands[0]) if cands else _no_crd(obj, source)

    def validate(self, obj: Mapping[str, Any], *, source: str | None = None) -> list[str]:
        return self.check(obj, source=source).errors

    def check_any(self, obj: Mapping[str, Any], *, source: str | None = None,
                  served_only: bool = False) -> ValidationResult:
        """Accept if any candidate accepts; else report every candidate's errors, tagged by file."""
        cands = self.candidates(str(obj.get("apiVersion")), str(obj.get("kind")),
                                source=source, served_only=served_only)
        if not cands:
            return _no_crd(obj, source)
        results = [check_against(obj, c) for c in cands]
        for r in results:
            if r.ok:
                return r
        return ValidationResult([f"[{r.candidate.source if r.candidate else '?'}] {e}"
                                 for r in results for e in r.errors], results[0].candidate,
                                results[0].skipped_cel_rules, [n for r in results for n in r.notes])

    def validate_any(self, obj: Mapping[str, Any], *, source: str | None = None,
                     served_only: bool = False) -> list[str]:
        return self.check_any(obj, source=source, served_only=served_only).errors


# ---- Kuma's legacy specs (TrafficRoute, TrafficPermission) ---------------------------------
#
# Their CRDs keep ``spec`` as x-kubernetes-preserve-unknown-fields, so the API server checks
# nothing in it; Kuma reads it as protobuf JSON with unknown fields allowed
# (pkg/util/proto/proto.go:54-57 at v2.14.3: AllowUnknownFields), so a misspelt field is
# dropped silently. The spec is therefore checked against the JSON Schema Kuma generates from
# the protobuf (legacy-spec-jsonschema/<Kind>.json, draft-04), strictly: a property the
# schema does not declare is an error here.

LEGACY_SPEC_FOLDER = "kuma-v2.14.3/legacy-spec-jsonschema"
LEGACY_SPEC_KINDS = frozenset(("TrafficRoute", "TrafficPermission"))


@functools.cache
def _legacy_schema(root: Path, kind: str) -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads((root / LEGACY_SPEC_FOLDER / f"{kind}.json").read_text())
    return loaded


def legacy_spec_errors(obj: Mapping[str, Any], root: Path | str | None = None) -> list[str]:
    """Strict errors of a Kuma legacy object's ``spec`` against Kuma's generated JSON Schema."""
    kind = str(obj.get("kind"))
    if kind not in LEGACY_SPEC_KINDS or not str(obj.get("apiVersion", "")).startswith("kuma.io/"):
        raise LookupError(f"no legacy spec schema for {obj.get('apiVersion')} {kind}")
    schema = _legacy_schema(Path(root or default_crds_dir()).resolve(), kind)
    errors: list[str] = []
    _json_schema(obj.get("spec"), schema, schema, "spec", errors)
    return errors


def _json_schema(v: Any, s: Mapping[str, Any], root: Mapping[str, Any], path: str,
                 errors: list[str]) -> None:
    """The draft-04 keywords these schemas use: $ref, type, properties, additionalProperties, items."""
    ref = s.get("$ref")
    if isinstance(ref, str):
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        _json_schema(v, target, root, path, errors)
        return
    t = s.get("type")
    if isinstance(t, str) and t in _TYPES and not _TYPES[t](v):
        errors.append(f"{path}: Invalid value: {_show(v)}: must be of type {t}")
        return
    if isinstance(v, list) and isinstance(s.get("items"), Mapping):
        for i, item in enumerate(v):
            _json_schema(item, s["items"], root, f"{path}[{i}]", errors)
    if isinstance(v, Mapping):
        props: Mapping[str, Any] = s.get("properties") or {}
        extra = s.get("additionalProperties")
        for k, sub in v.items():
            if k in props:
                _json_schema(sub, props[k], root, f"{path}.{k}", errors)
            elif isinstance(extra, Mapping) and not props:
                # A map field (tags, headers): its values have a schema, its keys are free.
                _json_schema(sub, extra, root, f"{path}[{k}]", errors)
            else:
                errors.append(f"{path}.{k}: unknown field (Kuma would ignore it)")


@functools.cache
def _cached_index(root: Path, prefer: tuple[str, ...]) -> CrdIndex:
    return CrdIndex(_load_root(root), prefer)


def _no_crd(obj: Mapping[str, Any], source: str | None) -> ValidationResult:
    where = f" under {source}" if source else ""
    return ValidationResult([(f"no CRD{where} defines apiVersion={obj.get('apiVersion')!r} "
                              f"kind={obj.get('kind')!r}")])


def check_against(obj: Mapping[str, Any], crd: CrdVersion) -> ValidationResult:
    """Validate ``obj`` against one CRD version (``served`` is the caller's business)."""
    chk = _Checker(prune=not crd.preserve_unknown_fields)
    if not isinstance(obj, Mapping):
        return ValidationResult([f"<root>: Invalid value: {_show(obj)}: must be an object"], crd)
    if obj.get("apiVersion") != crd.api_version:
        chk.err("apiVersion",
                f"Invalid value: {_show(obj.get('apiVersion'))}: expected {crd.api_version!r}")
    if obj.get("kind") != crd.kind:
        chk.err("kind", f"Invalid value: {_show(obj.get('kind'))}: expected {crd.kind!r}")
    schema = crd.schema or {}
    props = schema.get("properties") or {}
    chk.metadata(obj.get("metadata"), "metadata", name_required=True,
                 cluster_scoped=crd.scope == "Cluster", meta_schema=props.get("metadata") or {})
    if crd.schema is None:
        chk.notes.append(f"{crd.source} {crd.api_version}: no schema, only metadata checked")
    else:
        # apiVersion/kind/metadata are implicit at the root; the rest is schema-validated.
        root = dict(schema, properties={k: v for k, v in props.items() if k not in TOP_LEVEL},
                    required=[r for r in schema.get("required") or () if r not in TOP_LEVEL])
        chk.check({k: v for k, v in obj.items() if k not in TOP_LEVEL}, root, "", True)
    if crd.preserve_unknown_fields:
        chk.notes.append(f"{crd.source}: preserveUnknownFields (v1beta1): unknown fields allowed")
    return ValidationResult(chk.errors, crd, chk.cel, chk.notes)


def _show(v: Any) -> str:
    try:
        s = json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    except TypeError:  # mixed key types (YAML allows int keys) cannot be sorted
        s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _canon(v: Any) -> Any:
    """Hashable JSON-equality key: 1 == 1.0, but True != 1 (unlike Python's ==)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return (type(v).__name__, v)
    if isinstance(v, (int, float)):
        return ("num", float(v))
    if isinstance(v, Mapping):
        return ("obj", tuple(sorted((str(k), _canon(x)) for k, x in v.items())))
    if isinstance(v, (list, tuple)):
        return ("arr", tuple(_canon(x) for x in v))
    return ("other", repr(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, Mapping), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "integer": _is_int, "number": _is_num,
    "boolean": lambda v: isinstance(v, bool)}


_PATTERN_ERRORS: tuple[type[Exception], ...] = (re.error, *((_re2.error,) if _re2 else ()))


def _compile(engine: Any, pattern: str) -> Any:
    try:
        if engine is re:
            return re.compile(pattern)
        quiet = engine.Options()
        quiet.log_errors = False  # a pattern both engines reject is a note, not stderr noise
        return engine.compile(pattern, quiet)
    except _PATTERN_ERRORS:
        return None


@functools.cache
def _matcher(pattern: str) -> Callable[[str], bool] | None:
    """Unanchored search like Go's MatchString; None when neither engine compiles it."""
    for engine in (re, _re2):
        rx = None if engine is None else _compile(engine, pattern)
        if rx is not None:
            return functools.partial(_search, rx)
    return None


def _search(rx: Any, s: str) -> bool:
    return rx.search(s) is not None


def _qualified_name_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return ("name part must be at most 63 alphanumeric characters, '-', '_' or '.', "
                "starting and ending with an alphanumeric character")
    return None


class _Checker:
    def __init__(self, prune: bool) -> None:
        self.prune, self.errors, self.notes, self.cel = prune, list[str](), list[str](), 0

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path or '<root>'}: {msg}")

    def check(self, v: Any, s: Mapping[str, Any], path: str, structural: bool) -> None:
        """``structural`` is False inside allOf/anyOf/oneOf/not: value checks only, no pruning."""
        if structural:
            self.cel += len(s.get("x-kubernetes-validations") or ())
        if v is None:
            if not s.get("nullable") and (s.get("type") or s.get("x-kubernetes-int-or-string")):
                want = s.get("type", "int-or-string")
                self.err(path, f"Invalid value: null: must be of type {want}")
            return
        t = s.get("type")
        if s.get("x-kubernetes-int-or-string"):
            if not (_is_int(v) or isinstance(v, str)):
                self.err(path, f"Invalid value: {_show(v)}: must be of type int-or-string")
                return
        elif isinstance(t, str) and t in _TYPES and not _TYPES[t](v):
            self.err(path, f"Invalid value: {_show(v)}: must be of type {t}")
            return
        if "enum" in s and _canon(v) not in {_canon(e) for e in s["enum"] or ()}:
            allowed = ", ".join(_show(e) for e in s["enum"] or ())
            self.err(path, f"Unsupported value: {_show(v)}: supported values: {allowed}")
        if isinstance(v, str):
            self._string(v, s, path)
        elif _is_num(v):
            self._number(v, s, path)
        elif isinstance(v, list):
            self._array(v, s, path, structural)
        elif isinstance(v, Mapping):
            self._object(v, s, path, structural)
        self._junctors(v, s, path)

    def _string(self, v: str, s: Mapping[str, Any], path: str) -> None:
        if "minLength" in s and len(v) < s["minLength"]:
            self.err(path, f"Invalid value: {_show(v)}: must be at least {s['minLength']} chars")
        if "maxLength" in s and len(v) > s["maxLength"]:
            self.err(path, f"Too long: may not be more than {s['maxLength']} chars")
        if "pattern" in s:
            match = _matcher(s["pattern"])
            note = f"pattern not checkable by re or re2: {s['pattern']!r}"
            if match is None:
                if note not in self.notes:
                    self.notes.append(note)
            elif not match(v):
                self.err(path, f"Invalid value: {_show(v)}: should match {s['pattern']!r}")

    def _number(self, v: float, s: Mapping[str, Any], path: str) -> None:
        lo, hi = s.get("minimum"), s.get("maximum")
        xlo, xhi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        if _is_num(xlo):  # JSON Schema 2019 numeric form; OpenAPI 3.0 uses a bool modifier
            lo, xlo = xlo, True
        if _is_num(xhi):
            hi, xhi = xhi, True
        if lo is not None and (v <= lo if xlo else v < lo):
            self.err(path, f"Invalid value: {_show(v)}: must be {'>' if xlo else '>='} {lo}")
        if hi is not None and (v >= hi if xhi else v > hi):
            self.err(path, f"Invalid value: {_show(v)}: must be {'<' if xhi else '<='} {hi}")
        m = s.get("multipleOf")
        if m and not (v % m == 0 if _is_int(v) and _is_int(m) else
                      math.isclose(v / m, round(v / m), abs_tol=1e-9)):
            self.err(path, f"Invalid value: {_show(v)}: must be a multiple of {m}")

    def _array(self, v: list[Any], s: Mapping[str, Any], path: str, structural: bool) -> None:
        if "minItems" in s and len(v) < s["minItems"]:
            self.err(path, f"Invalid value: {len(v)} items: must have at least {s['minItems']}")
        if "maxItems" in s and len(v) > s["maxItems"]:
            self.err(path, f"Too many: {len(v)}: must have at most {s['maxItems']} items")
        items = s.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(v):
                self.check(item, items, f"{path}[{i}]", structural)
        list_type = s.get("x-kubernetes-list-type")
        keys: list[str] = s.get("x-kubernetes-list-map-keys") or []
        if list_type == "set" or s.get("uniqueItems") or (list_type == "map" and keys):
            seen: set[Any] = set()
            for i, item in enumerate(v):
                if list_type == "map" and isinstance(item, Mapping):
                    key: Any = tuple(_canon(item.get(k)) for k in keys)
                    shown = _show({k: item.get(k) for k in keys})
                else:
                    key, shown = _canon(item), _show(item)
                if key in seen:
                    self.err(f"{path}[{i}]", f"Duplicate value: {shown}")
                seen.add(key)

    def _object(self, v: Mapping[str, Any], s: Mapping[str, Any], path: str,
                structural: bool) -> None:
        if "minProperties" in s and len(v) < s["minProperties"]:
            self.err(path, f"Too few: {len(v)}: must have at least {s['minProperties']} properties")
        if "maxProperties" in s and len(v) > s["maxProperties"]:
            self.err(path, f"Too many: {len(v)}: must have at most {s['maxProperties']} properties")
        for r in s.get("required") or ():
            if r not in v:
                self.err(f"{path}.{r}" if path else r, "Required value")
        props: Mapping[str, Any] = s.get("properties") or {}
        extra = s.get("additionalProperties")
        # Pruning keeps only declared fields; what it would drop is an unknown-field error here.
        strict = structural and self.prune and not s.get("x-kubernetes-preserve-unknown-fields")
        embedded = structural and s.get("x-kubernetes-embedded-resource") is True
        for k, sub in v.items():
            p = f"{path}.{k}" if path else str(k)
            if k in props:
                self.check(sub, props[k], p, structural)
            elif isinstance(extra, Mapping):
                self.check(sub, extra, f"{path}[{k}]", structural)
            elif embedded and k in TOP_LEVEL:
                if k == "metadata":
                    self.metadata(sub, p, name_required=False, cluster_scoped=False, meta_schema={})
                elif not isinstance(sub, str) or not sub:
                    self.err(p, f"Invalid value: {_show(sub)}: must be a non-empty string")
            elif extra is False or (strict and extra is not True):
                self.err(p, "unknown field")

    def _junctors(self, v: Any, s: Mapping[str, Any], path: str) -> None:
        for sub in s.get("allOf") or ():
            self.check(v, sub, path, False)
        if s.get("anyOf"):
            results = [self._sub(v, sub, path) for sub in s["anyOf"]]
            if all(results):
                why = " | ".join(r[0] for r in results)
                self.err(path, f"Invalid value: {_show(v)}: must match some anyOf schema ({why})")
        if s.get("oneOf"):
            results = [self._sub(v, sub, path) for sub in s["oneOf"]]
            n = sum(not r for r in results)
            if n != 1:
                why = " | ".join(r[0] for r in results if r) if n == 0 else f"{n} matched"
                self.err(path, f"Invalid value: {_show(v)}: must match one oneOf schema ({why})")
        if isinstance(s.get("not"), Mapping) and not self._sub(v, s["not"], path):
            self.err(path, f"Invalid value: {_show(v)}: must not match the schema in 'not'")

    def _sub(self, v: Any, s: Mapping[str, Any], path: str) -> list[str]:
        sub = _Checker(self.prune)
        sub.check(v, s, path, False)
        self.notes.extend(n for n in sub.notes if n not in self.notes)
        return sub.errors

    def metadata(self, m: Any, path: str, *, name_required: bool, cluster_scoped: bool,
                 meta_schema: Mapping[str, Any]) -> None:
        """ObjectMeta subset; CRD schemas may only constrain ``name`` and ``generateName``."""
        if m is None:
            if name_required:
                self.err(path, "Required value")
            return
        if not isinstance(m, Mapping):
            self.err(path, f"Invalid value: {_show(m)}: must be of type object")
            return
        for k in m:
            if k not in _META_KEYS:
                self.err(f"{path}.{k}", "unknown field")
        name, gen = m.get("name"), m.get("generateName")
        if name is None and name_required and not gen:
            self.err(f"{path}.name", "Required value: name or generateName is required")
        for k, value in (("name", name), ("generateName", gen)):
            if value is None:
                continue
            # generateName gets a random suffix appended, so a trailing '-' is fine there.
            if not isinstance(value, str):
                self.err(f"{path}.{k}", f"Invalid value: {_show(value)}: must be of type string")
                continue
            test = value[:-1] + "a" if k == "generateName" and value.endswith("-") else value
            if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(test):
                self.err(f"{path}.{k}", f"Invalid value: {_show(value)}: must be a lowercase "
                         "RFC 1123 subdomain of at most 253 characters")
            sub = (meta_schema.get("properties") or {}).get(k)
            if isinstance(sub, Mapping):
                self.check(value, sub, f"{path}.{k}", False)
        ns = m.get("namespace")
        if ns is not None and cluster_scoped:
            self.err(f"{path}.namespace", "Forbidden: not allowed on a cluster-scoped resource")
        elif ns is not None and not (isinstance(ns, str) and _DNS_LABEL.fullmatch(ns)
                                     and len(ns) <= 63):
            self.err(f"{path}.namespace",
                     f"Invalid value: {_show(ns)}: must be a lowercase RFC 1123 label")
        for k in ("labels", "annotations"):
            self._string_map(m.get(k), f"{path}.{k}", labels=k == "labels")
        for k in ("finalizers", "ownerReferences", "managedFields"):
            if m.get(k) is not None and not isinstance(m[k], list):
                self.err(f"{path}.{k}", f"Invalid value: {_show(m[k])}: must be of type array")
        fins = m.get("finalizers")
        for i, f in enumerate(fins if isinstance(fins, list) else ()):
            if not isinstance(f, str) or _qualified_name_error(f):
                self.err(f"{path}.finalizers[{i}]",
                         f"Invalid value: {_show(f)}: must be a qualified name")
        refs = m.get("ownerReferences")
        for i, ref in enumerate(refs if isinstance(refs, list) else ()):
            for k in ("apiVersion", "kind", "name", "uid"):
                if not isinstance(ref, Mapping) or not isinstance(ref.get(k), str) or not ref[k]:
                    self.err(f"{path}.ownerReferences[{i}].{k}", "Required value")
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            if m.get(k) is not None and not isinstance(m[k], str):
                self.err(f"{path}.{k}", f"Invalid value: {_show(m[k])}: must be of type string")
        for k in ("generation", "deletionGracePeriodSeconds"):
            if m.get(k) is not None and not _is_int(m[k]):
                self.err(f"{path}.{k}", f"Invalid value: {_show(m[k])}: must be of type integer")

    def _string_map(self, v: Any, path: str, *, labels: bool) -> None:
        if v is None:
            return
        if not isinstance(v, Mapping):
            self.err(path, f"Invalid value: {_show(v)}: must be a map of string to string")
            return
        for k, val in v.items():
            # apimachinery checks annotation keys lowercased (ValidateAnnotations), so
            # Flagger's "VirtualService.v1alpha3.networking.istio.io/spec.gateways" is legal.
            key = k if labels or not isinstance(k, str) else k.lower()
            why = _qualified_name_error(key) if isinstance(k, str) else "key must be a string"
            if why:
                self.err(path, f"Invalid value: {_show(k)}: {why}")
            if not isinstance(val, str):
                self.err(f"{path}[{k}]", f"Invalid value: {_show(val)}: must be of type string")
            elif labels and (len(val) > 63 or not _LABEL_VALUE.fullmatch(val)):
                self.err(f"{path}[{k}]", f"Invalid value: {_show(val)}: a label value must be at "
                         "most 63 alphanumeric characters, '-', '_' or '.', starting and ending "
                         "with an alphanumeric character")
