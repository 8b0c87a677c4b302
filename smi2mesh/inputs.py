"""Turn a stream of Kubernetes documents into :class:`smi2mesh.model.Inputs`.

SMI objects are parsed by :mod:`smi2mesh.smi`. Services and workloads are
context: they resolve backends, ports and ServiceAccount-to-pod selectors,
and are never output. Linkerd ServiceProfiles are context too: while one
exists for a Service, Linkerd ignores the HTTPRoutes written for it.
Documents of other API groups are passed over, since they are not policy;
an SMI kind under a groupless apiVersion is an error, not passed over.
References between objects are left to translation. Every problem in every
document is collected before an :class:`~smi2mesh.errors.InputError` is
raised, so users fix all at once.

An SMI object annotated ``smi2mesh.io/ignore: "true"`` (any case) is passed
over here, unparsed, with no problem and no finding: another controller
still serves it during a migration. Every path (``translate``, ``report``,
``plan``, ``--from-cluster`` and the operator) parses through
:func:`parse_document`, so all of them honour it, and an ignored route is
as if absent. Any other value (``"false"``, ``"yes"``, empty) leaves the
object in; the annotation on a context object (a Service) means nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smi2mesh import model, smi
from smi2mesh.errors import InputError, Problem
from smi2mesh.model import SmiKind

WORKLOAD_KINDS: Mapping[tuple[str, str], tuple[str, ...]] = {
    # kind -> path to the pod template, from the object root
    ("apps/v1", "Deployment"): ("spec", "template"),
    ("apps/v1", "StatefulSet"): ("spec", "template"),
    ("apps/v1", "DaemonSet"): ("spec", "template"),
    ("apps/v1", "ReplicaSet"): ("spec", "template"),
    ("batch/v1", "Job"): ("spec", "template"),
    ("batch/v1", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    ("v1", "ReplicationController"): ("spec", "template"),
}
# Read but carrying nothing translation needs beyond their existence.
PASSIVE_KINDS = frozenset((("v1", "Namespace"),))
# Linkerd ServiceProfile versions (both served by Linkerd 2.13-2.20).
SERVICE_PROFILE_VERSIONS = frozenset(("linkerd.io/v1alpha1", "linkerd.io/v1alpha2"))
MANAGED_BY = ("app.kubernetes.io/managed-by", "smi2mesh")
IGNORE_ANNOTATION = "smi2mesh.io/ignore"


def _get(obj: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _container_ports(pod_spec: object) -> tuple[model.ContainerPort, ...]:
    """Declared ports of every container, in order; malformed entries are passed over."""
    out: list[model.ContainerPort] = []
    containers = _get(pod_spec, ("containers",))
    for index, c in enumerate(containers if isinstance(containers, list) else []):
        ports = _get(c, ("ports",))
        for p in ports if isinstance(ports, list) else []:
            if not isinstance(p, Mapping):
                continue
            try:
                number = smi._port(p.get("containerPort"))
            except ValueError:
                continue
            out.append(model.ContainerPort(number, str(p.get("name") or ""),
                                           str(p.get("protocol") or "TCP"), index))
    return tuple(out)


def _target_port(value: object) -> int | str | None:
    if value is None or value == "":
        return None
    try:
        return smi._port(value)
    except ValueError:
        return str(value)


def _context(body: Mapping[str, Any], source: str) -> tuple[object | None, list[Problem]]:
    api_version, kind = body.get("apiVersion"), body.get("kind")
    meta = _get(body, ("metadata",))
    meta = meta if isinstance(meta, Mapping) else {}
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    problems: list[Problem] = []

    def problem(field: str, msg: str) -> None:
        problems.append(Problem(msg, field, str(kind), ns, name, source))

    if not name:
        problem("metadata.name", "is required")
        return None, problems
    m = model.Meta(name=name, namespace=ns, labels=_labels(meta.get("labels")))
    if (api_version, kind) == ("v1", "Service"):
        ports: list[model.ServicePort] = []
        raw_ports = _get(body, ("spec", "ports")) or []
        if not isinstance(raw_ports, list):
            problem("spec.ports", "must be a list")
            raw_ports = []
        for i, p in enumerate(raw_ports):
            try:
                number = smi._port(p.get("port") if isinstance(p, Mapping) else None)
            except ValueError as exc:
                problem(f"spec.ports[{i}].port", str(exc))
                continue
            ports.append(model.ServicePort(
                port=number,
                name=str(p.get("name") or ""),
                protocol=str(p.get("protocol") or "TCP"),
                app_protocol=str(p.get("appProtocol") or ""),
                target_port=_target_port(p.get("targetPort")),
            ))
        return model.Service(m, _labels(_get(body, ("spec", "selector"))), tuple(ports)), problems
    if (api_version, kind) == ("v1", "Pod"):
        sa = _get(body, ("spec", "serviceAccountName")) or _get(body, ("spec", "serviceAccount"))
        return model.Workload(
            "Pod", m, str(sa or "default"), m.labels, None,
            _container_ports(_get(body, ("spec",))), _labels(meta.get("annotations")),
        ), problems
    if (api_version, kind) == ("v1", "ServiceAccount"):
        return model.ServiceAccount(m), problems
    if kind == "ServiceProfile" and api_version in SERVICE_PROFILE_VERSIONS:
        overrides = _get(body, ("spec", "dstOverrides"))
        authorities = tuple(str(o.get("authority")) for o in overrides if isinstance(o, Mapping)) \
            if isinstance(overrides, list) else ()
        managed = m.labels.get(MANAGED_BY[0]) == MANAGED_BY[1]
        routes = _get(body, ("spec", "routes"))
        count = len(routes) if isinstance(routes, list) else 0
        return model.ServiceProfile(m, str(api_version), managed, authorities, count), problems
    template_path = WORKLOAD_KINDS.get((str(api_version), str(kind)))
    if template_path is not None:
        template = _get(body, template_path)
        spec = _get(template, ("spec",))
        sa = _get(spec, ("serviceAccountName",)) or _get(spec, ("serviceAccount",))
        selector = _get(body, ("spec", "selector", "matchLabels"))
        if kind == "CronJob":
            selector = _get(body, ("spec", "jobTemplate", "spec", "selector", "matchLabels"))
        return model.Workload(
            str(kind), m, str(sa or "default"),
            _labels(_get(template, ("metadata", "labels"))),
            _labels(selector) if isinstance(selector, Mapping) and selector else None,
            _container_ports(spec), _labels(_get(template, ("metadata", "annotations"))),
        ), problems
    return None, problems


def ignored(body: object) -> bool:
    """Whether *body* opts out of smi2mesh (``smi2mesh.io/ignore: "true"``, any case)."""
    annotations = _get(body, ("metadata", "annotations"))
    value = annotations.get(IGNORE_ANNOTATION) if isinstance(annotations, Mapping) else None
    return isinstance(value, str) and value.strip().lower() == "true"


def parse_document(body: object, source: str = "") -> tuple[object | None, list[Problem]]:
    """Parse one document: an SMI object, a context object, or None (passed over, or ignored)."""
    if not isinstance(body, Mapping):
        return None, [Problem(f"document must be a mapping, got {type(body).__name__}", source=source)]
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        return None, [_identity_problem(body, source)]
    if api_version.split("/", 1)[0] in smi.SMI_API_GROUPS:
        # Not even parsed: its spec may be in a form only the other controller reads.
        return (None, []) if ignored(body) else smi.parse_smi(body, source)
    if "/" not in api_version and kind in SMI_KINDS:
        # "v1alpha1" alone is the core group, which has no SMI kinds: passing
        # it over would silently drop the object, even under --strict.
        served = sorted(av for av, k in smi.VERSIONS if k == kind)
        guess = f"{model.SMI_GROUPS[SmiKind(kind)]}/{api_version}"
        hint = f"; did you mean {guess}?" if guess in served else f"; it is served as {', '.join(served)}"
        return None, [_problem(body, source, "apiVersion",
                               f"{api_version!r} has no API group, but {kind} is an SMI kind{hint}")]
    return _context(body, source)


SMI_KINDS = frozenset(k.value for k in SmiKind)


def _problem(body: Mapping[str, Any], source: str, field: str, message: str) -> Problem:
    """A problem naming as much of the object as the document has."""
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    kind, name, ns = body.get("kind"), meta.get("name"), meta.get("namespace")
    name = name if isinstance(name, str) else ""
    ns = ns if isinstance(ns, str) and ns else ("default" if name else "")
    return Problem(message, field, kind if isinstance(kind, str) else "", ns, name, source)


def _identity_problem(body: Mapping[str, Any], source: str) -> Problem:
    """Say exactly which of apiVersion and kind is missing or not a string."""
    wrong: list[str] = []
    missing: list[str] = []
    for field in ("apiVersion", "kind"):
        value = body.get(field)
        if value is None or value == "":
            missing.append(field)
        elif not isinstance(value, str):
            wrong.append(f"{field} must be a string, got {type(value).__name__}")
    if missing:
        wrong.insert(0, f"document has no {' and no '.join(missing)}")
    field = missing[0] if missing else ("apiVersion" if "apiVersion" in wrong[0] else "kind")
    return _problem(body, source, field, "; ".join(wrong))


def expand_lists(docs: Iterable[tuple[str, object]]) -> Iterable[tuple[str, object]]:
    """Flatten ``kind: List`` documents (what ``kubectl get -o yaml`` prints)."""
    for source, doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for i, item in enumerate(doc["items"]):
                yield f"{source}:items[{i}]", item
        elif doc is not None:
            yield source, doc


def parse_documents(docs: Iterable[tuple[str, object]]) -> model.Inputs:
    """Parse every document and return the Inputs, or raise InputError with every problem.

    References between objects are not checked here: a missing route or
    Service is a finding of translation (the object may simply not exist
    yet, or not be in the files a pre-commit hook passes).
    """
    problems: list[Problem] = []
    objects: list[object] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for source, body in expand_lists(docs):
        obj, errs = parse_document(body, source)
        problems.extend(errs)
        if obj is None:
            continue
        if isinstance(obj, model.SmiObject | model.Service):
            group = obj.api_version.split("/")[0] if isinstance(obj, model.SmiObject) else ""
            kind = obj.kind if isinstance(obj, model.SmiObject) else "Service"
            key = (group, kind, obj.meta.namespace, obj.meta.name)
            if key in seen:
                problems.append(Problem(
                    f"duplicate object; first defined at {seen[key] or 'an earlier document'}",
                    "metadata.name", kind, obj.meta.namespace, obj.meta.name, source))
                continue
            seen[key] = source
        objects.append(obj)
    if problems:
        raise InputError(problems)
    return model.Inputs.of(objects)


__all__ = ["IGNORE_ANNOTATION", "SmiKind", "ignored", "parse_document", "parse_documents"]
