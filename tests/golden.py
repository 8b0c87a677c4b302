"""Discovery and I/O of golden cases: ``tests/golden/<mesh>/<case>/``.

Each case folder holds ``input.yaml``, ``output.yaml`` and ``findings.yaml``.
Cases named like a file in ``tests/cases/`` share that input with every
mesh; the copy in the folder must stay identical (checked by a test, synced
by ``--update-golden``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Inputs
from smi2mesh.translators import profiles, smi_native
from smi2mesh.translators.base import ConsulNamespaces, Options
from tests.crd_schema import LEGACY_SPEC_KINDS, CrdIndex, default_crds_dir, legacy_spec_errors

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
SHARED_CASES = TESTS / "cases"


@dataclass(frozen=True)
class Case:
    """One golden case of one mesh."""

    mesh: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.mesh}/{self.path.name}"

    @property
    def shared_input(self) -> Path | None:
        shared = SHARED_CASES / f"{self.path.name}.yaml"
        return shared if shared.is_file() else None

    def options(self) -> Options:
        """Translation options from the case's optional ``options.yaml``.

        Keys: ``trust_domain``, ``cluster_domain``, ``smi_profile`` or ``smi_versions``,
        ``mesh_version``, ``gateway_api_version`` and ``gateway_api_channel`` (the
        profile, as ``--mesh-version`` and ``--gateway-api-version`` choose it),
        ``consul_namespaces`` (``off``/``mirror``) and ``widen_l7_to_l4`` (a boolean).
        """
        path = self.path / "options.yaml"
        raw: dict[str, Any] = yaml.safe_load(path.read_text()) if path.is_file() else {}
        versions: dict[str, str] = {}
        if "smi_profile" in raw:
            versions = dict(smi_native.PROFILES[raw.pop("smi_profile")])
        if "smi_versions" in raw:
            versions = smi_native.parse_versions(raw.pop("smi_versions"))
        if "consul_namespaces" in raw:
            raw["consul_namespaces"] = ConsulNamespaces(raw["consul_namespaces"])
        channel = raw.pop("gateway_api_channel", None)
        profile = profiles.resolve(self.mesh, raw.pop("mesh_version", None),
                                   raw.pop("gateway_api_version", None),
                                   profiles.Channel(channel) if channel else None)
        return Options(smi_versions=versions, profile=profile, **raw)

    def inputs(self) -> Inputs:
        return parse_documents(yamlio.read_sources([str(self.path / "input.yaml")]))

    def expected_objects(self) -> list[Any]:
        return [d for d in yaml.safe_load_all((self.path / "output.yaml").read_text()) if d]

    def expected_findings(self) -> list[Any]:
        return yaml.safe_load((self.path / "findings.yaml").read_text()) or []


SMI_SOURCES = ("smi/smi-sdk-go-main", "smi/linkerd-smi-v0.2.7")
PROJECT_CRDS = TESTS.parent / "crds"


def gateway_crd_folder(gateway: profiles.GatewayApi) -> str:
    """The pinned Gateway API CRDs to check a release's routes against.

    That release's own folder when it is pinned; else the oldest pinned newer
    release (every field the routes use is in every release from 1.1.0 on:
    see smi2mesh.translators.profiles).
    """
    pinned = sorted((tuple(int(p) for p in d.name.removeprefix("gateway-api-v").split(".")), d.name)
                    for d in default_crds_dir().glob("gateway-api-v*") if (d / "standard").is_dir())
    for version, name in pinned:
        if version >= gateway.version:
            return name
    raise LookupError(f"no pinned Gateway API CRDs for {gateway}")


def validate_emitted(obj: dict[str, Any], profile: profiles.Profile | None = None) -> list[str]:
    """Strict errors of one emitted object against its upstream CRD.

    With a *profile*, Gateway API routes are checked against the CRDs of its
    Gateway API release (standard channel first, experimental for kinds only
    that channel has), never silently against another release's; without one,
    against the best candidate of any pinned release.

    Re-emitted SMI objects must be accepted by an upstream SMI CRD that
    defines their version with its own schema. No upstream CRD does for
    TCPRoute v1alpha1-v1alpha3 (smi-sdk-go v0.5.0 applies its v1alpha4 schema
    to every version, requiring fields those versions do not have), so those
    are checked against the project's own CRDs.
    """
    group = obj["apiVersion"].split("/")[0]
    if group == profiles.GATEWAY_GROUP and profile is not None:
        gateway = profile.gateway
        assert gateway is not None, f"Gateway API routes from {profile.describe()}"
        folder = gateway_crd_folder(gateway)
        index = CrdIndex.load(prefer=[f"{folder}/standard", f"{folder}/experimental"])
        result = index.check(obj, source=folder)
        return result.errors
    index = CrdIndex.load(prefer=["gateway-api-v1.6.1/standard"])
    if group == "kuma.io" and obj["kind"] in LEGACY_SPEC_KINDS:
        # The CRD leaves spec free; Kuma's own schema of it is checked too.
        return index.validate(obj) + legacy_spec_errors(obj)
    if not group.endswith("smi-spec.io"):
        return index.validate(obj)
    sources = [s for s in SMI_SOURCES if index.candidates(obj["apiVersion"], obj["kind"], source=s)]
    if not sources:
        return [f"[crds/] {e}" for e in CrdIndex.load(PROJECT_CRDS).validate(obj)]
    errors: list[str] = []
    for source in sources:
        found = index.validate(obj, source=source)
        if not found:
            return []
        errors += [f"[{source}] {e}" for e in found]
    return errors


def cases(mesh: str | None = None) -> list[Case]:
    """Every golden case, optionally of one mesh, in a stable order."""
    out: list[Case] = []
    for mesh_dir in sorted(GOLDEN.iterdir()) if GOLDEN.is_dir() else []:
        if not mesh_dir.is_dir() or (mesh is not None and mesh_dir.name != mesh):
            continue
        out.extend(Case(mesh_dir.name, d) for d in sorted(mesh_dir.iterdir()) if d.is_dir())
    return out


def dump_findings(findings: list[dict[str, str]]) -> str:
    return yaml.safe_dump(findings, sort_keys=False, width=1 << 16) if findings else "[]\n"
