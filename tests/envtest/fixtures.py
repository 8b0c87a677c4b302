"""Pytest fixtures that run tests against a real kube-apiserver.

Loaded as a plugin (``pytest_plugins = ["tests.envtest.fixtures"]``).  The
session starts etcd, kube-apiserver and kube-controller-manager once (see
``tests/envtest/envtest.py``), installs the upstream mesh CRDs and the
project's SMI CRDs on request, and offers :func:`apply_dry_run`, which asks
the apiserver to validate an object exactly as ``kubectl apply
--server-side --dry-run=server --validate=strict`` would.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.envtest import envtest as lib
from tests.envtest.envtest import EnvtestError, KubeHTTP

TEST_FIELD_MANAGER = "smi2mesh-tests"
DRY_RUN_FIELD_MANAGER = "smi2mesh"
APPLY_PATCH = "application/apply-patch+yaml"
CRD_ESTABLISH_TIMEOUT = 120.0


class ApplyError(Exception):
    """The apiserver rejected an apply; carries the status and error body."""

    def __init__(self, obj: Mapping[str, Any], status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{describe(obj)}: HTTP {status}: {message}")


def describe(obj: Mapping[str, Any]) -> str:
    """``apiVersion Kind namespace/name`` for messages."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "?")
    if meta.get("namespace"):
        name = f"{meta['namespace']}/{name}"
    return f"{obj.get('apiVersion')} {obj.get('kind')} {name}"


# --------------------------------------------------------------------------
# Raw HTTP on top of a kubernetes.client.ApiClient
# --------------------------------------------------------------------------


def http_for(api_client: kubernetes.client.ApiClient) -> KubeHTTP:
    """A :class:`KubeHTTP` using the server and credentials of ``api_client``."""
    config = api_client.configuration
    token = (config.api_key or {}).get("authorization") or (config.api_key or {}).get("BearerToken")
    return KubeHTTP(
        config.host,
        ca_file=config.ssl_ca_cert,
        cert_file=config.cert_file,
        key_file=config.key_file,
        token=token,
        verify=bool(config.verify_ssl),
    )


@dataclass(frozen=True)
class Resource:
    """Where a kind is served: its plural and whether it is namespaced."""

    plural: str
    namespaced: bool


_DISCOVERY: dict[tuple[str, str], dict[str, Resource]] = {}
# Kinds already found unserved, so a golden file full of them fails fast;
# cleared whenever a CRD is applied through server_side_apply.
_UNSERVED: set[tuple[str, str, str]] = set()


def _discover(http: KubeHTTP, group_version: str) -> dict[str, Resource]:
    path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    response = http.request("GET", path)
    if response.status == 404:
        return {}
    if response.status != 200:
        raise EnvtestError(f"discovery of {group_version} failed: HTTP {response.status}")
    kinds: dict[str, Resource] = {}
    for item in response.json().get("resources", []):
        if "/" not in item["name"]:  # skip subresources such as pods/status
            kinds[item["kind"]] = Resource(item["name"], bool(item["namespaced"]))
    return kinds


def resource_for(http: KubeHTTP, api_version: str, kind: str, wait: float = 3.0) -> Resource | None:
    """Look up ``kind`` in discovery, waiting briefly for freshly added CRDs.

    A CRD can report Established a moment before its group shows up in
    discovery, hence the short retry loop instead of failing at once.
    Returns None when the kind is not served.
    """
    key = (http.server, api_version)
    found = _DISCOVERY.get(key, {}).get(kind)
    if found is not None or (*key, kind) in _UNSERVED:
        return found
    deadline = time.monotonic() + wait
    while True:
        _DISCOVERY[key] = _discover(http, api_version)
        found = _DISCOVERY[key].get(kind)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            _UNSERVED.add((*key, kind))
            return None
        time.sleep(0.25)


def object_path(http: KubeHTTP, obj: Mapping[str, Any]) -> tuple[str, Resource]:
    """REST path of ``obj`` (namespace ``default`` when a namespaced object has none)."""
    api_version = str(obj["apiVersion"])
    resource = resource_for(http, api_version, str(obj["kind"]))
    if resource is None:
        # What the apiserver itself answers for an unserved kind.
        raise ApplyError(obj, 404, f"the server does not serve {obj['kind']} in {api_version}")
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    name = urllib.parse.quote(str(obj["metadata"]["name"]), safe="")
    if resource.namespaced:
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        return f"{base}/namespaces/{namespace}/{resource.plural}/{name}", resource
    return f"{base}/{resource.plural}/{name}", resource


def ensure_namespace(http: KubeHTTP, name: str) -> None:
    """Create namespace ``name`` for real unless it exists."""
    response = http.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    if response.status not in (201, 409):
        raise EnvtestError(f"creating namespace {name}: HTTP {response.status}: {response.body!r}")


def server_side_apply(
    http: KubeHTTP,
    obj: Mapping[str, Any],
    *,
    field_manager: str,
    dry_run: bool = False,
    strict: bool = True,
) -> list[str]:
    """Server-side apply ``obj`` with ``force``; returns the warnings.

    Raises :class:`ApplyError` with the apiserver's error body on rejection.
    """
    path, resource = object_path(http, obj)
    if resource.namespaced:
        ensure_namespace(http, (obj.get("metadata") or {}).get("namespace") or "default")
    query = {"fieldManager": field_manager, "force": "true"}
    if strict:
        query["fieldValidation"] = "Strict"
    if dry_run:
        query["dryRun"] = "All"
    # JSON is valid YAML, so the JSON body is a valid apply patch.
    response = http.request("PATCH", path, query=query, body=dict(obj), content_type=APPLY_PATCH)
    if not 200 <= response.status < 300:
        try:
            body = response.json()
        except ValueError:
            body = response.body.decode(errors="replace")
        raise ApplyError(obj, response.status, body)
    if _is_crd(obj) and not dry_run:
        # A new or changed CRD changes what discovery serves.
        _DISCOVERY.clear()
        _UNSERVED.clear()
    return response.warnings


def apply_dry_run(api_client: kubernetes.client.ApiClient, obj: dict[str, Any]) -> list[str]:
    """Validate ``obj`` by server-side apply with ``dryRun=All`` and strict fields.

    Uses field manager ``smi2mesh`` and ``force=true``.  Returns the
    apiserver's warnings (empty when the object is clean); raises
    :class:`ApplyError` carrying the API error body when it is rejected.
    The object's namespace is created for real when missing.
    """
    return server_side_apply(http_for(api_client), obj, field_manager=DRY_RUN_FIELD_MANAGER, dry_run=True)


# --------------------------------------------------------------------------
# CRD discovery and installation
# --------------------------------------------------------------------------


def _yaml_documents(path: Path) -> Iterator[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        yield from yaml.load_all(handle, Loader=loader)


def _is_crd(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("kind") == "CustomResourceDefinition"
        and str(doc.get("apiVersion", "")).startswith("apiextensions.k8s.io/")
    )


def _preference(root: Path, path: Path) -> tuple[tuple[int, ...], bool]:
    """Rank duplicate CRDs: newest release folder first, then experimental.

    The release is the version in the top-level folder name, e.g.
    ``gateway-api-v1.6.1``; the experimental channel is a superset of
    standard (it adds fields and kinds such as TCPRoute's alpha fields).
    """
    top = path.relative_to(root).parts[0]
    match = re.search(r"(\d+(?:\.\d+)+)", top)
    version = tuple(int(p) for p in match.group(1).split(".")) if match else ()
    return version, "experimental" in path.relative_to(root).parts


def upstream_crd_documents(root: Path) -> list[dict[str, Any]]:
    """Every upstream mesh CRD under ``root``, one per name, ``smi/`` excluded.

    Non-CRD documents and files (Kuma's JSON schemas) are ignored.  When a
    CRD name appears in several files the newest release wins, and within a
    release the experimental channel.
    """
    best: dict[str, tuple[tuple[tuple[int, ...], bool], dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.y*ml")):
        if path.relative_to(root).parts[0] == "smi":
            continue
        rank = _preference(root, path)
        for doc in _yaml_documents(path):
            if not _is_crd(doc):
                continue
            name = doc["metadata"]["name"]
            if name not in best or rank > best[name][0]:
                best[name] = (rank, doc)
    return [doc for _, doc in sorted(best.values(), key=lambda item: item[1]["metadata"]["name"])]


def crd_documents_in(folder: Path) -> list[dict[str, Any]]:
    """CRD documents of the ``*.yaml`` files directly in ``folder``."""
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in _yaml_documents(path) if _is_crd(doc)]


def install_crds(http: KubeHTTP, crds: Iterable[Mapping[str, Any]]) -> list[str]:
    """Server-side apply ``crds`` and wait until every one is Established."""
    names: list[str] = []
    for crd in crds:
        server_side_apply(http, crd, field_manager=TEST_FIELD_MANAGER, strict=False)
        names.append(str(crd["metadata"]["name"]))
    deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
    pending = set(names)
    while pending:
        for name in sorted(pending):
            response = http.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            # status and its conditions can both be null right after creation.
            conditions = ((response.json() or {}).get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise EnvtestError(f"CRDs not Established after {CRD_ESTABLISH_TIMEOUT:.0f}s: {sorted(pending)}")
        if pending:
            time.sleep(0.25)
    return names


def gateway_api_crd_documents(root: Path, folder: str) -> list[dict[str, Any]]:
    """The upstream mesh CRDs, with the Gateway API ones of release *folder* only.

    Its experimental channel: a superset of standard, and the only home of
    TCPRoute before 1.6.
    """
    others = [d for d in upstream_crd_documents(root) if d["spec"]["group"] != GATEWAY_GROUP]
    return [*others, *crd_documents_in(root / folder / "experimental")]


GATEWAY_GROUP = "gateway.networking.k8s.io"


def mesh_crds_dir() -> Path:
    """``$MESH_CRDS_DIR``, default ``<repo>/../shared/upstream-crds``."""
    configured = os.environ.get("MESH_CRDS_DIR")
    if configured:
        return Path(configured).resolve()
    return (lib.REPO_ROOT.parent / "shared" / "upstream-crds").resolve()


def project_crds_dir() -> Path:
    """``<repo>/crds``; ``$SMI2MESH_CRDS_DIR`` overrides it for local checks."""
    configured = os.environ.get("SMI2MESH_CRDS_DIR")
    return Path(configured).resolve() if configured else lib.REPO_ROOT / "crds"


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def envtest_binaries() -> lib.Binaries:
    """The control-plane binaries, built on first use (fails loudly if the build fails)."""
    try:
        return lib.ensure_binaries()
    except EnvtestError as error:
        failure = str(error)
    # Failing outside the except block keeps pytest from printing the
    # message twice as a chained exception.
    pytest.fail(f"envtest: cannot build the control plane binaries:\n{failure}", pytrace=False)


@pytest.fixture(scope="session")
def envtest(
    envtest_binaries: lib.Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[lib.Environment]:
    """A running etcd + kube-apiserver + kube-controller-manager for the session.

    The object has ``.kubeconfig`` (admin, group system:masters) and ``.dir``
    (logs, pids, certificates).
    """
    directory = tmp_path_factory.mktemp("envtest")
    try:
        env = lib.start(directory, envtest_binaries)
    except EnvtestError as error:
        failure = str(error)
    else:
        try:
            yield env
        finally:
            lib.stop(directory)
        return
    pytest.fail(f"envtest: cannot start the control plane in {directory}:\n{failure}", pytrace=False)


@pytest.fixture(scope="session")
def kube_api(envtest: lib.Environment) -> Iterator[kubernetes.client.ApiClient]:
    """Admin ``kubernetes.client.ApiClient`` for the session's apiserver."""
    # The kubernetes package ships py.typed but leaves this loader unannotated.
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call,unused-ignore]
        config_file=str(envtest.kubeconfig)
    )
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call,unused-ignore]


@pytest.fixture
def namespace(kube_api: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"test-{secrets.token_hex(4)}"
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        # The namespace controller finishes the deletion in the background.
        core.delete_namespace(name)


@pytest.fixture(scope="session")
def gateway_api_servers(
    envtest_binaries: lib.Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], lib.Environment]]:
    """Control planes of their own per pinned Gateway API release, started on first use.

    ``get("gateway-api-v1.5.1")`` returns a running environment whose Gateway
    API CRDs are that release's (experimental channel), with every other
    upstream mesh CRD and the project's SMI CRDs. Gateway API CRDs are
    cluster-scoped, so a release other than the session's newest needs a
    cluster of its own.
    """
    started: dict[str, lib.Environment] = {}

    def get(folder: str) -> lib.Environment:
        if folder not in started:
            directory = tmp_path_factory.mktemp(f"envtest-{folder}")
            try:
                env = lib.start(directory, envtest_binaries)
            except EnvtestError as error:
                pytest.fail(f"envtest: cannot start a control plane for {folder}:\n{error}",
                            pytrace=False)
            started[folder] = env
            http = env.http()
            install_crds(http, gateway_api_crd_documents(mesh_crds_dir(), folder))
            install_crds(http, crd_documents_in(project_crds_dir()))
        return started[folder]

    try:
        yield get
    finally:
        for env in started.values():
            lib.stop(env.dir)


@pytest.fixture(scope="session")
def upstream_crds(kube_api: kubernetes.client.ApiClient) -> list[str]:
    """Install the upstream mesh CRDs (see :func:`upstream_crd_documents`); returns their names."""
    root = mesh_crds_dir()
    if not root.is_dir():
        pytest.fail(f"mesh CRD folder {root} does not exist (set MESH_CRDS_DIR)", pytrace=False)
    docs = upstream_crd_documents(root)
    if not docs:
        pytest.fail(f"no CustomResourceDefinition found under {root}", pytrace=False)
    return install_crds(http_for(kube_api), docs)


@pytest.fixture(scope="session")
def project_crds(kube_api: kubernetes.client.ApiClient) -> list[str]:
    """Install the project's SMI CRDs from ``<repo>/crds/*.yaml``; returns their names."""
    folder = project_crds_dir()
    docs = crd_documents_in(folder) if folder.is_dir() else []
    if not docs:
        pytest.fail(
            f"no SMI CustomResourceDefinitions in {folder}/*.yaml: the project's CRDs are missing",
            pytrace=False,
        )
    return install_crds(http_for(kube_api), docs)


@pytest.fixture(scope="session")
def mesh_crds(upstream_crds: list[str], project_crds: list[str]) -> list[str]:
    """All upstream mesh CRDs plus the project's SMI CRDs, Established."""
    return [*upstream_crds, *project_crds]
