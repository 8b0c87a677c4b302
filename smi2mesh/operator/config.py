"""Operator configuration: ``smi2mesh run`` flags, each also readable from the environment.

Helm sets environment variables (``SMI2MESH_MESH``, ...); a flag on the
command line wins over its variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smi2mesh.translators import TRANSLATORS, profiles
from smi2mesh.translators.base import ConsulNamespaces, Options

# The operator never reconciles the smi target: it would write SMI objects
# derived from SMI objects, which it would then read again.
OPERATOR_MESHES = tuple(m for m in TRANSLATORS if m != "smi")
MESH_LABEL = "smi2mesh.io/mesh"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it."""


@dataclass(frozen=True)
class OperatorConfig:
    """Everything ``smi2mesh run`` needs to know."""

    mesh: str
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    trust_domain: str = "cluster.local"
    cluster_domain: str = "cluster.local"
    enabled_meshes: frozenset[str] = field(default_factory=frozenset)
    metrics_port: int = 8080
    health_port: int = 8081
    # Leader election on a Lease (smi2mesh.operator.election): every replica watches,
    # only the holder writes. Namespace None: the pod's own namespace, else "default".
    leader_election: bool = True
    leader_election_namespace: str | None = None
    leader_election_lease: str = "smi2mesh"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    log_level: str = "info"
    resync_seconds: float = 300.0
    # How often served kinds are re-read, so mesh CRDs installed later are used.
    discovery_seconds: float = 15.0
    consul_namespaces: ConsulNamespaces = ConsulNamespaces.OFF
    widen_l7_to_l4: bool = False
    # Overrides of what discovery finds (smi2mesh.translators.profiles): mesh -> release,
    # and the Gateway API release for every mesh that writes Gateway API routes.
    mesh_versions: Mapping[str, str] = field(default_factory=dict)
    gateway_api_version: str | None = None

    def options(self) -> Options:
        """The translation options every namespace is translated with."""
        return Options(trust_domain=self.trust_domain, cluster_domain=self.cluster_domain,
                       consul_namespaces=self.consul_namespaces, widen_l7_to_l4=self.widen_l7_to_l4)

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces

    @property
    def meshes(self) -> frozenset[str]:
        """Meshes whose objects the operator may write (and so watches)."""
        return self.enabled_meshes | {self.mesh}


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` subcommand's flags."""
    parser.add_argument("--mesh", metavar="TARGET",
                        help=f"default target mesh: {', '.join(OPERATOR_MESHES)} [SMI2MESH_MESH]")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", default=[], metavar="NS",
                       help="watch this namespace; repeatable [SMI2MESH_NAMESPACES, comma-separated]")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="watch every namespace (the default) [SMI2MESH_ALL_NAMESPACES]")
    parser.add_argument("--trust-domain", metavar="D", help="mesh trust domain [SMI2MESH_TRUST_DOMAIN]")
    parser.add_argument("--cluster-domain", metavar="D", help="cluster domain [SMI2MESH_CLUSTER_DOMAIN]")
    parser.add_argument("--enable-mesh", action="append", default=[], metavar="MESH",
                        help="another mesh namespaces or objects may select with the "
                             f"{MESH_LABEL} label/annotation; repeatable [SMI2MESH_ENABLED_MESHES]")
    parser.add_argument("--metrics-port", type=int, metavar="P",
                        help="Prometheus /metrics port (default 8080) [SMI2MESH_METRICS_PORT]")
    parser.add_argument("--health-port", type=int, metavar="P",
                        help="/healthz and /readyz port (default 8081) [SMI2MESH_HEALTH_PORT]")
    parser.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=None,
                        help="elect one writer among replicas on a Lease; the others keep a warm "
                             "cache (default on) [SMI2MESH_LEADER_ELECTION]")
    parser.add_argument("--leader-election-namespace", metavar="NS",
                        help="namespace of the Lease (default: the pod's own namespace in a "
                             "cluster, else default) [SMI2MESH_LEADER_ELECTION_NAMESPACE]")
    parser.add_argument("--leader-election-lease", metavar="NAME",
                        help="name of the Lease; one per installation (default smi2mesh) "
                             "[SMI2MESH_LEADER_ELECTION_LEASE]")
    parser.add_argument("--lease-duration", type=float, metavar="S",
                        help="seconds a standby waits on an unrenewed Lease before taking it "
                             "(default 15) [SMI2MESH_LEASE_DURATION]")
    parser.add_argument("--renew-deadline", type=float, metavar="S",
                        help="seconds the leader keeps writing without a successful renewal "
                             "(default 10) [SMI2MESH_RENEW_DEADLINE]")
    parser.add_argument("--retry-period", type=float, metavar="S",
                        help="seconds between election rounds (default 2) [SMI2MESH_RETRY_PERIOD]")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="log level (default info) [SMI2MESH_LOG_LEVEL]")
    parser.add_argument("--mesh-version", action="append", default=[], metavar="[MESH=]V",
                        help="write for this mesh release instead of the one discovery picks; "
                             "MESH=V for an --enable-mesh one; repeatable "
                             "[SMI2MESH_MESH_VERSION, comma-separated]")
    parser.add_argument("--gateway-api-version", metavar="V",
                        help="write Gateway API routes for this release instead of the installed "
                             "CRDs' bundle version [SMI2MESH_GATEWAY_API_VERSION]")
    parser.add_argument("--consul-namespaces", choices=[m.value for m in ConsulNamespaces],
                        help="Consul namespaces: off (Consul CE, the default) or mirror "
                             "(Enterprise, mirroring Kubernetes ones) [SMI2MESH_CONSUL_NAMESPACES]")
    parser.add_argument("--widen-l7-to-l4", action="store_true", default=None,
                        help="grant HTTP rules a mesh cannot enforce at L4 instead of failing "
                             "closed (a migration aid; broader than SMI) [SMI2MESH_WIDEN_L7_TO_L4]")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _port(value: object, name: str) -> int:
    try:
        port = int(str(value))
    except ValueError as exc:
        raise ConfigError(f"{name}: {value!r} is not a port number") from exc
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}: {port} is out of range 1-65535")
    return port


def _seconds(flag: float | None, env: Mapping[str, str], name: str, default: float) -> float:
    if flag is not None:
        return float(flag)
    raw = env.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a number of seconds") from exc


def _election(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """The leader-election fields, validated (the timings must be able to fence)."""
    flag = getattr(args, "leader_election", None)
    raw = env.get("SMI2MESH_LEADER_ELECTION", "").strip().lower()
    if raw not in ("", "true", "false"):
        raise ConfigError(f"SMI2MESH_LEADER_ELECTION: {raw!r} is not true or false")
    timing = {
        "lease_duration": _seconds(getattr(args, "lease_duration", None), env,
                                   "SMI2MESH_LEASE_DURATION", 15.0),
        "renew_deadline": _seconds(getattr(args, "renew_deadline", None), env,
                                   "SMI2MESH_RENEW_DEADLINE", 10.0),
        "retry_period": _seconds(getattr(args, "retry_period", None), env, "SMI2MESH_RETRY_PERIOD", 2.0),
    }
    lease, deadline, retry = timing["lease_duration"], timing["renew_deadline"], timing["retry_period"]
    if min(lease, deadline, retry) <= 0:
        raise ConfigError("--lease-duration, --renew-deadline and --retry-period must be positive")
    if not lease > deadline > retry:
        raise ConfigError(f"leader election needs --lease-duration ({lease:g}) > --renew-deadline "
                          f"({deadline:g}) > --retry-period ({retry:g}): the leader must stop "
                          "writing before a standby may take over")
    return {"leader_election": flag if flag is not None else raw != "false",
            "leader_election_namespace": getattr(args, "leader_election_namespace", None)
            or env.get("SMI2MESH_LEADER_ELECTION_NAMESPACE") or None,
            "leader_election_lease": getattr(args, "leader_election_lease", None)
            or env.get("SMI2MESH_LEADER_ELECTION_LEASE") or "smi2mesh",
            **timing}


def from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> OperatorConfig:
    """Merge flags and environment into a validated config; raise ConfigError naming the bad value."""
    env = os.environ if env is None else env
    mesh = args.mesh or env.get("SMI2MESH_MESH", "")
    if not mesh:
        raise ConfigError("--mesh (or SMI2MESH_MESH) is required")
    if mesh == "smi":
        raise ConfigError("--mesh smi is for the offline CLI only: the operator would write SMI "
                          "objects derived from SMI objects; use `smi2mesh translate --mesh smi`")
    if mesh not in OPERATOR_MESHES:
        raise ConfigError(f"--mesh: unknown mesh {mesh!r}; choose one of {', '.join(OPERATOR_MESHES)}")
    enabled = list(args.enable_mesh) or _split(env.get("SMI2MESH_ENABLED_MESHES", ""))
    for m in enabled:
        if m not in OPERATOR_MESHES:
            raise ConfigError(f"--enable-mesh: unknown mesh {m!r}; choose from {', '.join(OPERATOR_MESHES)}")
    namespaces: Sequence[str] = args.namespace
    all_ns = args.all_namespaces or env.get("SMI2MESH_ALL_NAMESPACES", "").lower() == "true"
    if not namespaces and not all_ns:
        namespaces = _split(env.get("SMI2MESH_NAMESPACES", ""))
    level = args.log_level or env.get("SMI2MESH_LOG_LEVEL", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"SMI2MESH_LOG_LEVEL: unknown level {level!r}")
    consul = args.consul_namespaces or env.get("SMI2MESH_CONSUL_NAMESPACES", "") or "off"
    if consul not in [m.value for m in ConsulNamespaces]:
        raise ConfigError(f"SMI2MESH_CONSUL_NAMESPACES: {consul!r} is not one of "
                          f"{', '.join(m.value for m in ConsulNamespaces)}")
    widen_env = env.get("SMI2MESH_WIDEN_L7_TO_L4", "false").lower()
    if widen_env not in ("true", "false", ""):
        raise ConfigError(f"SMI2MESH_WIDEN_L7_TO_L4: {widen_env!r} is not true or false")
    mesh_versions = _mesh_versions(list(args.mesh_version)
                                   or _split(env.get("SMI2MESH_MESH_VERSION", "")), mesh, enabled)
    gateway = args.gateway_api_version or env.get("SMI2MESH_GATEWAY_API_VERSION") or None
    _check_gateway(gateway, [mesh, *enabled], mesh_versions)
    return OperatorConfig(
        mesh=mesh,
        mesh_versions=mesh_versions,
        gateway_api_version=gateway,
        namespaces=tuple(dict.fromkeys(namespaces)),
        trust_domain=args.trust_domain or env.get("SMI2MESH_TRUST_DOMAIN", "cluster.local"),
        cluster_domain=args.cluster_domain or env.get("SMI2MESH_CLUSTER_DOMAIN", "cluster.local"),
        enabled_meshes=frozenset(enabled),
        metrics_port=_port(args.metrics_port or env.get("SMI2MESH_METRICS_PORT", 8080), "--metrics-port"),
        health_port=_port(args.health_port or env.get("SMI2MESH_HEALTH_PORT", 8081), "--health-port"),
        **_election(args, env),
        log_level=level,
        consul_namespaces=ConsulNamespaces(consul),
        widen_l7_to_l4=bool(args.widen_l7_to_l4) or widen_env == "true",
    )


def _mesh_versions(values: Sequence[str], mesh: str, enabled: Sequence[str]) -> dict[str, str]:
    """``V`` (the default mesh) or ``MESH=V`` entries, each checked against the supported releases."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, version = value.partition("=")
        target, version = (name.strip(), version.strip()) if sep else (mesh, value.strip())
        if target not in (mesh, *enabled):
            raise ConfigError(f"--mesh-version {value}: {target!r} is not the mesh or an enabled mesh")
        try:
            release = profiles.mesh_release(target, version)
        except profiles.ProfileError as exc:
            raise ConfigError(f"--mesh-version: {exc}") from exc
        if release.cli_only:
            raise ConfigError(f"--mesh-version {value}: the operator does not write for "
                              f"{target} {release.label}: {release.cli_only}")
        out[target] = version
    return out


def _check_gateway(version: str | None, meshes: Sequence[str], mesh_versions: Mapping[str, str]) -> None:
    """A Gateway API override must be one every enabled Gateway API mesh supports."""
    if version is None:
        return
    writers = [m for m in dict.fromkeys(meshes)
               if profiles.mesh_release(m, mesh_versions.get(m)).gateway_api is not None]
    if not writers:
        raise ConfigError("--gateway-api-version: no enabled mesh writes Gateway API routes")
    for m in writers:
        try:
            profiles.gateway_api(profiles.mesh_release(m, mesh_versions.get(m)), version)
        except profiles.ProfileError as exc:
            raise ConfigError(f"--gateway-api-version: {exc}") from exc
