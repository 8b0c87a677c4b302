"""The fuzz properties, shared by ``test_fuzz.py`` and the long ``scripts/fuzz`` job.

For one generated document set and one target:

1. ``parse_documents`` raises nothing but ``InputError``, whose problems all
   render to a message naming a field or the document; ``translate`` never
   raises on what parsed.
2. Every emitted object validates strictly against its upstream CRD.
3. No emitted access policy allows a request the SMI input does not allow
   (each mesh's evaluator against the independent SMI oracle), on requests
   built from the generated objects so that they hit the rules.
4. The CLI on the same documents, written to a file, exits 0, 1 or 3, and
   writes nothing to stdout when it exits 1.

Counters per target (examples, valid/invalid, objects validated, requests
compared) are kept in :data:`STATS` so the runs can show the properties were
not vacuous.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event
from hypothesis import strategies as st

from smi2mesh import cli
from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Identity, Inputs, SmiKind, TrafficTarget
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS, smi_native
from smi2mesh.translators.base import Options
from tests.access import HttpRequest, Request, smi_allows
from tests.golden import validate_emitted


@dataclass(frozen=True)
class Target:
    """One fuzzed target: a mesh, and for ``smi`` the profile of versions it re-emits."""

    mesh: str
    profile: str | None = None

    @property
    def id(self) -> str:
        return f"{self.mesh}-{self.profile}" if self.profile else self.mesh

    def options(self) -> Options:
        if self.profile is None:
            return Options()
        return Options(smi_versions=dict(smi_native.PROFILES[self.profile]))

    def cli_args(self) -> list[str]:
        return ["--mesh", self.mesh, *(["--smi-profile", self.profile] if self.profile else [])]


TARGETS: tuple[Target, ...] = tuple(
    t for mesh in TRANSLATORS
    for t in ([Target(mesh, p) for p in smi_native.PROFILES] if mesh == "smi" else [Target(mesh)])
)
# Counter names, in the order reports print them.
COUNTERS = ("examples", "valid", "invalid", "objects_validated", "requests", "mesh_allowed",
            "smi_allowed", "cli_runs", "cli_exit_0", "cli_exit_1", "cli_exit_3")
STATS: dict[str, Counter[str]] = {}
REQUESTS_PER_EXAMPLE = 12


def evaluator(mesh: str) -> Callable[[list[dict[str, Any]], Request], bool]:
    """The access evaluator ``tests/access/<mesh>.py`` of one mesh."""
    allows: Callable[[list[dict[str, Any]], Request], bool] = (
        importlib.import_module(f"tests.access.{mesh}").allows)
    return allows


def parse(docs: Sequence[Any]) -> Inputs | None:
    """Property 1 (parse half): Inputs, or None after checking the InputError is well formed."""
    try:
        return parse_documents([(f"fuzz.yaml:{i + 1}", d) for i, d in enumerate(docs)])
    except InputError as exc:
        problems = exc.problems
    # Checked outside the except block so a failure does not chain the InputError.
    assert problems, "InputError without problems"
    for p in problems:
        assert p.message.strip(), f"problem with an empty message: {p!r}"
        assert p.field or p.source, f"problem names neither a field nor a document: {p!r}"
        assert p.render().strip()
    return None


# ---- requests likely to hit the generated rules --------------------------------------

_META = re.compile(r"[\\^$|?*+()\[\]{}]")


def _samples(pattern: str) -> list[str]:
    """Strings a regex probably matches: itself, without metacharacters, and some extensions."""
    bare = _META.sub("", pattern.replace(".*", "").replace("[0-9]+", "1"))
    return [pattern, bare, bare.lower(), bare + "/x", bare + "a", pattern.split("|", maxsplit=1)[0]]


@st.composite
def _aimed(draw: st.DrawFn, inputs: Inputs, tt: TrafficTarget) -> Request:
    """A request built from one TrafficTarget's own source, destination, rule and match."""
    # Mostly one of its own sources; sometimes anyone else in the world.
    own = bool(tt.sources) and draw(st.integers(0, 5)) > 0
    pool = sorted(tt.sources if own else _identities(inputs), key=repr)
    source = draw(st.sampled_from(pool))
    ns, sa = tt.destination.namespace, tt.destination.name
    labels = _pod_labels(draw, inputs, ns, sa)
    ports = {80} if tt.port is None else {tt.port}
    rule = draw(st.sampled_from(tt.rules)) if tt.rules else None
    protocol = "UDP" if rule is not None and rule.kind is SmiKind.UDP_ROUTE else "TCP"
    for r in tt.rules:
        route = (inputs.port_route(r.kind, ns, r.name)
                 if r.kind in (SmiKind.TCP_ROUTE, SmiKind.UDP_ROUTE) else None)
        if route is not None:
            ports.update(route.ports)
    http = None
    group = (inputs.http_route_group(ns, rule.name)
             if rule is not None and rule.kind is SmiKind.HTTP_ROUTE_GROUP else None)
    if group is not None and group.matches:
        m = draw(st.sampled_from(group.matches))
        path = draw(st.sampled_from(_samples(m.path_regex) if m.path_regex is not None else ["/", "/x"]))
        headers = {h.name: draw(st.sampled_from(_samples(h.value))) for h in m.headers
                   if draw(st.integers(0, 5))}
        http = HttpRequest(draw(st.sampled_from(m.methods or ("GET", "POST"))), path, headers)
    elif protocol == "TCP" and draw(st.booleans()):
        http = HttpRequest("GET", "/", {})
    if draw(st.integers(0, 9)) == 0:
        protocol = "UDP" if protocol == "TCP" else "TCP"
    return Request(source, ns, sa, labels, protocol, draw(st.sampled_from(sorted(ports))), http)


def _pod_labels(draw: st.DrawFn, inputs: Inputs, namespace: str, sa: str) -> dict[str, str]:
    """Labels of a pod that really runs as *sa*; a pod no workload describes otherwise.

    A request must describe a pod the inputs know: labels of one ServiceAccount's
    pods on a pod of another are outside what any selector-based mesh can honour.
    """
    pods = inputs.workloads_of(namespace, sa)
    return dict(draw(st.sampled_from(pods)).pod_labels) if pods else {"app": "zzz"}


def _identities(inputs: Inputs) -> set[Identity]:
    out = {Identity("zz", "ns")}
    out.update(Identity(w.service_account, w.meta.namespace) for w in inputs.workloads)
    for tt in inputs.targets:
        out.update(tt.sources)
        out.add(tt.destination)
    return out


@st.composite
def requests(draw: st.DrawFn, inputs: Inputs) -> Request:
    """A request whose parts come from *inputs*: identities, pods, ports, paths and headers.

    Most are aimed at one TrafficTarget (its source, destination pods, a port of its
    routes, a path and headers its match should accept), the rest mix parts of
    everything, so both "allowed" and near-miss requests are compared.
    """
    if bool(inputs.targets) and draw(st.integers(0, 3)) > 0:
        return draw(_aimed(inputs, draw(st.sampled_from(inputs.targets))))
    dests: list[tuple[str, str, dict[str, str]]] = []
    ports: set[int] = {80, 8080}
    paths = {"/", "/api", "/x"}
    headers: dict[str, set[str]] = {"x-a": {"a"}}
    methods = {"GET", "POST"}
    for w in inputs.workloads:
        dests.append((w.meta.namespace, w.service_account, dict(w.pod_labels)))
    for tt in inputs.targets:
        ns, sa = tt.destination.namespace, tt.destination.name
        dests.append((ns, sa, _pod_labels(draw, inputs, ns, sa)))
        if tt.port is not None:
            ports.add(tt.port)
    for r in inputs.port_routes:
        ports.update(r.ports)
    for s in inputs.services:
        ports.update(p.port for p in s.ports)
    for g in inputs.http_route_groups:
        for m in g.matches:
            methods.update(m.methods)
            if m.path_regex is not None:
                paths.update(_samples(m.path_regex))
            for h in m.headers:
                headers.setdefault(h.name, set()).update(_samples(h.value))
    if not dests:
        dests.append(("ns", "a", {}))
    ns, sa, labels = draw(st.sampled_from(sorted(dests, key=repr)))
    protocol = "UDP" if draw(st.integers(0, 4)) == 0 else "TCP"
    http = None
    if protocol == "TCP" and draw(st.integers(0, 2)):
        names = draw(st.lists(st.sampled_from(sorted(headers)), max_size=3, unique=True))
        http = HttpRequest(
            draw(st.sampled_from(sorted(methods - {"*"}) or ["GET"])),
            draw(st.sampled_from(sorted(paths))),
            {n: draw(st.sampled_from(sorted(headers[n]))) for n in names},
        )
    return Request(draw(st.sampled_from(sorted(_identities(inputs), key=repr))), ns, sa, labels,
                   protocol, draw(st.sampled_from(sorted(ports))), http)


# ---- the check -------------------------------------------------------------------------


def _yaml_text(docs: Sequence[Any]) -> str | None:
    """*docs* as a YAML stream, or None when YAML cannot hold them exactly (so the CLI
    would read something else and its exit code could not be compared)."""
    try:
        text = yaml.safe_dump_all(list(docs), allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return None
    return text


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to itself and keeps bool apart from int."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def run_cli(target: Target, docs: Sequence[Any], workdir: Path, parsed: bool,
            stats: Counter[str]) -> None:
    """Property 4: the CLI exits 0, 1 or 3; exit 1 iff the input is invalid, with empty stdout."""
    text = _yaml_text(docs)
    if text is None:
        return
    path = workdir / f"{target.id}.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    strict = "--strict" if stats["examples"] % 2 else None
    argv = ["translate", *target.cli_args(), "-f", str(path), *([strict] if strict else [])]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    stats["cli_runs"] += 1
    stats[f"cli_exit_{code}"] += 1
    assert code in (0, 1, 3), f"CLI exited {code}: {err.getvalue()}"
    if code == 1:
        assert out.getvalue() == "", "exit 1 with output on stdout"
        assert err.getvalue().startswith("error: ")
    reread = list(yaml.safe_load_all(text))
    if _same(reread, [d for d in docs if d is not None]):
        # The CLI read exactly the documents the in-process run parsed.
        assert (code == 1) == (not parsed), f"CLI exit {code}, in-process parse ok={parsed}: {err.getvalue()}"


def check(target: Target, docs: Sequence[Any], data: st.DataObject, workdir: Path) -> None:
    """All four properties for one document set and one target."""
    stats = STATS.setdefault(target.id, Counter())
    stats["examples"] += 1
    inputs = parse(docs)
    event("input", "valid" if inputs is not None else "invalid")
    run_cli(target, docs, workdir, inputs is not None, stats)
    if inputs is None:
        stats["invalid"] += 1
        return
    stats["valid"] += 1
    result = translate(inputs, target.mesh, target.options())
    for obj in result.objects:
        errors = validate_emitted(obj)
        assert errors == [], f"{obj['kind']} {obj['metadata'].get('name')}: {errors}\n{obj}"
    stats["objects_validated"] += len(result.objects)
    allows = evaluator(target.mesh)
    objects = list(result.objects)
    compared = 0
    for _ in range(REQUESTS_PER_EXAMPLE):
        req = data.draw(requests(inputs), label="request")
        stats["requests"] += 1
        expected = smi_allows(inputs, req)
        stats["smi_allowed"] += expected
        if allows(objects, req):
            compared += 1
            assert expected, f"{target.id} allows {req} but SMI does not"
    stats["mesh_allowed"] += compared
    event("allowed requests compared", str(min(compared, 3)) + ("+" if compared >= 3 else ""))

