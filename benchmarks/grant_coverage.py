"""Grant coverage: how much of what SMI allows each mesh's output still allows.

Run ``python benchmarks/grant_coverage.py [PATH ...]`` (default: ``examples/``).
For every TrafficTarget it builds probes on the ports the destination's pods
really serve (container ports, Service target ports, route ports, the
destination port): each source, each pod, plain TCP and one request per
HTTP match the rules name. The SMI oracle (``tests/access``) says which
probes SMI allows; each mesh's evaluator says which its output allows.

It prints, per mesh, the share of SMI-allowed probes the mesh allows
(coverage) and the probes the mesh allows that SMI denies (must be 0). A
probe SMI allows and the mesh denies is a grant the mesh cannot express
exactly; each has a finding in ``translate``'s output. The evaluators are
our second opinion (the meshes' own code judges in tests/meshcheck).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Inputs, Protocol, SmiKind
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options
from tests.access import HttpRequest, Request, cilium, consul, istio, kuma, linkerd, smi_allows
from tests.meshcheck.istio.test_differential import requests_for

Evaluator = Callable[[list[dict[str, Any]], Request, Inputs], bool]


def _inbound_names(inputs: Inputs, req: Request) -> dict[int, str]:
    names: dict[int, str] = {}
    for w in inputs.workloads_of(req.dest_namespace, req.dest_service_account):
        for p in w.container_ports:
            names.setdefault(p.port, p.name or str(p.port))
    return names


def _consul_ports(inputs: Inputs, req: Request) -> set[int] | None:
    """The one port consul-k8s registers on Consul CE: the annotation, else the first container port."""
    ports: set[int] = set()
    for w in inputs.workloads_of(req.dest_namespace, req.dest_service_account):
        named = w.pod_annotations.get("consul.hashicorp.com/connect-service-port", "").split(",")[0].strip()
        by_name = {p.name: p.port for p in w.container_ports if p.name}
        if named:
            ports.add(int(named) if named.isdigit() else by_name.get(named, 0))
        elif w.container_ports:
            ports.add(w.container_ports[0].port)
    return ports or None


EVALUATORS: dict[str, Evaluator] = {
    "istio": lambda objs, req, _: istio.allows(objs, req),
    "linkerd": lambda objs, req, _: linkerd.allows(objs, req),
    "consul": lambda objs, req, inputs: consul.allows(objs, req, service_ports=_consul_ports(inputs, req)),
    "kuma": lambda objs, req, inputs: kuma.allows(objs, req, inbound_names=_inbound_names(inputs, req)),
    "cilium": lambda objs, req, _: cilium.allows(objs, req),
}


def probes(inputs: Inputs) -> list[Request]:
    """Requests from every source of every TrafficTarget, on ports its pods serve."""
    out: dict[str, Request] = {}
    for tt in inputs.targets:
        ns, sa = tt.destination.namespace, tt.destination.name
        workloads = inputs.workloads_of(ns, sa)
        pods = {tuple(sorted(w.pod_labels.items())) for w in workloads} or {()}
        tcp: set[int] = {p.port for w in workloads for p in w.container_ports if p.protocol == "TCP"}
        udp: set[int] = {p.port for w in workloads for p in w.container_ports if p.protocol == "UDP"}
        for svc in inputs.services:
            if svc.meta.namespace == ns and svc.selector and any(
                    svc.selector.items() <= dict(p).items() for p in pods):
                tcp.update(p.target_port if isinstance(p.target_port, int) else p.port
                           for p in svc.ports if p.protocol == "TCP" and not isinstance(p.target_port, str))
        if tt.port is not None:
            tcp.add(tt.port)
        http: list[HttpRequest | None] = [None]
        for rule in tt.rules:
            if rule.kind in (SmiKind.TCP_ROUTE, SmiKind.UDP_ROUTE):
                route = inputs.port_route(rule.kind, ns, rule.name)
                if route is not None:
                    (udp if route.protocol is Protocol.UDP else tcp).update(route.ports)
            elif (group := inputs.http_route_group(ns, rule.name)) is not None:
                http.extend(requests_for(m)[0] for m in group.matches)
        for src, labels in itertools.product(tt.sources, sorted(pods)):
            for port, req in itertools.product(sorted(tcp), http):
                probe = Request(src, ns, sa, dict(labels), "TCP", port, req)
                out.setdefault(repr(probe), probe)
            for port in sorted(udp):
                probe = Request(src, ns, sa, dict(labels), "UDP", port)
                out.setdefault(repr(probe), probe)
    return list(out.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["examples/"])
    args = parser.parse_args()
    inputs = parse_documents(yamlio.read_sources(args.paths))
    reqs = probes(inputs)
    allowed = [r for r in reqs if smi_allows(inputs, r)]
    print(f"{len(inputs.targets)} TrafficTargets, {len(reqs)} probes, {len(allowed)} allowed by SMI")
    print("| mesh | SMI-allowed probes the mesh allows | coverage | probes allowed beyond SMI |")
    print("|---|---|---|---|")
    for mesh, evaluate in EVALUATORS.items():
        objects = list(translate(inputs, mesh, Options()).objects)
        kept = sum(evaluate(objects, r, inputs) for r in allowed)
        beyond = sum(evaluate(objects, r, inputs) for r in reqs if not smi_allows(inputs, r))
        share = 100 * kept / len(allowed) if allowed else 100.0
        print(f"| {mesh} | {kept} of {len(allowed)} | {share:.0f} % | {beyond} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
