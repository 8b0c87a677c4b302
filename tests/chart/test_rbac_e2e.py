"""RBAC proven both ways: the chart's ServiceAccount runs the real operator, and nothing more.

For each mode of the chart (all namespaces: one ClusterRole; ``watchNamespaces``:
a Role per watched namespace plus a small ClusterRole) the rendered
ServiceAccount and RBAC objects are installed for real into the envtest
kube-apiserver (RBAC authorization on), a token for that ServiceAccount is
minted with the TokenRequest API, and the real operator runs with it
(``connection_info`` hands the same token to kopf, so its watches use it too).

* The end-to-end scenario (create, drift repair, mesh swap istio -> cilium and
  back, an invalid object that posts an Event, deletion) must hit no 403 in
  any log record and in no call of the operator's ``Kube``.
* Every granted (apiGroup, resource, verb) is either seen used in that run
  (the operator's own calls are recorded by wrapping ``Kube.request``; kopf's
  list+watch streams by its "Starting the watch-stream" debug line) or is
  explained by a comment in ``templates/rbac.yaml`` (``USAGE`` below), and the
  table must match the rendered rules exactly, so a new rule needs a reason.
* Requests outside the grants (Secrets, ConfigMaps, CRD deletion, a mesh that
  is not enabled, another namespace) are refused with HTTP 403.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import ApiError, Kube
from tests.chart.chart import CHART_DIR, Rendered, load_chart, render
from tests.envtest import envtest as lib
from tests.envtest.envtest import KubeHTTP
from tests.envtest.fixtures import http_for, resource_for, server_side_apply
from tests.operator.conftest import Cluster
from tests.operator.harness import RunningOperator, wait_for
from tests.operator.test_e2e import APP, SPLIT, SPLIT_API, TARGET, TARGET_API, absent, expected, up_to_date

pytestmark = pytest.mark.envtest

MODES = ("all-namespaces", "watch-namespaces")
FIELD_MANAGER = "smi2mesh-rbac-tests"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# Generous: two cores are shared with other test runs.
STEP_TIMEOUT = 90.0
MESH_LABEL = "smi2mesh.io/mesh"

# A UDPRoute too, so the udproutes/status grant is exercised (nothing references it).
UDP = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns}
spec:
  matches: {ports: [53]}
"""
# Zero weights are invalid: the operator reports InvalidSpec in status and as an Event.
BAD_SPLIT = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: bad-split}
spec:
  service: web
  backends: [{service: web-v1, weight: 0}, {service: web-v2, weight: 0}]
"""
# Drift: an admin edits one field the operator owns in each generated kind.
TAMPER: dict[str, dict[str, Any]] = {
    "VirtualService": {"spec": {"hosts": ["evil.example.com"]}},
    "AuthorizationPolicy": {"spec": {"action": "DENY"}},
    "CiliumNetworkPolicy": {"spec": {"enableDefaultDeny": {"ingress": False}}},
    "HTTPRoute": {"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "evil", "port": 8080}]}},
}
FORBIDDEN = re.compile(r"forbidden|not enough permissions|\b403\b", re.IGNORECASE)
WATCH_STREAM = re.compile(r"Starting the watch-stream for (\S+) (cluster-wide|in '([^']*)')")

# (apiGroup, resource, verb): the unit grants are compared in.
Grant = tuple[str, str, str]


# ---------------------------------------------------------------- rule -> usage table

# Why a grant the scenario cannot exercise stays: each key names a paragraph of the
# comment at the top of templates/rbac.yaml (checked below).
GET_BESIDE_LIST = "get-beside-list"
TCPROUTES = "gateway-tcproutes"


@dataclass(frozen=True)
class Usage:
    """Either the scenario step that exercises a grant, or why it is granted anyway."""

    step: str = ""
    unexercised: str = ""


SMI = {"split.smi-spec.io": ["trafficsplits"], "access.smi-spec.io": ["traffictargets"],
       "specs.smi-spec.io": ["httproutegroups", "tcproutes", "udproutes"]}
CONTEXT = {"": ["services", "pods", "serviceaccounts"],
           "apps": ["deployments", "statefulsets", "daemonsets"]}
# Mesh kinds of istio + cilium, by the step that creates / repairs / prunes them.
MESH = {
    ("networking.istio.io", "virtualservices"): ("istio objects", "drift on istio", "swap to cilium"),
    ("security.istio.io", "authorizationpolicies"): ("istio objects", "drift on istio", "swap to cilium"),
    ("cilium.io", "ciliumnetworkpolicies"): ("swap to cilium", "drift on cilium", "swap back to istio"),
    ("gateway.networking.k8s.io", "httproutes"): ("swap to cilium", "drift on cilium", "swap back to istio"),
}
LIST = "start-up: kopf's first listing fills the cache (Operator.listed); periodic re-list"
WATCH = "kopf watch-stream (list, then watch) feeding the cache"


def usage_table(mode: str) -> dict[Grant, Usage]:
    """Every grant the chart should render for istio + cilium in *mode*, with its usage."""
    table: dict[Grant, Usage] = {}

    def read(group: str, resource: str) -> None:
        table[(group, resource, "list")] = Usage(LIST)
        table[(group, resource, "watch")] = Usage(WATCH)
        table[(group, resource, "get")] = Usage(unexercised=GET_BESIDE_LIST)

    for group, resources in SMI.items():
        for resource in resources:
            read(group, resource)
            table[(group, f"{resource}/status", "patch")] = Usage("status written after each reconcile")
    for group, resources in CONTEXT.items():
        for resource in resources:
            read(group, resource)
    table[("", "events", "create")] = Usage("InvalidSpec Event of bad-split (Kube.event)")
    # The Role in the release namespace (get and update limited to the release's Lease).
    table[("coordination.k8s.io", "leases", "create")] = Usage(
        "leader election: the first round creates the Lease")
    table[("coordination.k8s.io", "leases", "get")] = Usage("leader election: every round reads the Lease")
    table[("coordination.k8s.io", "leases", "update")] = Usage(
        "leader election: renewals every retry period, and the release at stop")
    for (group, resource), (create, patch, delete) in MESH.items():
        read(group, resource)
        table[(group, resource, "create")] = Usage(create)
        table[(group, resource, "patch")] = Usage(f"{patch} (server-side apply repairs it)")
        table[(group, resource, "delete")] = Usage(f"{delete} (prune)")
    # Cilium's GAMMA routes no TCPRoute, so neither istio nor cilium is granted tcproutes
    # (the TCPROUTES reason covers linkerd and gamma installs).
    read("apiextensions.k8s.io", "customresourcedefinitions")
    table[("apiextensions.k8s.io", "customresourcedefinitions", "get")] = Usage(
        "profile discovery: the Gateway API CRDs' bundle-version annotation (cilium)")
    table[("apiextensions.k8s.io", "customresourcedefinitions", "list")] = Usage(
        "kopf resource observer: initial CRD list")
    table[("apiextensions.k8s.io", "customresourcedefinitions", "watch")] = Usage(
        "kopf resource observer: CRDs installed later")
    if mode == "all-namespaces":
        read("", "namespaces")
    else:
        # `get` only on the watched namespaces (resourceNames); list and watch on all of them,
        # because kopf watches the cluster-scoped Namespace kind cluster-wide.
        table[("", "namespaces", "get")] = Usage("start-up: Operator.discover gets each watched one")
        table[("", "namespaces", "list")] = Usage("kopf: namespace observer, and the watch-stream")
        table[("", "namespaces", "watch")] = Usage(WATCH)
    return table


def rbac_comment_keys() -> set[str]:
    """Reason keys documented in templates/rbac.yaml (``- <key>:`` lines of its header comment)."""
    text = (CHART_DIR / "templates" / "rbac.yaml").read_text(encoding="utf-8")
    header = text.split("*/}}", 1)[0]
    return set(re.findall(r"^- ([\w.-]+):", header, re.MULTILINE))


def granted(rendered: Rendered) -> set[Grant]:
    """What the rendered ClusterRole and Roles grant, flattened (resourceNames dropped)."""
    out: set[Grant] = set()
    for role in [*rendered.of_kind("ClusterRole"), *rendered.of_kind("Role")]:
        for rule in role["rules"]:
            out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


# ---------------------------------------------------------------- what the operator did


def grant_of(method: str, path: str, status: int = 200) -> Grant | None:
    """The (group, resource, verb) a REST call needs; None for discovery and /version."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # a namespaced resource; "namespaces/<name>" alone is the Namespace
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {"GET": "get" if named else "list", "POST": "create", "PATCH": "patch", "PUT": "update",
            "DELETE": "delete" if named else "deletecollection"}[method]
    if method == "PATCH" and status == 201:
        # A server-side apply that created the object: authorized as create.
        verb = "create"
    return group, resource, verb


@dataclass
class Call:
    """One request of the operator's ``Kube``: what it needed and how the API server answered."""

    method: str
    path: str
    status: int
    message: str = ""


class Recorder:
    """Records every call the operator's ``Kube`` makes, by wrapping its ``request`` method."""

    def __init__(self, kube: Kube) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        real = kube.request

        def request(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            try:
                status, body = real(method, path, **kwargs)
            except ApiError as exc:
                self._add(Call(method, path, exc.status, str(exc)))
                raise
            self._add(Call(method, path, status))
            return status, body

        # Instance attribute: Kube's own methods call self.request, so they go through it.
        kube.request = request  # type: ignore[method-assign]

    def _add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def answered(self, method: str, pattern: str, status: int) -> list[Call]:
        """Calls of *method* whose path matches *pattern* and got *status*."""
        with self._lock:
            return [c for c in self.calls if c.method == method and re.search(pattern, c.path)
                    and c.status == status]


class Records(logging.Handler):
    """Every log record while the operator runs (root logger; kopf at debug for its watch lines)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in list(self.records)]



@contextmanager
def capture_logs() -> Iterator[Records]:
    """Collect every record on the root logger: info and up, kopf's debug lines too."""
    handler = Records()
    root, kopf_logger = logging.getLogger(), logging.getLogger("kopf")
    levels = root.level, kopf_logger.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    kopf_logger.setLevel(logging.DEBUG)  # "Starting the watch-stream ..." is a debug line
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        kopf_logger.setLevel(levels[1])


def kopf_streams(lines: list[str]) -> set[Grant]:
    """list + watch grants behind kopf's watch-streams (each stream lists, then watches)."""
    out: set[Grant] = set()
    for line in lines:
        match = WATCH_STREAM.search(line)
        if match:
            plural, _version, *group = match.group(1).split(".", 2)
            out |= {(group[0] if group else "", plural, verb) for verb in ("list", "watch")}
    return out


# ---------------------------------------------------------------- installing the chart's RBAC


@dataclass
class Installed:
    """The chart's ServiceAccount and RBAC, installed for real, and a token for the account."""

    mode: str
    rendered: Rendered
    release_namespace: str
    watched: str  # the scenario's namespace (the watched one in watchNamespaces mode)
    other: str  # a namespace outside watchNamespaces
    account: str
    token: str
    server: str
    ca_file: str

    def api_client(self) -> kubernetes.client.ApiClient:
        """A client that authenticates as the ServiceAccount only (no client certificate)."""
        config = kubernetes.client.Configuration()
        config.host = self.server
        config.ssl_ca_cert = self.ca_file
        config.verify_ssl = True
        config.api_key = {"authorization": f"Bearer {self.token}"}
        return kubernetes.client.ApiClient(config, pool_threads=4)

    def http(self) -> KubeHTTP:
        return KubeHTTP(self.server, ca_file=self.ca_file, token=self.token)


def request_token(admin: KubeHTTP, namespace: str, account: str) -> str:
    """A bound token for the ServiceAccount from the TokenRequest API."""
    response = admin.request(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 3600}})
    assert response.status == 201, f"TokenRequest: HTTP {response.status}: {response.body!r}"
    token: str = response.json()["status"]["token"]
    return token


@pytest.fixture(scope="module", params=MODES)
def installed(request: pytest.FixtureRequest, envtest: lib.Environment,
              kube_api: kubernetes.client.ApiClient, mesh_crds: list[str]) -> Iterator[Installed]:
    """Render the chart in one mode and install its ServiceAccount and RBAC objects for real."""
    mode: str = request.param
    admin = http_for(kube_api)
    suffix = secrets.token_hex(3)
    release_ns, watched, other = (f"rbac-{name}-{suffix}" for name in ("sys", "app", "other"))
    values: dict[str, Any] = {"mesh": "istio", "enabledMeshes": ["cilium"]}
    if mode == "watch-namespaces":
        values["watchNamespaces"] = [watched]
    with load_chart() as chart:
        # A release name per mode: ClusterRole(Binding) names never collide.
        rendered = render(chart, values, namespace=release_ns, release=f"smi2mesh-rbac-{suffix}")
    kubeconfig = yaml.safe_load(Path(envtest.kubeconfig).read_text(encoding="utf-8"))
    ca_file = kubeconfig["clusters"][0]["cluster"]["certificate-authority"]
    core = kubernetes.client.CoreV1Api(kube_api)
    for name in (release_ns, watched, other):
        core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    try:
        for obj in rendered.objects:
            if obj["kind"] in RBAC_KINDS:
                server_side_apply(admin, obj, field_manager=FIELD_MANAGER)
        account = rendered.one("ServiceAccount")["metadata"]["name"]
        yield Installed(mode, rendered, release_ns, watched, other, account,
                        request_token(admin, release_ns, account), envtest.server, ca_file)
    finally:
        for obj in rendered.objects:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                plural = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
                name = obj["metadata"]["name"]
                admin.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/{plural}/{name}")
        for name in (release_ns, watched, other):
            core.delete_namespace(name)


# ---------------------------------------------------------------- the scenario


@dataclass
class Scenario:
    """What one operator run as the ServiceAccount did."""

    installed: Installed
    calls: list[Call]
    log_lines: list[str]
    statuses: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    failure: str = ""  # the step that timed out, if any (reported after the 403 checks)

    def observed(self) -> set[Grant]:
        """Grants the run used: the operator's authorized calls plus kopf's watch-streams."""
        used = {g for c in self.calls if c.status != 403 and (g := grant_of(c.method, c.path, c.status))}
        return used | kopf_streams(self.log_lines)


@pytest.fixture(scope="module")
def scenario(installed: Installed, kube_api: kubernetes.client.ApiClient) -> Scenario:
    """Run the operator's end-to-end scenario as the chart's ServiceAccount."""
    ns = installed.watched
    admin = Cluster(Kube(kube_api))
    lease = installed.rendered.one("Deployment")["metadata"]["name"]  # the chart names the Lease so
    config = OperatorConfig(mesh="istio", enabled_meshes=frozenset({"cilium"}),
                            namespaces=() if installed.mode == "all-namespaces" else (ns,),
                            leader_election_namespace=installed.release_namespace,
                            leader_election_lease=lease)
    istio = expected("istio", ns, APP, UDP, SPLIT, TARGET)
    cilium = expected("cilium", ns, APP, UDP, SPLIT, TARGET)
    timings: dict[str, float] = {}
    failure = ""
    statuses: dict[str, dict[str, Any]] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        timings[name] = round(time.monotonic() - start, 2)

    def until(check: Callable[[], Any], what: str) -> None:
        wait_for(check, STEP_TIMEOUT, what, interval=0.2)

    def tamper(objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            admin.patch(obj["apiVersion"], obj["kind"], ns, obj["metadata"]["name"], TAMPER[obj["kind"]])
        until(lambda: up_to_date(admin, objects), "edits reverted")

    def label(mesh: str) -> None:
        admin.apply({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {MESH_LABEL: mesh}}}, ns)

    def smi_status() -> dict[str, dict[str, Any]] | None:
        found: dict[str, dict[str, Any]] = {}
        for doc in yaml.safe_load_all(APP + "---" + UDP + "---" + SPLIT + "---" + TARGET):
            if doc["apiVersion"].split("/")[0].endswith("smi-spec.io"):
                live = admin.get(doc["apiVersion"], doc["kind"], ns, doc["metadata"]["name"]) or {}
                if not (live.get("status") or {}).get("conditions"):
                    return None
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = live["status"]
        return found

    admin.apply(APP + "---" + UDP, ns)
    api = installed.api_client()
    op = RunningOperator(config, api_client=api, elect=True)
    recorder = Recorder(op.kube)
    with capture_logs() as logs:
        try:
            with step("operator ready"):
                op.start(timeout=STEP_TIMEOUT)
            with step("istio objects"):
                admin.apply(SPLIT + "---" + TARGET, ns)
                until(lambda: up_to_date(admin, istio), "istio objects")
            with step("statuses"):
                until(lambda: statuses.update(smi_status() or {}) or len(statuses) == 5,
                      "status on every SMI object")
            with step("drift on istio"):
                tamper(istio)
            with step("swap to cilium"):
                label("cilium")
                until(lambda: up_to_date(admin, cilium) and absent(admin, istio), "cilium replaces istio")
            with step("drift on cilium"):
                tamper(cilium)
            with step("swap back to istio"):
                label("istio")
                until(lambda: up_to_date(admin, istio) and absent(admin, cilium), "istio replaces cilium")
            with step("event"):
                admin.apply(BAD_SPLIT, ns)
                until(lambda: any(e["reason"] == "InvalidSpec" for e in admin.events(ns, "bad-split")),
                      "InvalidSpec Event")
            with step("delete SMI objects"):
                for api_version, kind, name in ((SPLIT_API, "TrafficSplit", "web-split"),
                                                (SPLIT_API, "TrafficSplit", "bad-split"),
                                                (TARGET_API, "TrafficTarget", "web-access")):
                    admin.delete(api_version, kind, ns, name)
                until(lambda: absent(admin, istio), "istio objects pruned")
        except AssertionError as exc:  # a timeout: still report what was forbidden, first
            failure = str(exc)
        finally:
            op.stop()
            api.close()  # type: ignore[no-untyped-call,unused-ignore]
    events = admin.events(ns, "bad-split")
    result = Scenario(installed, list(recorder.calls), logs.lines(), statuses, events, timings, failure)
    del op, api
    print(f"\n[{installed.mode}] step timings (s): {timings}")
    return result


# ---------------------------------------------------------------- tests


def test_operator_runs_as_the_service_account_without_forbidden(scenario: Scenario) -> None:
    """The whole scenario, as the chart's ServiceAccount: no 403 anywhere, statuses and an Event written."""
    forbidden = [line for line in scenario.log_lines if FORBIDDEN.search(line)]
    assert forbidden == [], "forbidden in the operator's logs:\n" + "\n".join(forbidden[:20])
    refused = [f"{c.method} {c.path}: {c.message}" for c in scenario.calls if c.status == 403]
    assert refused == [], "the operator's Kube was refused:\n" + "\n".join(refused[:20])
    assert scenario.failure == "", scenario.failure
    # The status subresource grant: a status patch accepted for every SMI kind ...
    for group, resources in SMI.items():
        for resource in resources:
            assert any(
                c.method == "PATCH" and c.status == 200 and f"/apis/{group}/" in c.path
                and re.search(rf"/{resource}/[^/]+/status$", c.path) for c in scenario.calls), resource
    # ... and visible to an admin, with Ready on the valid policy objects.
    assert set(scenario.statuses) == {"HTTPRouteGroup/routes", "TCPRoute/port", "UDPRoute/dns",
                                      "TrafficSplit/web-split", "TrafficTarget/web-access"}
    for ref in ("TrafficSplit/web-split", "TrafficTarget/web-access"):
        ready = {c["type"]: c for c in scenario.statuses[ref]["conditions"]}["Ready"]
        assert ready["status"] == "True", (ref, ready)
    # The events grant: the InvalidSpec Event was created with the ServiceAccount's token.
    assert any(c.method == "POST" and c.status == 201 and c.path.endswith("/events") for c in scenario.calls)
    assert any(e["reason"] == "InvalidSpec" and e["source"]["component"] == "smi2mesh"
               for e in scenario.events)


def test_every_granted_rule_is_needed(scenario: Scenario) -> None:
    """Each rendered (apiGroup, resource, verb) is used by the scenario or explained in rbac.yaml."""
    table = usage_table(scenario.installed.mode)
    rendered = granted(scenario.installed.rendered)
    assert set(table) == rendered, (
        f"rules without a usage entry: {sorted(rendered - set(table))}; "
        f"entries without a rule: {sorted(set(table) - rendered)}")
    observed = scenario.observed()
    assert observed <= rendered, f"used but not granted: {sorted(observed - rendered)}"
    documented = rbac_comment_keys()
    missing = sorted(g for g, u in table.items() if u.step and g not in observed)
    assert missing == [], f"the table says the scenario uses these, but it did not: {missing}"
    stale = sorted(g for g, u in table.items() if u.unexercised and g in observed)
    assert stale == [], f"now exercised, give them their step in usage_table(): {stale}"
    undocumented = sorted({u.unexercised for u in table.values() if u.unexercised} - documented)
    assert undocumented == [], f"reasons missing from the comment in templates/rbac.yaml: {undocumented}"


def refusals(inst: Installed, kube_api: kubernetes.client.ApiClient) -> dict[str, tuple[str, str, Any]]:
    """Requests outside the grants, by description; writes are dry runs so a wrong grant harms nothing."""
    ns = inst.watched
    mtp = resource_for(http_for(kube_api), "kuma.io/v1alpha1", "MeshTrafficPermission")
    assert mtp is not None, "kuma.io/v1alpha1 MeshTrafficPermission is not served (mesh CRDs)"
    checks: dict[str, tuple[str, str, Any]] = {
        "list secrets cluster-wide": ("GET", "/api/v1/secrets", None),
        "list secrets in the namespace": ("GET", f"/api/v1/namespaces/{ns}/secrets", None),
        "create a ConfigMap": ("POST", f"/api/v1/namespaces/{ns}/configmaps?dryRun=All",
                               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        "delete a CRD": ("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                   "trafficsplits.split.smi-spec.io?dryRun=All", None),
        "write a mesh that is not enabled (kuma)": (
            "POST", f"/apis/kuma.io/v1alpha1/namespaces/{ns}/meshtrafficpermissions?dryRun=All",
            {"apiVersion": "kuma.io/v1alpha1", "kind": "MeshTrafficPermission",
             "metadata": {"name": "x"}, "spec": {}}),
        "write an SMI object (input only)": (
            "POST", f"/apis/split.smi-spec.io/v1alpha4/namespaces/{ns}/trafficsplits?dryRun=All",
            {"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit", "metadata": {"name": "x"},
             "spec": {"service": "web", "backends": [{"service": "web", "weight": 1}]}}),
    }
    if inst.mode == "watch-namespaces":
        checks["list TrafficSplits in another namespace"] = (
            "GET", f"/apis/split.smi-spec.io/v1alpha4/namespaces/{inst.other}/trafficsplits", None)
        checks["list TrafficSplits cluster-wide"] = (
            "GET", "/apis/split.smi-spec.io/v1alpha4/trafficsplits", None)
        checks["get a namespace that is not watched"] = ("GET", f"/api/v1/namespaces/{inst.other}", None)
    return checks


def test_requests_outside_the_grants_are_refused(installed: Installed,
                                                 kube_api: kubernetes.client.ApiClient) -> None:
    """The ServiceAccount's token gets HTTP 403 for everything the chart does not grant."""
    http = installed.http()
    # Controls: the token is the ServiceAccount's and works where granted, so 403 means RBAC said no.
    review = http.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review.status == 201, review.body
    username = review.json()["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{installed.release_namespace}:{installed.account}"
    allowed = http.request(
        "GET", f"/apis/split.smi-spec.io/v1alpha4/namespaces/{installed.watched}/trafficsplits")
    assert allowed.status == 200, allowed.body
    answers = {}
    for what, (method, path, body) in refusals(installed, kube_api).items():
        target, _, query = path.partition("?")
        response = http.request(method, target, body=body,
                                query=dict([query.split("=")]) if query else None)
        answers[what] = response.status
    assert answers == dict.fromkeys(answers, 403)
