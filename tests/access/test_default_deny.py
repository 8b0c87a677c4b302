"""Fail closed must deny: every TrafficTarget destination is under the mesh's deny-by-default,
or a finding of that TrafficTarget says which mesh default applies instead.

Checked for the meshes whose evaluators model the default (Istio, Linkerd,
Cilium), on every golden case and on random worlds whose workloads declare
container ports and are selected by Services. The ports probed are the ones
the input declares for the destination pods (a Linkerd Server can only cover
ports it knows), plus, for the meshes that do not select by port, one nobody
declares.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi2mesh.findings import Finding
from smi2mesh.model import ContainerPort, Inputs, Meta, Service, ServicePort, TrafficTarget, Workload
from smi2mesh.translate import translate
from tests import golden
from tests.access import HttpRequest, Request, smi_allows
from tests.test_properties import IDENTITIES, NS, PORTS, requests, worlds

MESHES = ("istio", "linkerd", "cilium")
# How each mesh's findings name the default that applies to what it cannot select.
DEFAULT_PHRASE = {
    "istio": "Istio's default applies",
    "linkerd": "Linkerd's default inbound policy applies",
    "cilium": "Cilium's default applies",
}
# Container ports of an injected Linkerd proxy, never an application's.
PROXY_PORTS = frozenset({"linkerd-proxy", "linkerd-admin"})
UNDECLARED = 1234


def _evaluator(mesh: str) -> Any:
    return importlib.import_module(f"tests.access.{mesh}")


def _declared(inputs: Inputs, w: Workload) -> set[int]:
    """TCP ports the pods of *w* serve, read from the input independently of the translators."""
    ports = {p.port for p in w.container_ports if p.protocol == "TCP" and p.name not in PROXY_PORTS}
    names = {p.name: p.port for p in w.container_ports if p.name and p.protocol == "TCP"}
    for svc in inputs.services:
        if svc.meta.namespace != w.meta.namespace or not svc.selector:
            continue
        if any(w.pod_labels.get(k) != v for k, v in svc.selector.items()):
            continue
        for sp in svc.ports:
            target = sp.port if sp.target_port is None else sp.target_port
            if isinstance(target, int) and sp.protocol == "TCP":
                ports.add(target)
            elif isinstance(target, str) and target in names and sp.protocol == "TCP":
                ports.add(names[target])
    return ports


def _probes(mesh: str, inputs: Inputs, tt: TrafficTarget) -> Iterator[Request]:
    dest = tt.destination
    pods = [(dict(w.pod_labels), _declared(inputs, w))
            for w in inputs.workloads_of(dest.namespace, dest.name)]
    if mesh == "cilium" and not pods:
        pods = [({}, set())]  # Cilium selects by ServiceAccount: pods need not be in the input
    for labels, ports in pods:
        if mesh != "linkerd":
            ports.add(UNDECLARED)
        for port in sorted(ports):
            for src in [*tt.sources, *IDENTITIES[:1]]:
                base = (src, dest.namespace, dest.name, labels, "TCP", port)
                yield Request(*base)
                yield Request(*base, HttpRequest("GET", "/"))


def _says_default(mesh: str, findings: tuple[Finding, ...], tt: TrafficTarget) -> bool:
    return any(f.namespace == tt.meta.namespace and f.name == tt.meta.name
               and DEFAULT_PHRASE[mesh] in f.message for f in findings)


def _check(mesh: str, inputs: Inputs) -> tuple[int, int]:
    """Assert the property on one input; return (requests denied by default, mesh defaults named)."""
    result = translate(inputs, mesh)
    objects = list(result.objects)
    ev = _evaluator(mesh)
    denied = named = 0
    for tt in inputs.targets:
        dest = tt.destination
        if mesh != "cilium" and not inputs.workloads_of(dest.namespace, dest.name):
            # Istio and Linkerd select pods by labels: without pods, nothing selects them.
            named += 1
            assert _says_default(mesh, result.findings, tt), (mesh, tt.meta.name)
        for req in _probes(mesh, inputs, tt):
            if ev.default_denies(objects, req):
                denied += 1
                # Under deny-by-default only what SMI allows may pass.
                assert not ev.allows(objects, req) or smi_allows(inputs, req), (mesh, req)
            else:
                named += 1
                assert _says_default(mesh, result.findings, tt), (mesh, tt.meta.name, req)
    # No finding may say nothing is allowed while a mesh default allows.
    assert not any("nothing is allowed" in f.message for f in result.findings)
    return denied, named


@pytest.mark.parametrize("mesh", MESHES)
def test_golden_destinations_deny_by_default_or_name_the_mesh_default(mesh: str) -> None:
    denied = named = 0
    for case in golden.cases(mesh):
        d, n = _check(mesh, case.inputs())
        denied, named = denied + d, named + n
    # Both branches are reached, so neither assertion is vacuous.
    assert denied > 20
    assert named > 0


@st.composite
def worlds_with_ports(draw: st.DrawFn) -> Inputs:
    """The property worlds, with container ports (some named) and a Service per pod label set."""
    inputs = draw(worlds())
    workloads = []
    services: dict[tuple[tuple[str, str], ...], Service] = {}
    for w in inputs.workloads:
        ports = draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True))
        declared = tuple(ContainerPort(p, f"p{p}" if i == 0 else "") for i, p in enumerate(ports))
        workloads.append(dataclasses.replace(w, container_ports=declared))
        if w.selector and draw(st.booleans()):
            target: int | str | None = draw(st.sampled_from([None, 9090, "p80", "p8080", "nope"]))
            key = tuple(sorted(w.selector.items()))
            services.setdefault(key, Service(Meta(f"svc{len(services)}", NS), dict(w.selector),
                                             (ServicePort(80, "http", target_port=target),)))
    return dataclasses.replace(inputs, workloads=tuple(workloads), services=tuple(services.values()))


@pytest.mark.parametrize("mesh", MESHES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_destinations_deny_by_default_or_name_the_mesh_default(
        mesh: str, data: st.DataObject) -> None:
    inputs = data.draw(worlds_with_ports())
    _check(mesh, inputs)
    # Explicit allows stay within SMI on random requests too.
    objects = list(translate(inputs, mesh).objects)
    for _ in range(8):
        req = data.draw(requests(inputs))
        if _evaluator(mesh).allows(objects, req):
            assert smi_allows(inputs, req), (mesh, req)
