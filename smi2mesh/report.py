"""The mesh-choice report: what each target mesh can hold of one set of SMI policy.

Pure: it runs the one :func:`smi2mesh.translate.translate` per mesh over the
same parsed inputs and only counts what the results say, so the report can
never disagree with ``smi2mesh translate``. Markdown is for a pull request or
a wiki page, JSON for tools.

What the counts mean:

* an SMI object is *carried exactly* when no finding names it, apart from
  ``Rewritten`` (same meaning in another form) and ``Prerequisite`` (exact,
  once the mesh is set up as the finding says; listed separately);
* *failed closed* are ``AccessFailClosed`` findings (the grant was not
  emitted), *widened* are ``Widened`` ones (granted more broadly, on request);
* *not enforced* are ``NotExpressible`` findings on TrafficTargets: no policy
  at all, so the mesh's default applies.

Meshes are ranked by objects carried exactly, then by fewer widened grants,
fewer access rules failed closed or not enforced, fewer findings and fewer
prerequisites. Equal keys share a rank.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smi2mesh.findings import Finding, FindingReason
from smi2mesh.model import Inputs, SmiKind, SmiObject
from smi2mesh.progress import Progress
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options

EXACT_REASONS = frozenset((FindingReason.REWRITTEN, FindingReason.PREREQUISITE))


def object_ref(namespace: str, kind: str, name: str) -> str:
    """An object as findings name it: ``<namespace>/<Kind>/<name>``."""
    return f"{namespace}/{kind}/{name}"


def _ref(obj: SmiObject) -> str:
    return object_ref(obj.meta.namespace, obj.kind, obj.meta.name)


def _finding_ref(f: Finding) -> str:
    return object_ref(f.namespace, f.kind, f.name)


def smi_objects(inputs: Inputs) -> list[SmiObject]:
    """Every SMI object of *inputs*, in kind, namespace and name order."""
    objs: list[SmiObject] = [*inputs.splits, *inputs.targets, *inputs.http_route_groups,
                             *inputs.port_routes]
    return sorted(objs, key=lambda o: (o.kind, o.meta.namespace, o.meta.name))


@dataclass(frozen=True)
class Prerequisite:
    """One thing the mesh needs set up, and the SMI objects that need it."""

    message: str
    objects: tuple[str, ...]


@dataclass
class MeshReport:
    """What one mesh holds of the input."""

    mesh: str
    total: int
    exact: list[str]
    generated: int
    findings: list[Finding]
    rank: int = 0

    @property
    def not_exact(self) -> list[str]:
        """SMI objects with a finding that changes their meaning, sorted."""
        return sorted({_finding_ref(f) for f in self.findings if f.reason not in EXACT_REASONS})

    def by_reason(self) -> dict[str, list[Finding]]:
        """Findings grouped by reason, reasons in the order FindingReason declares them."""
        out: dict[str, list[Finding]] = {}
        for reason in FindingReason:
            found = [f for f in self.findings if f.reason is reason]
            if found:
                out[reason.value] = found
        return out

    @property
    def failed_closed(self) -> list[Finding]:
        return [f for f in self.findings if f.reason is FindingReason.ACCESS_FAIL_CLOSED]

    @property
    def widened(self) -> list[Finding]:
        return [f for f in self.findings if f.reason is FindingReason.WIDENED]

    @property
    def not_enforced(self) -> list[Finding]:
        return [f for f in self.findings if f.reason is FindingReason.NOT_EXPRESSIBLE
                and f.kind == SmiKind.TRAFFIC_TARGET.value]

    @property
    def prerequisites(self) -> list[Prerequisite]:
        """Prerequisite findings grouped by message, in first-seen order."""
        grouped: dict[str, list[str]] = {}
        for f in self.findings:
            if f.reason is FindingReason.PREREQUISITE:
                refs = grouped.setdefault(f.message, [])
                if _finding_ref(f) not in refs:
                    refs.append(_finding_ref(f))
        return [Prerequisite(m, tuple(refs)) for m, refs in grouped.items()]

    def rank_key(self) -> tuple[int, int, int, int, int]:
        return (-len(self.exact), len(self.widened), len(self.failed_closed) + len(self.not_enforced),
                len(self.findings), len(self.prerequisites))

    def to_dict(self) -> dict[str, Any]:
        def rules(found: Iterable[Finding]) -> list[dict[str, str]]:
            return [f.to_dict() for f in found]

        return {
            "mesh": self.mesh,
            "rank": self.rank,
            "smiObjects": self.total,
            "carriedExactly": len(self.exact),
            "notCarriedExactly": self.not_exact,
            "generatedObjects": self.generated,
            "findings": len(self.findings),
            "findingsByReason": {
                reason: {"count": len(found), "objects": sorted({_finding_ref(f) for f in found})}
                for reason, found in self.by_reason().items()},
            "access": {"failedClosed": rules(self.failed_closed), "widened": rules(self.widened),
                       "notEnforced": rules(self.not_enforced)},
            "prerequisites": [{"message": p.message, "count": len(p.objects),
                               "objects": list(p.objects)} for p in self.prerequisites],
        }


@dataclass
class Report:
    """The report over every requested mesh, ranked."""

    objects: list[str]
    kinds: dict[str, int]
    meshes: list[MeshReport] = field(default_factory=list)

    def ranked(self) -> list[MeshReport]:
        return sorted(self.meshes, key=lambda m: (m.rank, m.mesh))

    def to_dict(self) -> dict[str, Any]:
        return {"smiObjects": len(self.objects), "byKind": self.kinds,
                "ranking": [m.mesh for m in self.ranked()],
                "meshes": [m.to_dict() for m in self.meshes]}


def build(inputs: Inputs, meshes: Sequence[str], options: Callable[[str], Options],
          shown: Progress | None = None) -> Report:
    """Translate *inputs* for every mesh (``options(mesh)`` gives its knobs) and count.

    *shown* hears of each mesh translated (the CLI's progress line).
    """
    objs = smi_objects(inputs)
    refs = [_ref(o) for o in objs]
    kinds: dict[str, int] = {}
    for o in objs:
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    report = Report(refs, kinds)
    shown = shown or Progress(None)
    for mesh in meshes:
        shown.start(f"translating for {mesh}")
        result = translate(inputs, mesh, options(mesh))
        for kind, count in kinds.items():
            shown.add(kind, count)
        shown.finish()
        inexact = {_finding_ref(f) for f in result.findings if f.reason not in EXACT_REASONS}
        report.meshes.append(MeshReport(mesh, len(refs), [r for r in refs if r not in inexact],
                                        len(result.objects), list(result.findings)))
    _rank(report.meshes)
    return report


def _rank(meshes: list[MeshReport]) -> None:
    ordered = sorted(meshes, key=lambda m: m.rank_key())
    for i, m in enumerate(ordered):
        same = i > 0 and ordered[i - 1].rank_key() == m.rank_key()
        m.rank = ordered[i - 1].rank if same else i + 1


# ---- rendering ---------------------------------------------------------------------------


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _cell(text: str) -> str:
    """Markdown table cells cannot hold a pipe or a line break."""
    return text.replace("|", "\\|").replace("\n", " ")


def _objects(refs: Iterable[str]) -> str:
    return ", ".join(f"`{r}`" for r in refs)


def _rules(found: Sequence[Finding]) -> str:
    return "<br>".join(_cell(f"`{_finding_ref(f)}` {f.field}: {f.message}") for f in found)


def render_markdown(report: Report) -> str:
    """The report as Markdown: a summary table ranking the meshes, then one table per mesh."""
    kinds = ", ".join(f"{n} {k}" for k, n in report.kinds.items())
    lines = ["# smi2mesh report", "",
             f"{len(report.objects)} SMI objects ({kinds or 'none'}).", "",
             "## Summary", "",
             "| rank | mesh | carried exactly | findings | access failed closed | access widened "
             "| access not enforced | prerequisites | objects generated |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in report.ranked():
        lines.append(f"| {m.rank} | {m.mesh} | {len(m.exact)} of {m.total} | {len(m.findings)} "
                     f"| {len(m.failed_closed)} | {len(m.widened)} | {len(m.not_enforced)} "
                     f"| {len(m.prerequisites)} | {m.generated} |")
    lines += ["", "Carried exactly: no finding names the object except `Rewritten` or "
              "`Prerequisite`. Not enforced: a TrafficTarget the mesh cannot express at all, so "
              "its default applies. Ranked by objects carried exactly, then fewer widened grants, "
              "fewer access rules failed closed or not enforced, fewer findings."]
    for m in report.meshes:
        lines += ["", f"## {m.mesh} (rank {m.rank})", "", "| what | count | objects |", "|---|---|---|",
                  f"| carried exactly | {len(m.exact)} of {m.total} | |",
                  f"| not carried exactly | {len(m.not_exact)} | {_objects(m.not_exact)} |",
                  f"| objects generated | {m.generated} | |"]
        for reason, found in m.by_reason().items():
            lines.append(f"| findings: {reason} | {len(found)} "
                         f"| {_objects(sorted({_finding_ref(f) for f in found}))} |")
        lines += [f"| access failed closed | {len(m.failed_closed)} | {_rules(m.failed_closed)} |",
                  f"| access widened | {len(m.widened)} | {_rules(m.widened)} |",
                  f"| access not enforced | {len(m.not_enforced)} | {_rules(m.not_enforced)} |"]
        for p in m.prerequisites:
            lines.append(f"| prerequisite: {_cell(p.message)} | {len(p.objects)} "
                         f"| {_objects(p.objects)} |")
    return "\n".join(lines) + "\n"


RENDERERS: Mapping[str, Callable[[Report], str]] = {"markdown": render_markdown, "json": render_json}
