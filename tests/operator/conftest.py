"""Fixtures for operator tests: a cluster client and a way to start operators."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import kubernetes
import pytest
import yaml

from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import Kube, Resource
from tests.envtest import envtest as lib
from tests.operator import harness


class Cluster:
    """A small client for tests: apply documents, read and delete objects by kind."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._served: dict[str, dict[str, Resource]] = {}

    def resource(self, api_version: str, kind: str) -> Resource:
        if api_version not in self._served or kind not in self._served[api_version]:
            self._served[api_version] = self.kube.served(api_version) or {}
        return self._served[api_version][kind]

    def apply(self, text_or_doc: str | dict[str, Any], namespace: str, manager: str = "tests") -> None:
        docs = yaml.safe_load_all(text_or_doc) if isinstance(text_or_doc, str) else [text_or_doc]
        for doc in docs:
            if not doc:
                continue
            res = self.resource(doc["apiVersion"], doc["kind"])
            if res.namespaced:
                doc.setdefault("metadata", {})["namespace"] = namespace
            meta = doc["metadata"]
            self.kube.request("PATCH", res.path(meta.get("namespace"), meta["name"]),
                              query=[("fieldManager", manager), ("force", "true")], body=doc,
                              content_type="application/apply-patch+yaml")

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it (or its kind) does not exist."""
        try:
            res = self.resource(api_version, kind)
        except KeyError:
            return None
        return self.kube.get(res, namespace, name)

    def objects(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        return self.kube.list(self.resource(api_version, kind), namespace)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.kube.request("DELETE", self.resource(api_version, kind).path(namespace, name))

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.kube.request("PATCH", self.resource(api_version, kind).path(namespace, name), body=body,
                          content_type="application/merge-patch+json")

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        _, body = self.kube.request("GET", f"/api/v1/namespaces/{namespace}/events")
        return [e for e in body["items"] if e["involvedObject"]["name"] == name]

    def condition(self, api_version: str, kind: str, namespace: str, name: str,
                  type_: str) -> dict[str, Any] | None:
        obj = self.get(api_version, kind, namespace, name) or {}
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return None


@pytest.fixture(scope="session")
def cluster(envtest: lib.Environment, mesh_crds: list[str]) -> Cluster:
    # kopf logs in through the official client's default configuration.
    os.environ["KUBECONFIG"] = str(envtest.kubeconfig)
    kubernetes.config.load_kube_config(config_file=str(envtest.kubeconfig))  # type: ignore[no-untyped-call]
    return Cluster(Kube(kubernetes.client.ApiClient()))


OperatorFactory = Callable[..., AbstractContextManager[harness.RunningOperator]]


@pytest.fixture
def run_operator(cluster: Cluster, envtest: lib.Environment, namespace: str) -> OperatorFactory:
    """Start an operator watching the test's namespace: ``with run_operator(mesh="istio") as op``."""

    def start(mesh: str = "istio", enable: tuple[str, ...] = (),
              namespaces: tuple[str, ...] | None = None) -> AbstractContextManager[harness.RunningOperator]:
        config = OperatorConfig(mesh=mesh, namespaces=namespaces or (namespace,),
                                enabled_meshes=frozenset(enable))
        return harness.operator(config, str(envtest.kubeconfig))

    return start


@pytest.fixture
def stopper() -> Iterator[list[harness.RunningOperator]]:
    """Operators a test starts by hand; stopped at the end whatever happens."""
    started: list[harness.RunningOperator] = []
    yield started
    for op in started:
        op.stop()
