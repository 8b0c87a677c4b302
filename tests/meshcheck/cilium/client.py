"""Calls ``cilium-check`` (the Cilium agent's own parsers and policy repository).

One process per batch: :func:`admit` sends every object at once, :func:`flows`
every world (objects plus the flows to answer) at once, because each start of
the 140 MB binary costs more than answering thousands of flows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from tests.access import Request
from tests.meshcheck import meshcheck

TOOL = "cilium-check"


@dataclass(frozen=True)
class Admission:
    """The agent's verdict on one object."""

    kind: str
    namespace: str
    name: str
    judged: bool  # false: no Cilium parser reads this kind (Gateway API routes)
    ok: bool
    errors: tuple[str, ...]
    dropped: tuple[str, ...]  # fields the agent's types do not know (lost silently)
    rules: int


@dataclass(frozen=True)
class Direction:
    """The policy-map entry of one side of a flow."""

    verdict: str  # "allow", "deny" or "redirect"
    enforced: bool  # some policy selects the endpoint: default deny
    l7: str  # for a redirect, the proxy's HTTP verdict ("allow"/"deny"); else ""


@dataclass(frozen=True)
class Answer:
    """Cilium's answer for one flow."""

    ingress: Direction
    egress: Direction
    allowed: bool
    explicit: bool  # allowed by an enforced ingress policy, not by the allow-all default


def admit(objects: Sequence[Mapping[str, Any]]) -> list[Admission]:
    """Run the agent's parsers on *objects*; one verdict per object, in order."""
    stream = yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)
    raw = json.loads(meshcheck.run(TOOL, ["admit"], stream))
    if len(raw) != len(objects):
        raise meshcheck.MeshcheckError(f"{TOOL} admit answered {len(raw)} of {len(objects)} objects")
    return [
        Admission(r["kind"], r.get("namespace", ""), r["name"], r["judged"], r["ok"],
                  tuple(r["errors"]), tuple(r["dropped"]), r["rules"])
        for r in raw
    ]


def _pod(namespace: str, service_account: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"namespace": namespace, "serviceAccount": service_account, "labels": dict(labels)}


def flow(req: Request, source_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The checker's form of an access-oracle request."""
    out: dict[str, Any] = {
        "source": _pod(req.source.namespace, req.source.name, source_labels or {}),
        "destination": _pod(req.dest_namespace, req.dest_service_account, req.dest_pod_labels),
        "protocol": req.protocol,
        "port": req.port,
    }
    if req.http is not None:
        out["http"] = {"method": req.http.method, "path": req.http.path,
                       "headers": dict(req.http.headers)}
    return out


def flows(worlds: Iterable[tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]]
          ) -> list[list[Answer]]:
    """Answer every world's flows with Cilium's policy repository loaded with its objects."""
    batch = [{"objects": list(objs), "flows": list(fl)} for objs, fl in worlds]
    raw = json.loads(meshcheck.run(TOOL, ["flows"], json.dumps(batch)))
    if len(raw) != len(batch):
        raise meshcheck.MeshcheckError(f"{TOOL} flows answered {len(raw)} of {len(batch)} worlds")
    out: list[list[Answer]] = []
    for world, answers in zip(batch, raw, strict=True):
        if len(answers) != len(world["flows"]):
            raise meshcheck.MeshcheckError(f"{TOOL} flows answered {len(answers)} of "
                                           f"{len(world['flows'])} flows")
        out.append([Answer(Direction(**a["ingress"]), Direction(**a["egress"]), a["allowed"],
                           a["explicit"]) for a in answers])
    return out
