"""Python side of the Istio checkers: run istiod's webhook and config generator in batches.

``validate`` feeds objects to ``istio-validate`` (istiod's validating webhook
handler) and returns one :class:`Verdict` per object, in order.
``generate`` feeds scenarios to ``istio-configgen`` (istiod's xDS config
generator as a Go test binary) and returns the Envoy configuration it built,
per scenario and proxy, as protojson dictionaries for :mod:`.envoy` to walk.
Both take everything at once: starting a binary costs far more than one
object.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class CheckerError(RuntimeError):
    """A checker exited with an error or printed something unreadable."""


@dataclass(frozen=True)
class Verdict:
    """istiod's admission answer for one object."""

    kind: str
    namespace: str
    name: str
    allowed: bool
    errors: list[str]
    warnings: list[str]


def validate(binary: Path, objects: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """istiod webhook verdicts for ``objects``, in order (one process for all)."""
    stream = yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)
    result = subprocess.run([str(binary)], input=stream, capture_output=True, text=True,
                            timeout=600, check=False)
    if result.returncode != 0:
        raise CheckerError(f"{binary.name} exited {result.returncode}: {result.stderr[-5000:]}")
    verdicts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    if len(verdicts) != len(objects):
        raise CheckerError(f"{binary.name} answered {len(verdicts)} of {len(objects)} objects")
    return [Verdict(v["kind"], v["namespace"], v["name"], v["allowed"], v["errors"], v["warnings"])
            for v in verdicts]


# ---- config generation ------------------------------------------------------------------


@dataclass
class Port:
    """A Service port as Kubernetes spells it; istiod infers the protocol from it."""

    port: int
    name: str = ""
    protocol: str = "TCP"
    app_protocol: str = ""
    target_port: int = 0

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "protocol": self.protocol,
                "appProtocol": self.app_protocol, "targetPort": self.target_port}


@dataclass
class Endpoint:
    """A pod behind a service."""

    ip: str
    labels: Mapping[str, str]
    service_account: str

    def wire(self) -> dict[str, Any]:
        return {"ip": self.ip, "labels": dict(self.labels), "serviceAccount": self.service_account}


@dataclass
class Service:
    """A Kubernetes Service; the generator turns it into a MESH_INTERNAL ServiceEntry."""

    name: str
    namespace: str
    vip: str
    ports: list[Port]
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "vip": self.vip,
                "ports": [p.wire() for p in self.ports],
                "endpoints": [e.wire() for e in self.endpoints]}


@dataclass
class Proxy:
    """A sidecar to generate configuration for; ``client`` also gets outbound listeners and RDS."""

    id: str
    namespace: str
    ip: str
    labels: Mapping[str, str]
    service_account: str
    client: bool = False

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "namespace": self.namespace, "ip": self.ip, "labels": dict(self.labels),
                "serviceAccount": self.service_account, "client": self.client}


@dataclass
class Scenario:
    """One istiod world: Istio objects, services and the sidecars asked about."""

    id: str
    objects: list[Mapping[str, Any]]
    services: list[Service]
    proxies: list[Proxy]

    def wire(self) -> dict[str, Any]:
        return {"id": self.id,
                "configs": yaml.safe_dump_all([dict(o) for o in self.objects], sort_keys=False),
                "services": [s.wire() for s in self.services],
                "proxies": [p.wire() for p in self.proxies]}


@dataclass
class ProxyConfig:
    """What istiod generated for one proxy (protojson)."""

    inbound: dict[str, Any] | None
    outbound: list[dict[str, Any]]
    routes: list[dict[str, Any]]
    targets: list[str]


@dataclass
class Generated:
    """istiod's output for one scenario: per proxy, and the port protocols it inferred."""

    proxies: dict[str, ProxyConfig]
    # "host:port" -> istiod's protocol (HTTP, TCP, UDP, "" for sniffed, ...).
    protocols: dict[str, str]


def generate(binary: Path, scenarios: Sequence[Scenario]) -> dict[str, Generated]:
    """istiod's Envoy configuration per scenario id (see :class:`Generated`)."""
    with tempfile.TemporaryDirectory(prefix="meshcheck-configgen-") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps({"scenarios": [s.wire() for s in scenarios]}), encoding="utf-8")
        result = subprocess.run(
            [str(binary), "-test.run", "^TestConfigGen$", "-test.count", "1"],
            env={"MESHCHECK_CONFIGGEN_IN": str(src), "MESHCHECK_CONFIGGEN_OUT": str(dst),
                 "PATH": "/usr/bin:/bin", "HOME": tmp},
            capture_output=True, text=True, timeout=900, check=False, cwd=tmp,
        )
        if result.returncode != 0 or not dst.is_file():
            raise CheckerError(f"{binary.name} exited {result.returncode}:\n"
                               f"{(result.stdout + result.stderr)[-8000:]}")
        data = json.loads(dst.read_text(encoding="utf-8"))
    out: dict[str, Generated] = {}
    for sc in data["scenarios"]:
        proxies = {p["id"]: ProxyConfig(p.get("inbound"), p["outbound"], p["routes"], p["targets"])
                   for p in sc["proxies"]}
        out[sc["id"]] = Generated(proxies, sc.get("protocols") or {})
    if set(out) != {s.id for s in scenarios}:
        raise CheckerError(f"{binary.name} answered scenarios {sorted(out)}")
    return out
