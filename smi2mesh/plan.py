"""``smi2mesh plan``: what the operator would do in a live cluster for one mesh, writing nothing.

It fills the operator's own cache (:class:`~smi2mesh.operator.store.Store`)
from one read of the cluster and asks the operator's own planner
(:func:`~smi2mesh.operator.reconcile.plan_namespace`) what it would write,
as if every planned namespace carried the label ``smi2mesh.io/mesh: <mesh>``
(object annotations still win, as they do for the operator). So "ours",
"desired", conflicts and pruning mean exactly what they mean to
``smi2mesh run``; every mesh is enabled, so the other meshes' objects of a
swap are seen and their deletion planned.

On top of the operator's plan it shows:

* updates as a diff of the live object and the API server's answer to a
  server-side apply with ``dryRun=All`` (what ``kubectl diff`` shows); creates
  are dry-run too, so one the API server would refuse is reported. Without
  permission to dry-run, the diff is computed locally on the fields we set,
  and the plan says so;
* what would make the new objects inert: Linkerd ServiceProfiles with
  ``dstOverrides`` (Linkerd proxies prefer them to HTTPRoutes), and a
  linkerd-smi or OSM controller still running (found by Deployment name or
  image), which keeps acting on the same SMI objects;
* every finding, invalid SMI object and missing mesh CRD.

The operator's own discovery (:class:`~smi2mesh.operator.runtime.Discovery`)
picks the served kinds and the mesh and Gateway API releases to write for,
so the plan is written for the same versions. Only GET requests and dry-run
writes are made.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from smi2mesh import cli
from smi2mesh.cluster import Connection
from smi2mesh.findings import Finding
from smi2mesh.migration import ClusterError
from smi2mesh.operator import reconcile, runtime
from smi2mesh.operator.config import MESH_LABEL, OPERATOR_MESHES, OperatorConfig
from smi2mesh.operator.kube import ApiError, Resource
from smi2mesh.operator.store import CONTEXT_KINDS, NAMESPACES, SMI_KINDS, Store
from smi2mesh.translators.base import MANAGED_BY, MANAGER, ConsulNamespaces

SERVICE_PROFILE = ("linkerd.io/v1alpha2", "ServiceProfile")
# Controllers that act on the same SMI objects: (what, Deployment names, image substrings).
COMPETITORS = (
    ("linkerd-smi (smi-adaptor)", ("smi-adaptor",), ("linkerd/smi-adaptor",)),
    ("Open Service Mesh (osm-controller)", ("osm-controller",), ("openservicemesh/osm-controller",)),
)
_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


@dataclass
class Change:
    """One object the operator would create, update or delete."""

    action: str  # create | update | delete
    obj: dict[str, Any]
    sources: list[str]
    diff: str = ""
    note: str = ""  # how the diff was made, or why the API server would refuse it

    @property
    def ref(self) -> str:
        meta = self.obj["metadata"]
        group = self.obj["apiVersion"].rpartition("/")[0]
        return f"{self.obj['kind']}.{group} {meta['namespace']}/{meta['name']}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "apiVersion": self.obj["apiVersion"],
                               "kind": self.obj["kind"], "namespace": self.obj["metadata"]["namespace"],
                               "name": self.obj["metadata"]["name"], "sources": self.sources}
        if self.diff:
            out["diff"] = self.diff
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Result:
    """The whole plan over every namespace."""

    mesh: str
    namespaces: list[str]
    changes: list[Change] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    inert: list[str] = field(default_factory=list)
    missing_crds: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def to_dict(self) -> dict[str, Any]:
        return {"mesh": self.mesh, "namespaces": self.namespaces,
                "create": [c.to_dict() for c in self.changes if c.action == "create"],
                "update": [c.to_dict() for c in self.changes if c.action == "update"],
                "delete": [c.to_dict() for c in self.changes if c.action == "delete"],
                "conflicts": self.conflicts, "inert": self.inert, "missingCRDs": self.missing_crds,
                "invalid": self.invalid, "unchecked": self.unchecked,
                "findings": [f.to_dict() for f in self.findings]}


# ---- reading the cluster into the operator's cache ----------------------------------------


def _namespaces(conn: Connection, mesh: str) -> list[dict[str, Any]]:
    res = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
    if conn.all_namespaces:
        found = conn.list_objects(res, [""])
    else:
        found = []
        for ns in conn.namespaces:
            body = conn._call(f"get namespace {ns}", conn.kube.get, res, None, ns)
            if body is None:
                raise ClusterError(f"namespace {ns} does not exist in {conn.where}")
            found.append(body)
    for body in found:
        # The question plan answers: what if these namespaces used this mesh?
        body.setdefault("metadata", {}).setdefault("labels", {})[MESH_LABEL] = mesh
    return found


def fill(conn: Connection, config: OperatorConfig) -> tuple[Store, list[str]]:
    """The operator's cache as its watches would fill it, and the namespaces to plan."""
    store = Store()
    conn.progress.start(f"reading {conn.where}")
    for body in _namespaces(conn, config.mesh):
        store.upsert(NAMESPACES, body, mark=False)
    for key, res in conn.smi_resources().items():
        for body in conn.list_objects(res):
            store.upsert(key, body, mark=False)
    for key, kind in CONTEXT_KINDS.items():
        for body in conn.list_objects(Resource(key[0], "v1", key[1], kind)):
            if key == ("", "pods") and (body.get("metadata") or {}).get("ownerReferences"):
                continue  # the operator watches unowned Pods only
            store.upsert(key, body, mark=False)
    for (api_version, kind), key in reconcile.output_resources(config).items():
        output = conn.resource(api_version, kind)
        if output is not None:
            for body in conn.list_objects(output):
                store.upsert(key, body, mark=False)
    conn.progress.finish()
    if conn.all_namespaces:
        # Every namespace with SMI objects or with objects labelled ours.
        names = {ns for key in SMI_KINDS for ns, objs in store.objects.get(key, {}).items() if objs}
        names |= {ns for key in reconcile.output_resources(config).values()
                  for ns, objs in store.objects.get(key, {}).items()
                  if any((o["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER
                         for o in objs.values())}
        return store, sorted(names)
    return store, list(conn.namespaces)


# ---- dry runs ------------------------------------------------------------------------------


def _plain(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_META}
    return out


def _yaml(obj: Mapping[str, Any]) -> list[str]:
    text: str = yaml.safe_dump(_plain(obj), sort_keys=True, default_flow_style=False, width=1 << 16)
    return text.splitlines(keepends=True)


def _dry_run(conn: Connection, res: Resource, obj: Mapping[str, Any], *, force: bool) -> dict[str, Any]:
    meta = obj["metadata"]
    query = [("fieldManager", MANAGER), ("dryRun", "All")] + ([("force", "true")] if force else [])
    _, body = conn.kube.request("PATCH", res.path(meta.get("namespace"), meta["name"]), query=query,
                                body=obj, content_type="application/apply-patch+yaml",
                                what=f"dry-run {res.kind} {meta.get('namespace')}/{meta['name']}")
    return dict(body or {})


def diff_of(conn: Connection, write: reconcile.Write) -> tuple[str, str]:
    """(unified diff, note) of an update: live object against the server's dry-run answer."""
    live = write.live or {}
    name = f"{write.obj['kind']} {write.obj['metadata']['namespace']}/{write.obj['metadata']['name']}"
    try:
        after, note = _dry_run(conn, write.resource, write.obj, force=True), ""
    except ApiError as exc:
        if exc.status not in (401, 403):
            return "", f"the API server would refuse the apply: {exc}"
        # Without dry-run rights: the fields we set, compared as the operator compares them.
        after = {**live, **{k: v for k, v in write.obj.items() if k != "metadata"},
                 "metadata": {**(live.get("metadata") or {}), **{
                     k: write.obj["metadata"][k] for k in ("labels", "annotations", "ownerReferences")
                     if k in write.obj["metadata"]}}}
        note = f"computed locally: server-side dry-run forbidden (HTTP {exc.status})"
    text = "".join(difflib.unified_diff(_yaml(live), _yaml(after), f"live/{name}",
                                        f"planned/{name}"))
    return text, note


def check_create(conn: Connection, write: reconcile.Write) -> str:
    """Why the API server would refuse this create, or ""."""
    try:
        _dry_run(conn, write.resource, write.obj, force=False)
    except ApiError as exc:
        if exc.status in (401, 403):
            return f"not validated: server-side dry-run forbidden (HTTP {exc.status})"
        return f"the API server would refuse it: {exc}"
    return ""


# ---- inert-making objects and competing controllers ----------------------------------------


def _service_profiles(conn: Connection, result: Result, namespaces: list[str], config: OperatorConfig,
                      parents: set[tuple[str, str]]) -> None:
    profiles = conn.resource(*SERVICE_PROFILE)
    if profiles is None:
        return  # not served: no ServiceProfile can exist
    suffix = f".svc.{config.cluster_domain}"
    for body in conn.list_objects(profiles, namespaces):
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        if not spec.get("dstOverrides"):
            continue
        name = str(meta.get("name", ""))
        service, _, rest = name.partition(".")
        covered = rest.endswith(suffix) and (rest.removesuffix(suffix), service) in parents
        result.inert.append(
            f"ServiceProfile {meta.get('namespace')}/{name} has dstOverrides: Linkerd proxies follow "
            "it instead of HTTPRoutes" + (f", so the planned HTTPRoute for Service {service} would "
                                          "have no effect; remove its dstOverrides" if covered else ""))


def _competitors(conn: Connection, result: Result) -> None:
    res = Resource("apps", "v1", "deployments", "Deployment")
    try:
        deployments = conn.list_objects(res, [""])
    except ClusterError as exc:
        result.unchecked.append(f"running linkerd-smi or OSM controllers: {exc}")
        return
    for body in deployments:
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        if spec.get("replicas", 1) == 0:
            continue
        images = [str(c.get("image", "")) for c in
                  ((spec.get("template") or {}).get("spec") or {}).get("containers") or []]
        for what, names, patterns in COMPETITORS:
            if meta.get("name") in names or any(p in i for p in patterns for i in images):
                result.inert.append(
                    f"{what} is running (Deployment {meta.get('namespace')}/{meta.get('name')}): it "
                    "keeps acting on the same SMI objects; scale it down or skip these objects there")


# ---- the command -------------------------------------------------------------------------


def config_of(args: argparse.Namespace, conn: Connection) -> OperatorConfig:
    """The operator configuration plan assumes: ``--mesh`` with every other mesh enabled, and
    the translation options of ``translate`` (which plan shares)."""
    return OperatorConfig(
        mesh=args.mesh, namespaces=conn.namespaces, trust_domain=args.trust_domain,
        cluster_domain=args.cluster_domain, enabled_meshes=frozenset(OPERATOR_MESHES),
        consul_namespaces=ConsulNamespaces(args.consul_namespaces), widen_l7_to_l4=args.widen_l7_to_l4,
        mesh_versions={args.mesh: args.mesh_version} if args.mesh_version else {},
        gateway_api_version=args.gateway_api_version)


def build(conn: Connection, config: OperatorConfig) -> Result:
    """Read the cluster once and plan every namespace the operator would touch."""
    mesh = config.mesh
    store, namespaces = fill(conn, config)
    # The operator's own discovery: which output kinds are served, and the mesh and
    # Gateway API releases it would write for.
    discovery = runtime.Discovery(conn.kube, config)
    conn._call("discover the mesh kinds", discovery.refresh_outputs)
    result = Result(mesh, namespaces)
    parser = reconcile.Parser()
    parents: set[tuple[str, str]] = set()
    conn.progress.start(f"planning for {mesh}")
    for ns in namespaces:
        plan = reconcile.plan_namespace(ns, store, config, parser, discovery.output,
                                        profiles=discovery.profiles)
        for w in plan.writes:
            change = Change("create" if w.verb == "create" else "update", w.obj, w.sources)
            if w.verb == "create":
                change.note = check_create(conn, w)
            else:
                change.diff, change.note = diff_of(conn, w)
            result.changes.append(change)
            if w.obj["kind"] == "HTTPRoute":
                parents |= {(ns, str(p.get("name"))) for p in w.obj.get("spec", {}).get("parentRefs") or []
                            if p.get("kind") == "Service"}
        for w in [*plan.writes, *plan.deletes]:
            conn.progress.add(w.obj["kind"], 1)
        result.changes += [Change("delete", w.obj, w.sources) for w in plan.deletes]
        for ref, out in sorted(plan.outcomes.items()):
            result.conflicts += [f"{ref}: {c}" for c in out.conflicts]
            result.invalid += [f"{ref}: {p.field}: {p.message}" if p.field else f"{ref}: {p.message}"
                               for p in out.problems]
            if out.missing_crds:
                result.missing_crds.append(f"{ref}: mesh {out.mesh} needs CRDs not installed: "
                                           f"{', '.join(sorted(out.missing_crds))}")
            result.findings += out.findings
    conn.progress.finish()
    if mesh == "linkerd":
        _service_profiles(conn, result, namespaces, config, parents)
    _competitors(conn, result)
    return result


def render_text(result: Result) -> str:
    signs = {"create": "+", "update": "~", "delete": "-"}
    lines = [f"Plan for mesh {result.mesh} in namespace(s) {', '.join(result.namespaces) or '(none)'}:"]
    for change in result.changes:
        origin = f"  (from {', '.join(change.sources)})" if change.sources else ""
        lines.append(f"  {signs[change.action]} {change.action} {change.ref}{origin}")
        if change.note:
            lines.append(f"      note: {change.note}")
        lines += [f"      {line}" for line in change.diff.splitlines()]
    for title, items in (("conflict", result.conflicts), ("inert", result.inert),
                         ("missing CRDs", result.missing_crds), ("invalid", result.invalid),
                         ("not checked", result.unchecked)):
        lines += [f"  ! {title}: {item}" for item in items]
    lines += [f"  warning: {f.render()} [{f.reason.value}]" for f in result.findings]
    lines.append(f"{result.count('create')} to create, {result.count('update')} to update, "
                 f"{result.count('delete')} to delete, {len(result.conflicts)} conflict(s), "
                 f"{len(result.inert) + len(result.missing_crds)} blocker(s), "
                 f"{len(result.findings)} finding(s). Nothing was written.")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, conn: Connection, stdout: TextIO, stderr: TextIO) -> int:
    """``smi2mesh plan``: exit 0, 1 when an SMI object is invalid, 3 with --strict and any finding,
    conflict, blocker or unchecked item."""
    # The operator's discovery logs what it decided (e.g. a Gateway API release outside
    # what the mesh supports); here that is a warning line like any other.
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("smi2mesh")
    logger.addHandler(handler)
    try:
        result = build(conn, config_of(args, conn))
    finally:
        logger.removeHandler(handler)
    stdout.write(json.dumps(result.to_dict(), indent=2) + "\n" if args.output == "json"
                 else render_text(result))
    if result.invalid:
        stderr.write(f"error: {len(result.invalid)} invalid SMI object field(s); the operator "
                     "would keep their last good output\n")
        return cli.EXIT_INPUT
    problems = len(result.findings) + len(result.conflicts) + len(result.inert) \
        + len(result.missing_crds) + len(result.unchecked)
    if args.strict and problems:
        stderr.write(f"error: {problems} finding(s), conflict(s) or blocker(s) with --strict\n")
        return cli.EXIT_FINDINGS
    return cli.EXIT_OK
