"""Mesh and Gateway API versions: what each target may emit on the cluster it writes for.

The one home for version knowledge. A :class:`Profile` is the resolved answer
for one translation run: the target's :class:`MeshRelease` (API version of each
kind it writes, features it honours) and, for targets that write Gateway API
routes, the :class:`GatewayApi` release (route API versions, fields its schema
has). Translators ask the profile (``em.profile.api(group, kind)``,
``em.profile.has(Feature.X)``); they never compare version numbers themselves.

Where the facts come from (each checked at the tag named):

* Gateway API: ``config/crd/{standard,experimental}/gateway.networking.k8s.io_{httproutes,tcproutes}.yaml``
  in kubernetes-sigs/gateway-api v0.7.1 ... v1.6.1. HTTPRoute ``v1`` from v1.0.0
  (``v1beta1`` before); TCPRoute only ``v1alpha2`` and only in the experimental
  channel before v1.6.0, ``v1`` (standard) from v1.6.0; ``parentRefs[].port`` in
  the standard channel from v1.1.0 (experimental only before).
* Linkerd: supported Gateway API ranges from linkerd.io/2/features/gateway-api
  (2.15-2.17: 0.7-1.1.1; 2.18-2.19: 1.1.1-1.2.1) and, for 2.20, 1.2.1-1.5.1 (the
  issue; ../shared/upstream-crds/SOURCES.md). linkerd/linkerd2 tags: Server
  ``v1beta3`` (with ``accessPolicy``) from version-2.16
  (charts/linkerd-crds/templates/policy/server.yaml); outbound TCPRoute support
  from version-2.17 (policy-controller/k8s/index/src/outbound/index/tcp.rs), read
  as the experimental ``v1alpha2`` type (policy-controller/k8s/api/src/lib.rs).
* Istio: ``networking.istio.io/v1`` and ``security.istio.io/v1`` from Istio 1.22;
  ``v1beta1`` before (and still served by 1.30, istio-1.30.3 CRDs).
* Cilium: the Gateway API its operator is built against, from the ``go.mod`` of
  github.com/cilium/cilium (proxy.golang.org): v1.18.0 -> sigs.k8s.io/gateway-api
  v1.3.x, v1.19.x -> v1.4.x. Cilium's GAMMA implements HTTPRoute (and GRPCRoute),
  not TCPRoute (docs.cilium.io, "GAMMA Support").
* Kuma (kumahq/kuma tags): MeshTrafficPermission ``rules`` from 2.12.0
  (pkg/plugins/policies/meshtrafficpermission/api/v1alpha1/meshtrafficpermission.go:17-18;
  absent at 2.11.0), with MeshIdentity (pkg/core/resources/apis/meshidentity, new
  in 2.12.0); ``from`` before. The ``Dataplane`` targetRef kind the access
  policies select by is new in 2.10.0 (api/common/v1alpha1/targetref.go; the
  2.9.0 kinds in api/common/v1alpha1/ref.go:16-23 have none), and the Mesh's
  ``meshServices.mode``, which the routes' MeshService references need, in
  2.9.0 (api/mesh/v1alpha1/mesh.proto:103-118). So 2.10-2.11 get ``from``,
  and releases before 2.10 the legacy TrafficRoute/TrafficPermission
  (kuma.io/v1alpha1, cluster-scoped), which every 2.x serves; ``2.N+legacy``
  chooses them on newer 2.x releases. From 2.6.0 a new Mesh gets no default
  TrafficRoute, and without one Kuma applies no legacy policy (UPGRADE.md at
  v2.14.3, "Default TrafficRoute and TrafficPermission resources are not
  created"): a Prerequisite finding says so. Kuma 3.0 stops applying them
  (tracker issue 13; at v2.14.3 ``from`` is also "removed in 3.0",
  meshtrafficpermission/api/v1alpha1/deprecated.go:12), so legacy output for
  3.x is refused.
* Linkerd 2.13 (stable-2.13.0): no GAMMA; splits as ServiceProfile
  ``dstOverrides`` (``linkerd.io/v1alpha2``), as linkerd-smi wrote them; Server
  only ``v1beta1`` (no ``accessPolicy``: a Server denies what no
  authorization allows) and policy HTTPRoute up to ``v1beta2``
  (charts/linkerd-crds/templates/policy/{server,httproute}.yaml).
* consul-k8s 2.0: the pinned CRDs (consul-k8s-v2.0.3).

Adding a mesh version is one :class:`MeshRelease` in :data:`RELEASES`. A
variant of a release (``"2.14+legacy"``) is a release of its own, with the
features that make it differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

GATEWAY_GROUP = "gateway.networking.k8s.io"
BUNDLE_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"

GatewayVersion = tuple[int, int, int]


class ProfileError(ValueError):
    """An unknown or unsupported mesh or Gateway API version; the message names the supported ones."""


class Channel(StrEnum):
    """Gateway API CRD channel (the ``gateway.networking.k8s.io/channel`` annotation)."""

    STANDARD = "standard"
    EXPERIMENTAL = "experimental"


class Feature(StrEnum):
    """Behaviour that differs between releases of one mesh."""

    # The mesh routes GAMMA TCPRoutes (Service parents). Cilium's GAMMA does not;
    # Linkerd only from 2.17.
    GAMMA_TCP_ROUTE = "gamma-tcp-route"
    # Set by the releases that have them, read by the Kuma and Linkerd translators.
    # Kuma MeshTrafficPermission ``rules`` with SPIFFE identities (else ``from``).
    KUMA_MTP_RULES = "kuma-mtp-rules"
    # Kuma legacy TrafficRoute/TrafficPermission instead of the new policies.
    KUMA_LEGACY = "kuma-legacy"
    # Linkerd before GAMMA: splits as ServiceProfile dstOverrides.
    LINKERD_SERVICE_PROFILES = "linkerd-service-profiles"
    # Linkerd Server ``accessPolicy`` (Server v1beta3, Linkerd 2.16+).
    LINKERD_SERVER_ACCESS_POLICY = "linkerd-server-access-policy"


# Features of releases the operator does not write for: Kuma's legacy policies
# are cluster-scoped, and a cluster-scoped object cannot be owned by (so
# garbage-collected with) the namespaced SMI object it comes from.
CLI_ONLY: Mapping[Feature, str] = MappingProxyType({
    Feature.KUMA_LEGACY: "Kuma's legacy TrafficRoute/TrafficPermission are cluster-scoped, and the "
                         "operator only writes namespaced objects owned by their SMI objects; "
                         "write them with `smi2mesh translate`",
})


# Every Gateway API release, from the project's tags.
GATEWAY_API_RELEASES: tuple[GatewayVersion, ...] = (
    (0, 7, 0), (0, 7, 1), (0, 8, 0), (0, 8, 1), (1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 2, 0),
    (1, 2, 1), (1, 3, 0), (1, 4, 0), (1, 4, 1), (1, 5, 0), (1, 5, 1), (1, 6, 0), (1, 6, 1))


def render(version: Sequence[int]) -> str:
    return ".".join(str(p) for p in version)


@dataclass(frozen=True, slots=True)
class GatewayApi:
    """One Gateway API release as installed: its version and, when known, its channel.

    ``channel`` is None offline (the CLI cannot know what is installed), which is
    read as "maybe standard only": fields and kinds of the experimental channel
    come with a Prerequisite finding, or are not used.
    """

    version: GatewayVersion
    channel: Channel | None = None

    def __str__(self) -> str:
        return render(self.version) + (f" ({self.channel.value})" if self.channel else "")

    def api(self, kind: str) -> str:
        """apiVersion of a route kind in this release."""
        if kind == "TCPRoute":
            return f"{GATEWAY_GROUP}/{'v1' if self.version >= (1, 6, 0) else 'v1alpha2'}"
        if kind == "HTTPRoute":
            return f"{GATEWAY_GROUP}/{'v1' if self.version >= (1, 0, 0) else 'v1beta1'}"
        raise KeyError(f"no Gateway API version known for kind {kind}")

    def experimental_only(self, kind: str) -> bool:
        """Whether *kind* exists only in this release's experimental-channel CRDs."""
        return kind == "TCPRoute" and self.version < (1, 6, 0)

    @property
    def parent_port(self) -> bool:
        """Whether ``parentRefs[].port`` may be used: standard from 1.1.0, else experimental only."""
        return self.version >= (1, 1, 0) or self.channel is Channel.EXPERIMENTAL


@dataclass(frozen=True, slots=True)
class MeshRelease:
    """One supported release of a target mesh."""

    target: str
    label: str  # "2.20", "1.21", "2.14+legacy"
    # (group, kind) -> apiVersion of every mesh-own kind this release is written with.
    apis: Mapping[tuple[str, str], str]
    # Supported Gateway API releases (inclusive); None: the target writes no Gateway API.
    gateway_api: tuple[GatewayVersion, GatewayVersion] | None = None
    features: frozenset[Feature] = frozenset()
    source: str = ""

    @property
    def version(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.label.split("+", 1)[0].split("."))

    @property
    def cli_only(self) -> str | None:
        """Why the operator does not write for this release; None when it does."""
        return next((why for f, why in CLI_ONLY.items() if f in self.features), None)

    def gateway_releases(self) -> list[GatewayVersion]:
        """Known Gateway API releases in this release's range, oldest first."""
        if self.gateway_api is None:
            return []
        low, high = self.gateway_api
        return [v for v in GATEWAY_API_RELEASES if low <= v <= high]

    def describe_gateway(self) -> str:
        if self.gateway_api is None:
            return "none"
        return f"{render(self.gateway_api[0])}-{render(self.gateway_api[1])}"


@dataclass(frozen=True, slots=True)
class Profile:
    """What one translation run may emit: a mesh release plus its Gateway API release."""

    release: MeshRelease
    gateway: GatewayApi | None = None

    @property
    def target(self) -> str:
        return self.release.target

    def api(self, group: str, kind: str) -> str:
        """apiVersion to write *kind* of *group* in."""
        if group == GATEWAY_GROUP:
            if self.gateway is None:
                raise KeyError(f"{self.target} {self.release.label} writes no Gateway API")
            return self.gateway.api(kind)
        return self.release.apis[(group, kind)]

    def has(self, feature: Feature) -> bool:
        return feature in self.release.features

    def describe(self) -> str:
        mesh = f"{self.target} {self.release.label}" if self.release.label else self.target
        return mesh + (f", Gateway API {self.gateway}" if self.gateway else "")


def _apis(*entries: str) -> Mapping[tuple[str, str], str]:
    """``"group/version Kind"`` entries as a (group, kind) -> apiVersion mapping."""
    out: dict[tuple[str, str], str] = {}
    for entry in entries:
        api_version, kind = entry.split()
        out[(api_version.rsplit("/", 1)[0], kind)] = api_version
    return MappingProxyType(out)


_ISTIO_V1 = _apis("networking.istio.io/v1 VirtualService", "security.istio.io/v1 AuthorizationPolicy")
_ISTIO_V1BETA1 = _apis("networking.istio.io/v1beta1 VirtualService",
                       "security.istio.io/v1beta1 AuthorizationPolicy")
_LINKERD = _apis("policy.linkerd.io/v1beta3 Server", "policy.linkerd.io/v1beta3 HTTPRoute",
                 "policy.linkerd.io/v1alpha1 AuthorizationPolicy",
                 "policy.linkerd.io/v1alpha1 MeshTLSAuthentication")
_LINKERD_LEGACY = _apis("policy.linkerd.io/v1beta1 Server", "policy.linkerd.io/v1beta2 HTTPRoute",
                        "policy.linkerd.io/v1alpha1 AuthorizationPolicy",
                        "policy.linkerd.io/v1alpha1 MeshTLSAuthentication",
                        "linkerd.io/v1alpha2 ServiceProfile")
_KUMA = _apis("kuma.io/v1alpha1 MeshHTTPRoute", "kuma.io/v1alpha1 MeshTCPRoute",
              "kuma.io/v1alpha1 MeshTrafficPermission")
_KUMA_LEGACY = _apis("kuma.io/v1alpha1 TrafficRoute", "kuma.io/v1alpha1 TrafficPermission")
_CONSUL = _apis(*(f"consul.hashicorp.com/v1alpha1 {k}" for k in
                  ("ServiceSplitter", "ServiceRouter", "ServiceDefaults", "ServiceIntentions")))
_CILIUM = _apis("cilium.io/v2 CiliumNetworkPolicy")
_GW_DOCS = "linkerd.io/2/features/gateway-api"


def _istio(minor: int) -> MeshRelease:
    v1 = minor >= 22
    return MeshRelease("istio", f"1.{minor}", _ISTIO_V1 if v1 else _ISTIO_V1BETA1,
                       source="Istio 1.22 promoted networking and security APIs to v1" if v1 else
                       "before Istio 1.22: networking/security v1beta1")


def _linkerd(minor: int, gateway: tuple[GatewayVersion, GatewayVersion], source: str) -> MeshRelease:
    features = {Feature.LINKERD_SERVER_ACCESS_POLICY}
    if minor >= 17:
        features.add(Feature.GAMMA_TCP_ROUTE)
    return MeshRelease("linkerd", f"2.{minor}", _LINKERD, gateway, frozenset(features), source)


def _kuma(minor: int, legacy: bool = False) -> MeshRelease:
    if legacy or minor < 10:
        label = f"2.{minor}+legacy" if minor >= 10 else f"2.{minor}"
        return MeshRelease("kuma", label, _KUMA_LEGACY, features=frozenset({Feature.KUMA_LEGACY}),
                           source="TrafficRoute/TrafficPermission (every 2.x; removed in 3.0)")
    if minor >= 12:
        return MeshRelease("kuma", f"2.{minor}", _KUMA, features=frozenset({Feature.KUMA_MTP_RULES}),
                           source="MeshTrafficPermission rules: kuma 2.12.0")
    return MeshRelease("kuma", f"2.{minor}", _KUMA,
                       source="MeshTrafficPermission from; Dataplane targetRef: kuma 2.10.0")


# Newest first within each target: the first one is the default.
RELEASES: Mapping[str, tuple[MeshRelease, ...]] = MappingProxyType({
    "istio": tuple(_istio(m) for m in range(30, 19, -1)),
    "linkerd": (
        _linkerd(20, ((1, 2, 1), (1, 5, 1)), "issue 13; ../shared/upstream-crds/SOURCES.md"),
        _linkerd(19, ((1, 1, 1), (1, 2, 1)), _GW_DOCS),
        _linkerd(18, ((1, 1, 1), (1, 2, 1)), _GW_DOCS),
        _linkerd(17, ((0, 7, 0), (1, 1, 1)), _GW_DOCS),
        _linkerd(16, ((0, 7, 0), (1, 1, 1)), _GW_DOCS),
        MeshRelease("linkerd", "2.13", _LINKERD_LEGACY,
                    features=frozenset({Feature.LINKERD_SERVICE_PROFILES}),
                    source="stable-2.13.0: no GAMMA; ServiceProfile dstOverrides"),
    ),
    "kuma": (*(_kuma(m) for m in range(14, -1, -1)), *(_kuma(m, legacy=True) for m in range(14, 9, -1))),
    "consul": (MeshRelease("consul", "2.0", _CONSUL, source="consul-k8s-v2.0.3 CRDs"),),
    "cilium": (
        MeshRelease("cilium", "1.19", _CILIUM, ((1, 4, 0), (1, 4, 1)),
                    source="cilium v1.19.x go.mod: sigs.k8s.io/gateway-api v1.4"),
        MeshRelease("cilium", "1.18", _CILIUM, ((1, 3, 0), (1, 3, 0)),
                    source="cilium v1.18.0 go.mod: sigs.k8s.io/gateway-api v1.3"),
    ),
    # Gateway API alone: its "mesh version" is the Gateway API release.
    "gamma": (MeshRelease("gamma", "", {}, ((1, 1, 0), GATEWAY_API_RELEASES[-1]),
                          frozenset({Feature.GAMMA_TCP_ROUTE}),
                          source="GAMMA is standard from Gateway API 1.1.0 (Service parentRef port)"),),
    # SMI re-emission: versions come from --smi-profile / --smi-versions instead.
    "smi": (MeshRelease("smi", "", {}),),
})

_MESH_VERSION = re.compile(r"^(?:v|version-|stable-)?(\d+)\.(\d+)(?:\.\d+)?(\+[a-z0-9-]+)?$")
_GATEWAY_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


def releases(target: str) -> tuple[MeshRelease, ...]:
    return RELEASES[target]


def has_mesh_versions(target: str) -> bool:
    return any(r.label for r in RELEASES[target])


def supported(target: str) -> str:
    """The supported mesh versions of *target*, for messages."""
    return ", ".join(r.label for r in RELEASES[target] if r.label)


def mesh_release(target: str, version: str | None) -> MeshRelease:
    """The release *version* names ("2.20", "v2.20.1", "version-2.20", "1.21.6"); None: the newest."""
    known = RELEASES[target]
    if version is None:
        return known[0]
    if not has_mesh_versions(target):
        hint = ("use --smi-profile or --smi-versions" if target == "smi"
                else "use --gateway-api-version")
        raise ProfileError(f"{target} has no mesh version; {hint}")
    m = _MESH_VERSION.match(version.strip())
    label = f"{m.group(1)}.{m.group(2)}{m.group(3) or ''}" if m else None
    for release in known:
        if release.label == label:
            return release
    legacy = [r.version[0] for r in known if Feature.KUMA_LEGACY in r.features]
    if m and m.group(3) == "+legacy" and legacy and int(m.group(1)) > max(legacy):
        raise ProfileError(f"{target} {m.group(1)}.{m.group(2)} no longer serves or applies "
                           "TrafficRoute/TrafficPermission, so no legacy output is written for it; "
                           f"supported: {supported(target)}")
    raise ProfileError(f"{target} version {version!r} is not supported; supported: {supported(target)}")


def gateway_api(release: MeshRelease, version: str | None,
                channel: Channel | None = None) -> GatewayApi | None:
    """The Gateway API release *version* names, within *release*'s range; None: the newest in range.

    ``"1.5"`` means the newest 1.5.x release in range.
    """
    known = release.gateway_releases()
    if not known:
        if version is not None:
            raise ProfileError(f"{release.target} writes no Gateway API routes; "
                               "--gateway-api-version does not apply")
        return None
    if version is None:
        return GatewayApi(known[-1], channel)
    where = f"{release.target} {release.label}".rstrip()
    m = _GATEWAY_VERSION.match(version.strip())
    if m:
        major, minor = int(m.group(1)), int(m.group(2))
        patch = int(m.group(3)) if m.group(3) is not None else None
        fits = [v for v in known if v[:2] == (major, minor) and (patch is None or v[2] == patch)]
        if fits:
            return GatewayApi(fits[-1], channel)
    raise ProfileError(f"Gateway API version {version!r} is not supported by {where}; "
                       f"supported: {release.describe_gateway()}")


def resolve(target: str, mesh_version: str | None = None, gateway_api_version: str | None = None,
            channel: Channel | None = None) -> Profile:
    """The profile for *target*: its newest release and that release's newest Gateway API by default."""
    if target not in RELEASES:
        raise ProfileError(f"unknown target {target!r}")
    release = mesh_release(target, mesh_version)
    return Profile(release, gateway_api(release, gateway_api_version, channel))


def default(target: str) -> Profile:
    return _DEFAULTS[target]


_DEFAULTS: Mapping[str, Profile] = MappingProxyType({t: resolve(t) for t in RELEASES})


# ---- discovery (pure: the operator passes in what the API server told it) ----------------


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What the operator read from the API server, for :func:`discover`.

    ``served(api_version, kind)`` says whether a kind is served at a version;
    ``bundle`` and ``channel`` are the Gateway API CRD annotations (None when
    the CRD could not be read).
    """

    served: Callable[[str, str], bool]
    bundle: str | None = None
    channel: Channel | None = None
    notes: list[str] = field(default_factory=list)


def discover(target: str, facts: ClusterFacts, mesh_version: str | None = None,
             gateway_api_version: str | None = None) -> Profile:
    """The profile the cluster calls for; explicit versions win over what was discovered.

    Mesh release: the newest whose every kind is served (a cluster serving
    only ``networking.istio.io/v1beta1`` gets Istio 1.21); the newest at all if
    none is. Gateway API: the CRDs' bundle version, else the served TCPRoute
    version, clamped into the release's supported range.
    """
    if mesh_version is not None:
        release = mesh_release(target, mesh_version)
    else:
        # Releases the operator does not write for are never picked for it.
        candidates = tuple(r for r in RELEASES[target] if r.cli_only is None)
        release = next((r for r in candidates if r.apis and all(
            facts.served(api, kind) for (_, kind), api in r.apis.items())), candidates[0])
    known = release.gateway_releases()
    if not known:
        # One Gateway API flag serves every enabled mesh; it means nothing to this one.
        return Profile(release)
    if gateway_api_version is not None:
        return Profile(release, gateway_api(release, gateway_api_version, facts.channel))
    wanted: GatewayVersion | None = None
    if facts.bundle:
        m = _GATEWAY_VERSION.match(facts.bundle.strip())
        if m:
            wanted = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
        else:
            facts.notes.append(f"unreadable Gateway API bundle version {facts.bundle!r}")
    if wanted is None:
        if facts.served(f"{GATEWAY_GROUP}/v1", "TCPRoute"):
            wanted = max(known[-1], (1, 6, 0))  # some 1.6 or later: the newest in range
        elif facts.served(f"{GATEWAY_GROUP}/v1alpha2", "TCPRoute"):
            wanted = (1, 5, 1)
    if wanted is None:
        return Profile(release, GatewayApi(known[-1], facts.channel))
    if wanted > known[-1] or wanted < known[0]:
        chosen = known[-1] if wanted > known[-1] else known[0]
        facts.notes.append(f"Gateway API {render(wanted)} is outside what {target} {release.label} "
                           f"supports ({release.describe_gateway()}); writing for {render(chosen)}")
        return Profile(release, GatewayApi(chosen, facts.channel))
    # Within range: the newest known release not newer than the installed one.
    return Profile(release, GatewayApi(max(v for v in known if v <= wanted), facts.channel))
