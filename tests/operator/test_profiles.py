"""The operator's choice of mesh and Gateway API release: flags, environment and discovery.

Discovery runs against a fake API server here (what is served, the CRD
annotations, a forbidden CRD read); tests/operator/test_e2e_profiles.py shows
the same on a real one.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from smi2mesh.operator.config import ConfigError, OperatorConfig, add_run_arguments, from_args
from smi2mesh.operator.kube import ApiError, Resource
from smi2mesh.operator.runtime import Operator
from smi2mesh.translators.profiles import Channel, GatewayApi

GW = "gateway.networking.k8s.io"


class FakeKube:
    """Discovery answers of a cluster: served kinds per group/version and CRD bodies by name."""

    def __init__(self, served: dict[str, list[str]], crds: dict[str, dict[str, Any]] | None = None,
                 crd_status: int = 200) -> None:
        self._served = served
        self._crds = crds or {}
        self._crd_status = crd_status
        self.on_write: Any = None
        self.reads: list[str] = []

    def served(self, group_version: str) -> dict[str, Resource] | None:
        kinds = self._served.get(group_version)
        if kinds is None:
            return None
        group, _, version = group_version.rpartition("/")
        return {k: Resource(group, version, k.lower() + "s", k) for k in kinds}

    def request(self, method: str, path: str, **_: Any) -> tuple[int, Any]:
        self.reads.append(path)
        if self._crd_status == 403:
            raise ApiError(403, {"reason": "Forbidden"}, f"{method} {path}")
        name = path.rsplit("/", 1)[1]
        return (200, self._crds[name]) if name in self._crds else (404, None)


def _crd(bundle: str, channel: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {f"{GW}/bundle-version": bundle, f"{GW}/channel": channel}}}


LINKERD = {"policy.linkerd.io/v1beta3": ["Server", "HTTPRoute"],
           "policy.linkerd.io/v1alpha1": ["AuthorizationPolicy", "MeshTLSAuthentication"]}
GATEWAY_151 = {f"{GW}/v1": ["HTTPRoute"], f"{GW}/v1beta1": ["HTTPRoute"], f"{GW}/v1alpha2": ["TCPRoute"]}
GATEWAY_161 = {f"{GW}/v1": ["HTTPRoute", "TCPRoute"], f"{GW}/v1beta1": ["HTTPRoute"],
               f"{GW}/v1alpha2": ["TCPRoute"]}


def _operator(config: OperatorConfig, kube: FakeKube) -> Operator:
    return Operator(config, kube)  # type: ignore[arg-type]


def _tcproute_watch(op: Operator) -> tuple[str, ...]:
    return next(sel for key, sel in op.watch_selectors() if key == (GW, "tcproutes"))


def test_linkerd_on_gateway_api_1_5_1_experimental_writes_and_watches_v1alpha2() -> None:
    kube = FakeKube({**LINKERD, **GATEWAY_151},
                    {f"tcproutes.{GW}": _crd("v1.5.1", "experimental")})
    op = _operator(OperatorConfig(mesh="linkerd"), kube)
    assert _tcproute_watch(op) == (GW, "v1alpha2", "tcproutes")
    profile = op.discovery.profiles["linkerd"]
    assert profile.gateway == GatewayApi((1, 5, 1), Channel.EXPERIMENTAL)
    assert profile.api(GW, "TCPRoute") == f"{GW}/v1alpha2"


def test_gamma_on_gateway_api_1_6_1_writes_v1_and_a_forbidden_crd_read_is_not_fatal() -> None:
    op = _operator(OperatorConfig(mesh="gamma"), FakeKube(GATEWAY_161, crd_status=403))
    assert _tcproute_watch(op) == (GW, "v1", "tcproutes")
    assert op.discovery.profiles["gamma"].gateway == GatewayApi((1, 6, 1))
    # Standard 1.5.1 only (no TCPRoute, HTTPRoute's CRD says 1.5.1): TCPRoute would be v1alpha2.
    kube = FakeKube({f"{GW}/v1": ["HTTPRoute"]}, {f"httproutes.{GW}": _crd("v1.5.1", "standard")})
    op = _operator(OperatorConfig(mesh="gamma"), kube)
    op.discovery.refresh_profiles()
    assert op.discovery.profiles["gamma"].gateway == GatewayApi((1, 5, 1), Channel.STANDARD)
    assert kube.reads == [f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}.{GW}"
                          for n in ("tcproutes", "httproutes")]


def test_istio_serving_only_v1beta1_is_written_as_1_21_and_changes_are_noticed() -> None:
    served = {"networking.istio.io/v1beta1": ["VirtualService"],
              "security.istio.io/v1beta1": ["AuthorizationPolicy"]}
    kube = FakeKube(served)
    op = _operator(OperatorConfig(mesh="istio"), kube)
    op.discovery.refresh_outputs()
    assert op.discovery.profiles["istio"].release.label == "1.21"
    assert op.discovery.output("networking.istio.io/v1beta1", "VirtualService") is not None
    served.update({"networking.istio.io/v1": ["VirtualService"],
                   "security.istio.io/v1": ["AuthorizationPolicy"]})
    assert op.discovery.refresh_outputs() is True
    assert op.discovery.profiles["istio"].release.label == "1.30"
    assert op.discovery.refresh_outputs() is False


def test_flags_override_discovery() -> None:
    kube = FakeKube({**LINKERD, **GATEWAY_161, "networking.istio.io/v1": ["VirtualService"],
                     "security.istio.io/v1": ["AuthorizationPolicy"]},
                    {f"tcproutes.{GW}": _crd("v1.6.1", "experimental")})
    config = OperatorConfig(mesh="istio", enabled_meshes=frozenset({"linkerd"}),
                            mesh_versions={"istio": "1.20", "linkerd": "2.18"}, gateway_api_version="1.2")
    op = _operator(config, kube)
    op.discovery.refresh_profiles()
    assert {m: p.describe() for m, p in op.discovery.profiles.items()} == {
        "istio": "istio 1.20", "linkerd": "linkerd 2.18, Gateway API 1.2.1 (experimental)"}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_versions_from_flags_and_environment() -> None:
    config = from_args(_args("--mesh", "istio", "--enable-mesh", "linkerd", "--mesh-version", "1.21",
                             "--mesh-version", "linkerd=2.19", "--gateway-api-version", "1.2.1"))
    assert (dict(config.mesh_versions), config.gateway_api_version) == (
        {"istio": "1.21", "linkerd": "2.19"}, "1.2.1")
    env = {"SMI2MESH_MESH": "gamma", "SMI2MESH_GATEWAY_API_VERSION": "1.5.1",
           "SMI2MESH_ENABLED_MESHES": "istio", "SMI2MESH_MESH_VERSION": "istio=1.20"}
    config = from_args(_args(), env)
    assert (dict(config.mesh_versions), config.gateway_api_version) == ({"istio": "1.20"}, "1.5.1")
    assert from_args(_args("--mesh", "istio")).mesh_versions == {}


@pytest.mark.parametrize(("argv", "message"), [
    (("--mesh", "istio", "--mesh-version", "1.10"), "istio version '1.10' is not supported; supported:"),
    (("--mesh", "istio", "--mesh-version", "kuma=2.14"), "'kuma' is not the mesh or an enabled mesh"),
    (("--mesh", "gamma", "--mesh-version", "1.6"), "gamma has no mesh version"),
    (("--mesh", "istio", "--gateway-api-version", "1.5.1"), "no enabled mesh writes Gateway API"),
    (("--mesh", "linkerd", "--gateway-api-version", "1.6.1"), "supported: 1.2.1-1.5.1"),
    (("--mesh", "gamma", "--enable-mesh", "cilium", "--gateway-api-version", "1.6"),
     "not supported by cilium 1.19"),
])
def test_unsupported_versions_are_config_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_args(_args(*argv), {})
