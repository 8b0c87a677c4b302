"""Golden outputs must be accepted by a real apiserver with the real mesh CRDs.

Every object in ``tests/golden/<mesh>/<case>/output.yaml`` is server-side
applied with ``dryRun=All`` and ``fieldValidation=Strict`` against the
upstream mesh CRDs plus the project's SMI CRDs.  Unknown or misspelt fields,
wrong types and the CRDs' OpenAPI and CEL rules are thus checked by the same
code a cluster runs.  The SMI objects in each ``input.yaml`` are checked the
same way against the project's own ``crds/``.  ``$SMI2MESH_GOLDEN_DIR``
overrides the golden folder.

A case whose profile writes for a Gateway API release older than the newest
pinned one (``options.yaml``; Linkerd's default is 1.5.1) is applied to a
control plane of its own carrying that release's CRDs
(:func:`tests.golden.gateway_crd_folder`), never to the newest release's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from smi2mesh.translators import profiles
from tests import golden
from tests.envtest import envtest as lib
from tests.envtest.envtest import REPO_ROOT
from tests.envtest.fixtures import ApplyError, apply_dry_run, describe, mesh_crds_dir

pytestmark = pytest.mark.envtest

GOLDEN_DIR = Path(os.environ.get("SMI2MESH_GOLDEN_DIR") or REPO_ROOT / "tests" / "golden")
CASE_FILES = ("input.yaml", "output.yaml", "findings.yaml")


def golden_cases(root: Path) -> list[Path]:
    """``<root>/<mesh>/<case>/`` folders holding at least one golden file."""
    if not root.is_dir():
        return []
    return sorted(
        case
        for case in root.glob("*/*")
        if case.is_dir() and any((case / name).is_file() for name in CASE_FILES)
    )


CASES = golden_cases(GOLDEN_DIR)


def _case_id(case: Path) -> str:
    return case.relative_to(GOLDEN_DIR).as_posix()


def load_objects(path: Path) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream; anything else is a broken golden file."""
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing", pytrace=False)
    with path.open(encoding="utf-8") as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    for doc in docs:
        if not (isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind")):
            pytest.fail(f"{path}: document is not a Kubernetes object: {doc!r:.200}", pytrace=False)
    return docs


def is_smi(obj: dict[str, Any]) -> bool:
    """True for objects of an SMI API group (``*.smi-spec.io``)."""
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return group.endswith("smi-spec.io")


def check_accepted(api_client: kubernetes.client.ApiClient, objects: list[dict[str, Any]],
                   expected: Callable[[str], bool] = lambda _: False) -> None:
    """Dry-run apply every object; report all rejections and (un*expected*) warnings at once."""
    problems: list[str] = []
    for obj in objects:
        try:
            warnings = apply_dry_run(api_client, obj)
        except ApplyError as error:
            problems.append(f"{describe(obj)}: rejected (HTTP {error.status}): {error.body}")
            continue
        problems.extend(f"{describe(obj)}: warning: {warning}" for warning in warnings
                        if not expected(warning))
    assert not problems, "the apiserver did not accept the objects cleanly:\n" + "\n".join(problems)


def test_golden_cases_exist() -> None:
    """Guard against the parametrised tests passing vacuously."""
    assert CASES, f"no golden cases found under {GOLDEN_DIR}/<mesh>/<case>/"


def gateway_folder(case: Path) -> str | None:
    """The pinned Gateway API release a case's routes are written for; None: the newest."""
    newest = max((d.name for d in mesh_crds_dir().glob("gateway-api-v*") if (d / "standard").is_dir()),
                 key=lambda n: tuple(int(p) for p in n.removeprefix("gateway-api-v").split(".")))
    profile = golden.Case(case.parent.name, case).options().profile
    if profile is None or profile.gateway is None:
        return None
    folder = golden.gateway_crd_folder(profile.gateway)
    return None if folder == newest else folder


def older_release_deprecations(case: Path) -> Callable[[str], bool]:
    """Deprecation warnings the pinned (newest) mesh CRDs give a version an older release writes.

    Linkerd 2.20's CRDs deprecate Server v1beta1, the newest Server Linkerd 2.13
    serves: that warning is expected for a 2.13 case, and no other is.
    """
    release = golden.Case(case.parent.name, case).options().profile
    if release is None or release.release == profiles.releases(release.target)[0]:
        return lambda _: False
    own = {f"{api} {kind} is deprecated" for (_, kind), api in release.release.apis.items()}
    return lambda warning: any(warning.startswith(w) for w in own)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_output_accepted_by_apiserver(
    case: Path, kube_api: kubernetes.client.ApiClient, mesh_crds: list[str],
    gateway_api_servers: Callable[[str], lib.Environment],
) -> None:
    """Generated objects pass strict validation against the upstream and project CRDs."""
    folder = gateway_folder(case)
    if folder is None:
        check_accepted(kube_api, load_objects(case / "output.yaml"), older_release_deprecations(case))
        return
    env = gateway_api_servers(folder)
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call,unused-ignore]
        config_file=str(env.kubeconfig))
    try:
        check_accepted(client, load_objects(case / "output.yaml"))
    finally:
        client.close()  # type: ignore[no-untyped-call,unused-ignore]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_smi_input_accepted_by_apiserver(
    case: Path, kube_api: kubernetes.client.ApiClient, project_crds: list[str]
) -> None:
    """The SMI objects of each input pass strict validation against ``crds/``."""
    smi = [obj for obj in load_objects(case / "input.yaml") if is_smi(obj)]
    if not smi:
        pytest.skip(f"{_case_id(case)}/input.yaml holds no SMI objects")
    check_accepted(kube_api, smi)
