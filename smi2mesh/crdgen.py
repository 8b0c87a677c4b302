"""Generate the project's SMI CustomResourceDefinitions from the wire models.

The CRDs in ``crds/`` are written by this module (``python -m
smi2mesh.crdgen crds/``) and a test fails when they drift, so the API server
accepts exactly what the parser accepts. Choices:

* every version is served, with its own schema, and ``conversion: None``;
* every version accepts both layouts: its fields under ``spec`` and at the
  top level (v1alpha1 objects, and mislabelled ones in the wild);
* unknown fields are preserved, so the operator can report them as findings
  instead of the API server pruning them silently;
* the status subresource is enabled, with a typed status.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from smi2mesh import smi, status, yamlio
from smi2mesh.model import SmiKind

STORAGE = {"split.smi-spec.io": "v1alpha4", "access.smi-spec.io": "v1alpha3",
           "specs.smi-spec.io": "v1alpha4"}
NAMES: Mapping[SmiKind, tuple[str, str, list[str]]] = {
    SmiKind.TRAFFIC_SPLIT: ("trafficsplits", "trafficsplit", ["ts"]),
    SmiKind.TRAFFIC_TARGET: ("traffictargets", "traffictarget", ["tt"]),
    SmiKind.HTTP_ROUTE_GROUP: ("httproutegroups", "httproutegroup", ["htr"]),
    SmiKind.TCP_ROUTE: ("tcproutes", "tcproute", ["tr"]),
    SmiKind.UDP_ROUTE: ("udproutes", "udproute", ["ur"]),
}
_DROP = frozenset(("title", "default", "additionalProperties", "$defs"))


def structural(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn pydantic's JSON schema into a Kubernetes structural schema."""
    if "$ref" in schema:
        return structural(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        # Optional[X] is the only union the wire models use outside WithJsonSchema.
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {schema['anyOf']} structurally")
        merged = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural({**options[0], **{k: v for k, v in merged.items() if k == "description"}},
                          defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "minLength" and schema.get("type") == "array":
            out["minItems"] = value
        else:
            out[key] = value
    if schema.get("additionalProperties") is True and schema.get("type") == "object":
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _model_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return structural(raw, raw.get("$defs", {}))


def _spec_schema(version: smi.Version) -> dict[str, Any]:
    spec = _model_schema(version.spec)
    spec.setdefault("properties", {})
    spec["type"] = "object"
    spec["x-kubernetes-preserve-unknown-fields"] = True
    return spec


def version_schema(version: smi.Version) -> dict[str, Any]:
    """openAPIV3Schema of one served version.

    With ``conversion: None`` the API server prunes an object by the schema of
    the version it is *read* in, whatever version wrote it. So the top level
    of every version accepts the top-level fields of every version of the
    kind (v1alpha1's ``specs`` must survive a read as v1alpha3); ``spec``
    keeps unknown fields for the same reason.
    """
    spec = _spec_schema(version)
    top: dict[str, Any] = {}
    for other in smi.VERSIONS.values():
        if other.kind is version.kind:
            top.update(_spec_schema(other)["properties"])
    top.update(spec["properties"])
    return {
        "type": "object",
        "description": f"{version.kind.value} {version.version}. Fields may sit under spec or, "
                       "as in the v1alpha1 layout, at the top level.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            **top,
            "status": _model_schema(status.SmiStatus),
        },
    }


def crds() -> list[dict[str, Any]]:
    """Every SMI CRD, one per kind, all versions served."""
    out: list[dict[str, Any]] = []
    for kind, (plural, singular, short) in NAMES.items():
        versions = [v for v in smi.VERSIONS.values() if v.kind is kind]
        group = versions[0].group
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": f"{plural}.{group}",
                "labels": {"app.kubernetes.io/part-of": "smi2mesh"},
            },
            "spec": {
                "group": group,
                "names": {"kind": kind.value, "listKind": f"{kind.value}List", "plural": plural,
                          "singular": singular, "shortNames": short,
                          "categories": ["smi"]},
                "scope": "Namespaced",
                "conversion": {"strategy": "None"},
                "versions": [
                    {
                        "name": v.version,
                        "served": True,
                        "storage": v.version == STORAGE[group],
                        "schema": {"openAPIV3Schema": version_schema(v)},
                        "subresources": {"status": {}},
                    }
                    for v in versions
                ],
            },
        })
    return out


def render(crd: Mapping[str, Any]) -> str:
    """One CRD as a YAML file body."""
    header = "# Generated by `python -m smi2mesh.crdgen crds/` from smi2mesh/smi.py. Do not edit.\n"
    return header + yaml.dump(dict(crd), Dumper=yamlio.Dumper, sort_keys=False, width=100)


def write(directory: Path) -> list[Path]:
    """Write every CRD into *directory*; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for crd in crds():
        path = directory / f"{crd['metadata']['name']}.yaml"
        path.write_text(render(crd))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(p)
