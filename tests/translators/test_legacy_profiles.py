"""Kuma's `from` and legacy profiles and Linkerd's ServiceProfile profile: what they write, and where.

The goldens (tests/golden/kuma/kuma-mesh-versions-*, tests/golden/linkerd/linkerd-2.13-*,
linkerd-service-profile-present) hold the full outputs; these tests pin the rules
around them: which release gets which form, cluster-scoped names, the refusals
of the operator and of Kuma 3.0.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import yaml

from smi2mesh.findings import FindingReason
from smi2mesh.inputs import parse_documents
from smi2mesh.operator import config as operator_config
from smi2mesh.operator.reconcile import output_resources
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS, profiles
from smi2mesh.translators.base import Options, TranslationResult
from smi2mesh.translators.profiles import ClusterFacts, Feature
from tests.test_cli import run

APP = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: NS}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: web, containers: [{name: w, image: w, ports: [{containerPort: 80}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: NS}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec: {serviceAccountName: client, containers: [{name: c, image: c}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: split, namespace: NS}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}, {service: web-v2, weight: 1}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: any, namespace: NS}
spec: {}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: access, namespace: NS}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: NS}
  sources: [{kind: ServiceAccount, name: client, namespace: NS}]
  rules: [{kind: TCPRoute, name: any}]
"""


def _run(mesh: str, version: str, *namespaces: str) -> TranslationResult:
    docs = [d for ns in namespaces for d in yaml.safe_load_all(APP.replace("NS", ns)) if d]
    inputs = parse_documents((f"t:{i}", d) for i, d in enumerate(docs))
    return translate(inputs, mesh, Options(profile=profiles.resolve(mesh, version)))


def _of(result: TranslationResult, kind: str) -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == kind]


@pytest.mark.parametrize(("version", "form"), [("2.14", "rules"), ("2.12", "rules"), ("2.11", "from"),
                                                ("2.10", "from")])
def test_mesh_traffic_permission_uses_rules_from_kuma_2_12(version: str, form: str) -> None:
    result = _run("kuma", version, "shop")
    (allow,) = [o for o in _of(result, "MeshTrafficPermission") if o["metadata"]["name"] == "access"]
    assert set(allow["spec"]) == {"targetRef", form}
    if form == "from":
        assert allow["spec"]["from"] == [{"targetRef": {"kind": "MeshSubset", "tags": {
            "k8s.kuma.io/namespace": "shop", "app": "client"}}, "default": {"action": "Allow"}}]


@pytest.mark.parametrize("version", ["2.9", "2.5", "2.0", "2.14+legacy", "2.10+legacy"])
def test_legacy_releases_write_cluster_scoped_traffic_routes_and_permissions(version: str) -> None:
    result = _run("kuma", version, "shop", "shop-2")
    assert {o["kind"] for o in result.objects} == {"TrafficRoute", "TrafficPermission"}
    for obj in result.objects:
        assert "namespace" not in obj["metadata"]
        assert obj["mesh"] == "default"
    # The same SMI names in two namespaces give two objects, each naming its namespace.
    assert sorted(o["metadata"]["name"] for o in _of(result, "TrafficRoute")) == ["split-80.shop",
                                                                                  "split-80.shop-2"]
    route = _of(result, "TrafficRoute")[0]["spec"]
    assert route["destinations"] == [{"match": {"kuma.io/service": "web_shop_svc_80"}}]
    assert route["conf"]["split"][0] == {"weight": 1,
                                         "destination": {"kuma.io/service": "web-v1_shop_svc_80"}}


def test_legacy_http_rules_fail_closed_unless_widened() -> None:
    text = APP.replace("NS", "shop").replace("rules: [{kind: TCPRoute, name: any}]",
                                             "rules: [{kind: HTTPRouteGroup, name: g}]") + """
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: shop}
spec: {matches: [{name: get, methods: [GET]}]}
"""
    inputs = parse_documents((f"t:{i}", d) for i, d in enumerate(yaml.safe_load_all(text)))
    legacy = profiles.resolve("kuma", "2.5")
    closed = translate(inputs, "kuma", Options(profile=legacy))
    widened = translate(inputs, "kuma", Options(profile=legacy, widen_l7_to_l4=True))
    (deny,) = _of(closed, "TrafficPermission")
    assert deny["spec"]["sources"] == [{"match": {"k8s.kuma.io/namespace": "-"}}]
    assert FindingReason.ACCESS_FAIL_CLOSED in {f.reason for f in closed.findings}
    (allow,) = _of(widened, "TrafficPermission")
    assert allow["spec"]["sources"] == [{"match": {"k8s.kuma.io/namespace": "shop", "app": "client"}}]
    assert FindingReason.WIDENED in {f.reason for f in widened.findings}


def test_cli_refuses_legacy_output_for_kuma_3() -> None:
    code, out, err = run(["translate", "--mesh", "kuma", "--mesh-version", "3.0+legacy"], "")
    assert (code, out) == (2, "")
    assert "kuma 3.0 no longer serves or applies TrafficRoute/TrafficPermission" in err
    assert "2.14+legacy" in err


def _operator_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    operator_config.add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_operator_refuses_the_legacy_kuma_profile() -> None:
    with pytest.raises(operator_config.ConfigError, match="cluster-scoped"):
        operator_config.from_args(_operator_args("--mesh", "kuma", "--mesh-version", "2.5"), {})
    config = operator_config.from_args(_operator_args("--mesh", "kuma", "--mesh-version", "2.11"), {})
    assert config.mesh_versions == {"kuma": "2.11"}


def test_operator_never_discovers_a_legacy_release_and_never_watches_cluster_scoped_kinds() -> None:
    # A cluster serving only the legacy kinds still gets a release the operator writes for.
    facts = ClusterFacts(lambda api, kind: kind in ("TrafficRoute", "TrafficPermission"))
    assert not profiles.discover("kuma", facts).has(Feature.KUMA_LEGACY)
    legacy = {(k.api_version, k.kind) for k in TRANSLATORS["kuma"].emits if not k.namespaced}
    assert legacy == {("kuma.io/v1alpha1", "TrafficRoute"), ("kuma.io/v1alpha1", "TrafficPermission")}
    watched = output_resources(operator_config.from_args(_operator_args("--mesh", "kuma"), {}))
    assert not legacy & set(watched)


def test_linkerd_2_13_splits_as_a_service_profile_and_reads_foreign_ones_as_conflicts() -> None:
    result = _run("linkerd", "2.13", "shop")
    (sp,) = _of(result, "ServiceProfile")
    assert sp["apiVersion"] == "linkerd.io/v1alpha2"
    assert sp["metadata"]["name"] == "web.shop.svc.cluster.local"
    assert sp["spec"] == {"dstOverrides": [{"authority": "web-v1.shop.svc.cluster.local:80", "weight": 1},
                                           {"authority": "web-v2.shop.svc.cluster.local:80", "weight": 1}]}
    (server,) = _of(result, "Server")
    assert server["apiVersion"] == "policy.linkerd.io/v1beta1"
    assert "accessPolicy" not in server["spec"]
    assert not [o for o in result.objects if o["apiVersion"].startswith("gateway.networking.k8s.io")]
