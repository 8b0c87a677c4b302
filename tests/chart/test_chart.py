"""The Helm chart renders, lints cleanly and grants exactly the operator's RBAC contract.

Everything here runs offline through Helm's own Go code (see ``chart.py``).
The expected RBAC is computed from ``TRANSLATORS[mesh].emits``, so the chart
(``files/mesh-kinds.yaml``) and the translators cannot drift apart.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from smi2mesh.translators import TRANSLATORS
from tests.chart.chart import (
    CHART_DIR,
    OPERATOR_MESHES,
    RELEASE_NAMESPACE,
    REPO_ROOT,
    Rendered,
    lint_problems,
    load_chart,
    render,
    walk,
)

# (apiGroup, resource, resourceNames, verb): one permission, the unit RBAC is compared in.
Grant = tuple[str, str, tuple[str, ...], str]

READ = ("get", "list", "watch")
WRITE = ("get", "list", "watch", "create", "patch", "delete")

WATCHED = ["team-a", "team-b"]


def grants(
    group: str, resources: Iterable[str], verbs: Iterable[str], names: Iterable[str] = ()
) -> set[Grant]:
    """Every (group, resource, resourceNames, verb) combination."""
    return {(group, resource, tuple(sorted(names)), verb) for resource in resources for verb in verbs}


def namespaced_contract(meshes: Iterable[str]) -> set[Grant]:
    """What the operator needs on namespaced objects (the contract in the operator's brief)."""
    expected: set[Grant] = set()
    smi = {
        "split.smi-spec.io": ["trafficsplits"],
        "access.smi-spec.io": ["traffictargets"],
        "specs.smi-spec.io": ["httproutegroups", "tcproutes", "udproutes"],
    }
    for group, resources in smi.items():
        expected |= grants(group, resources, READ)
        expected |= grants(group, [f"{r}/status" for r in resources], ("patch",))
    expected |= grants("", ["services", "pods", "serviceaccounts"], READ)
    expected |= grants("apps", ["deployments", "statefulsets", "daemonsets"], READ)
    expected |= grants("", ["events"], ("create",))
    for mesh in meshes:
        # Cluster-scoped kinds (Kuma legacy) come from CLI-only profiles: not granted.
        for kind in TRANSLATORS[mesh].emits:
            if kind.namespaced:
                expected |= grants(kind.group, [kind.plural], WRITE)
    return expected


def lease_contract(lease: str) -> set[Grant]:
    """Leader election, in the release namespace: create any Lease, get and update only ours."""
    return (grants("coordination.k8s.io", ["leases"], ("create",))
            | grants("coordination.k8s.io", ["leases"], ("get", "update"), names=[lease]))


def cluster_contract(watch: list[str]) -> set[Grant]:
    """What the operator needs on cluster-scoped objects."""
    expected = grants("apiextensions.k8s.io", ["customresourcedefinitions"], READ)
    if watch:
        expected |= grants("", ["namespaces"], ("get",), names=watch)
        # kopf lists and watches the cluster-scoped Namespace kind cluster-wide even when
        # the operator watches named namespaces (see templates/rbac.yaml).
        expected |= grants("", ["namespaces"], ("list", "watch"))
    else:
        expected |= grants("", ["namespaces"], READ)
    return expected


def granted(role: Mapping[str, Any]) -> set[Grant]:
    """The permissions a Role or ClusterRole grants, flattened."""
    result: set[Grant] = set()
    for rule in role.get("rules") or []:
        assert "nonResourceURLs" not in rule, f"{role['metadata']['name']}: unexpected nonResourceURLs"
        for group in rule["apiGroups"]:
            result |= grants(group, rule["resources"], rule["verbs"], rule.get("resourceNames") or ())
    return result


def enabled(values: Mapping[str, Any]) -> list[str]:
    """The meshes a values set enables (default mesh first, as the chart does)."""
    return list(dict.fromkeys([values.get("mesh", "istio"), *values.get("enabledMeshes", [])]))


def env_of(rendered: Rendered) -> dict[str, str]:
    """Environment of the operator container."""
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] if "value" in item
            else f"fieldRef:{item['valueFrom']['fieldRef']['fieldPath']}" for item in container["env"]}


# Value sets every structural test runs on.
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    **{f"mesh-{mesh}": {"mesh": mesh} for mesh in OPERATOR_MESHES},
    "watch-namespaces": {"watchNamespaces": WATCHED},
    "watch-namespaces-linkerd": {
        "mesh": "linkerd",
        "watchNamespaces": WATCHED,
    },
    "all-meshes": {
        "mesh": "cilium",
        "enabledMeshes": [m for m in OPERATOR_MESHES if m != "cilium"],
    },
    "one-replica-no-election": {
        "replicas": 1,
        "leaderElection": {"enabled": False, "leaseDuration": 15, "renewDeadline": 10, "retryPeriod": 2},
    },
    "everything-optional": {
        "metrics": {"enabled": True, "port": 9090, "serviceMonitor": {"enabled": True, "interval": "15s",
                                                                         "labels": {"release": "prom"}}},
        "crds": {"install": False, "keep": False},
        "serviceAccount": {"create": False, "name": "existing"},
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "podAnnotations": {"example.com/team": "mesh"},
    },
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    """The chart, loaded once per module."""
    with load_chart() as loaded:
        yield loaded


# ---------------------------------------------------------------- render and lint


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_renders_and_lints_clean(chart: helm.Chart, values: dict[str, Any]) -> None:
    """Every value set renders valid objects and ``helm lint`` reports no warning or error."""
    rendered = render(chart, values)
    assert rendered.one("Deployment")
    assert lint_problems(values) == []


def test_lint_defaults_clean() -> None:
    """``helm lint charts/smi2mesh`` with the chart's own defaults."""
    assert lint_problems() == []


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_common_labels(chart: helm.Chart, values: dict[str, Any]) -> None:
    """Every object carries the app.kubernetes.io labels from _helpers.tpl (CRDs from crds/ excepted)."""
    rendered = render(chart, values)
    for obj in rendered.objects:
        if str(obj["metadata"]["name"]).endswith("smi-spec.io"):
            continue  # byte copies of crds/, see test_chart_crds_equal_repository_crds
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/name") == "smi2mesh", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/instance") == "smi2mesh"
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"
        assert labels.get("app.kubernetes.io/version") == chart.metadata["appVersion"]


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("values", "path", "reason"),
    [
        ({"mesh": "smi"}, "/mesh", "value must be one of"),
        ({"mesh": "nginx"}, "/mesh", "value must be one of"),
        ({"enabledMeshes": ["istio", "traefik"]}, "/enabledMeshes/1", "value must be one of"),
        ({"watchNamespaces": "ns"}, "/watchNamespaces", "want array"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0", "does not match pattern"),
        ({"metrics": {"enabled": "yes"}}, "/metrics/enabled", "want boolean"),
        ({"metrics": {"port": 70000}}, "/metrics/port", "maximum"),
        ({"health": {"port": "8081"}}, "/health/port", "want integer"),
        ({"logLevel": "verbose"}, "/logLevel", "value must be one of"),
        ({"consulNamespaces": "prefix"}, "/consulNamespaces", "value must be one of"),
        ({"consulNamespaces": False}, "/consulNamespaces", "want string"),
        ({"widenL7ToL4": "yes"}, "/widenL7ToL4", "want boolean"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", "value must be one of"),
        ({"crds": {"install": "false"}}, "/crds/install", "want boolean"),
        ({"replicas": 0}, "/replicas", "minimum"),
        ({"replicas": "2"}, "/replicas", "want integer"),
        ({"leaderElection": {"enabled": "yes"}}, "/leaderElection/enabled", "want boolean"),
        ({"leaderElection": {"enabled": True, "leaseDuration": 1.5, "renewDeadline": 1, "retryPeriod": 1}},
         "/leaderElection/leaseDuration", "want integer"),
        ({"peering": {"enabled": True, "name": "smi2mesh"}}, "",
         "additional properties 'peering' not allowed"),
        ({"metrics": {"serviceMonitor": {"enabled": True, "scrape": "1m"}}},
         "/metrics/serviceMonitor", "additional properties 'scrape' not allowed"),
    ],
)
def test_schema_rejects_bad_values(chart: helm.Chart, values: dict[str, Any], path: str, reason: str) -> None:
    """Bad values fail install-time validation with a message naming the value's path."""
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.render(values, name="smi2mesh", namespace=RELEASE_NAMESPACE)
    message = str(raised.value)
    assert f"at '{path}'" in message, message
    assert reason in message, message


def test_schema_covers_every_value(chart: helm.Chart) -> None:
    """values.yaml and values.schema.json describe the same top-level keys."""
    schema = chart.schema
    assert schema is not None
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) - {"global"} == set(chart.values)
    assert schema["definitions"]["mesh"]["enum"] == list(OPERATOR_MESHES)
    assert set(OPERATOR_MESHES) == set(TRANSLATORS) - {"smi"}, "a new mesh must be added to the chart"


# ---------------------------------------------------------------- documentation


def leaf_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the values (free-form maps and lists count as one value)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in {"resources", "labels"}:
            yield from leaf_paths(value, f"{path}.")
        else:
            yield path


def test_every_value_documented() -> None:
    """Each value has a comment in values.yaml and a row in the README's values table."""
    values_text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(values_text)
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, flags=re.MULTILINE))
    paths = list(leaf_paths(values))
    assert sorted(set(paths) - documented) == [], "values missing from the README values table"
    assert sorted(documented - set(paths)) == [], "README documents values the chart does not have"
    leaves = set(paths)
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    lines = values_text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z]\w*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        stack = [(i, key) for i, key in stack if i < indent]
        stack.append((indent, match.group(2)))
        path = ".".join(key for _, key in stack)
        if path in leaves and not lines[index - 1].lstrip().startswith("#"):
            pytest.fail(f"values.yaml line {index + 1}: {path} has no comment above it")


# ---------------------------------------------------------------- metadata


def test_app_version_matches_package_version(chart: helm.Chart) -> None:
    """Chart.yaml appVersion is the version in pyproject.toml (and so the default image tag)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert chart.metadata["appVersion"] == project["project"]["version"]
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.metadata["type"] == "application"


def test_image_tag_defaults_to_app_version(chart: helm.Chart) -> None:
    """An empty image.tag means the chart's appVersion; a set tag wins."""
    container = render(chart).one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/smi2mesh/smi2mesh:{chart.metadata['appVersion']}"
    custom = render(chart, {"image": {"repository": "registry.local/smi2mesh", "tag": "dev",
                                      "pullPolicy": "Always"}})
    container = custom.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/smi2mesh:dev"
    assert container["imagePullPolicy"] == "Always"


# ---------------------------------------------------------------- deployment


def test_deployment_shape(chart: helm.Chart) -> None:
    """Two replicas rolled one at a time, probes on the health port, metrics Service on the metrics port."""
    rendered = render(chart, {
        "metrics": {"enabled": True, "port": 9100, "serviceMonitor": {"enabled": False}},
        "health": {"port": 9101},
    })
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 9100, "health": 9101}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    # Configuration comes from the environment only; the image's ENTRYPOINT is `smi2mesh run`.
    assert "command" not in container
    assert "args" not in container
    service = rendered.one("Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics",
                                         "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert rendered.of_kind("ServiceMonitor") == []
    assert render(chart, {"metrics": {"enabled": False, "port": 8080,
                                      "serviceMonitor": {"enabled": True}}}).of_kind("Service") == []


def test_service_monitor(chart: helm.Chart) -> None:
    """The optional ServiceMonitor scrapes the metrics Service with the given interval and labels."""
    rendered = render(chart, CASES["everything-optional"])
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    service = rendered.one("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_environment_all_namespaces(chart: helm.Chart) -> None:
    """Values reach the operator as the SMI2MESH_* variables of its contract."""
    env = env_of(render(chart, {
        "mesh": "kuma", "enabledMeshes": ["istio", "kuma"], "trustDomain": "corp.example",
        "clusterDomain": "k8s.local", "logLevel": "debug", "consulNamespaces": "mirror",
        "widenL7ToL4": True, "meshVersions": {"kuma": "2.14", "istio": "1.21"},
        "gatewayApiVersion": "1.5.1",
    }))
    assert env == {
        "POD_NAME": "fieldRef:metadata.name",
        "POD_NAMESPACE": "fieldRef:metadata.namespace",
        "SMI2MESH_LEADER_ELECTION": "true",
        "SMI2MESH_LEADER_ELECTION_NAMESPACE": RELEASE_NAMESPACE,
        "SMI2MESH_LEADER_ELECTION_LEASE": "smi2mesh",
        "SMI2MESH_LEASE_DURATION": "15",
        "SMI2MESH_RENEW_DEADLINE": "10",
        "SMI2MESH_RETRY_PERIOD": "2",
        "SMI2MESH_MESH": "kuma",
        "SMI2MESH_ALL_NAMESPACES": "true",
        "SMI2MESH_ENABLED_MESHES": "kuma,istio",
        "SMI2MESH_TRUST_DOMAIN": "corp.example",
        "SMI2MESH_CLUSTER_DOMAIN": "k8s.local",
        "SMI2MESH_METRICS_PORT": "8080",
        "SMI2MESH_HEALTH_PORT": "8081",
        "SMI2MESH_LOG_LEVEL": "debug",
        "SMI2MESH_CONSUL_NAMESPACES": "mirror",
        "SMI2MESH_WIDEN_L7_TO_L4": "true",
        "SMI2MESH_MESH_VERSION": "istio=1.21,kuma=2.14",
        "SMI2MESH_GATEWAY_API_VERSION": "1.5.1",
    }


def test_environment_watch_namespaces(chart: helm.Chart) -> None:
    """watchNamespaces becomes SMI2MESH_NAMESPACES."""
    env = env_of(render(chart, CASES["watch-namespaces-linkerd"]))
    assert env["SMI2MESH_NAMESPACES"] == "team-a,team-b"
    assert "SMI2MESH_ALL_NAMESPACES" not in env


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_pod_security_restricted(chart: helm.Chart, values: dict[str, Any]) -> None:
    """The pod spec meets every check of the Pod Security Standard "restricted" profile."""
    spec = render(chart, values).one("Deployment")["spec"]["template"]["spec"]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532
    assert pod["runAsGroup"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    # Baseline checks the restricted profile includes.
    for forbidden in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert not spec.get(forbidden), forbidden
    assert "sysctls" not in pod
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for volume in volumes.values():  # restricted allows only these volume types
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected", "downwardAPI",
                                           "persistentVolumeClaim", "ephemeral", "csi"}
    containers = spec["containers"] + spec.get("initContainers", [])
    for container in containers:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert not sc.get("privileged")
        assert sc.get("runAsUser", 65532) != 0
        assert "seccompProfile" not in sc or sc["seccompProfile"]["type"] in {"RuntimeDefault", "Localhost"}
        assert all("hostPort" not in port for port in container.get("ports", []))
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be a writable emptyDir"


# ---------------------------------------------------------------- RBAC


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_rbac_is_exactly_the_contract(chart: helm.Chart, values: dict[str, Any]) -> None:
    """ClusterRole / Roles grant exactly what the operator calls, scoped per mode."""
    rendered = render(chart, values)
    watch = list(values.get("watchNamespaces", []))
    namespaced = namespaced_contract(enabled(values))
    cluster = cluster_contract(watch)
    cluster_role = rendered.one("ClusterRole")
    lease_roles = [r for r in rendered.of_kind("Role") if r["metadata"]["name"].endswith("-leader-election")]
    roles = [r for r in rendered.of_kind("Role") if r not in lease_roles]
    if values.get("leaderElection", {}).get("enabled", True):
        (lease_role,) = lease_roles
        assert lease_role["metadata"]["namespace"] == RELEASE_NAMESPACE
        assert granted(lease_role) == lease_contract("smi2mesh")
    else:
        assert lease_roles == []
    if watch:
        assert granted(cluster_role) == cluster
        assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(watch)
        for role in roles:
            assert granted(role) == namespaced, role["metadata"]["namespace"]
    else:
        assert roles == [], "all-namespaces mode uses a ClusterRole only"
        assert granted(cluster_role) == namespaced | cluster
    # Bindings tie each role to the operator's ServiceAccount and nothing else.
    account = rendered.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}]
    binding = rendered.one("ClusterRoleBinding")
    assert binding["subjects"] == subject
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": cluster_role["metadata"]["name"]}
    bindings = rendered.of_kind("RoleBinding")
    assert len(bindings) == len(roles) + len(lease_roles)
    for item in bindings:
        assert item["subjects"] == subject
        assert item["roleRef"]["kind"] == "Role"


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_rbac_has_no_dangerous_grants(chart: helm.Chart, values: dict[str, Any]) -> None:
    """No wildcards, no secrets, no webhook configurations, no escalation verbs, anywhere."""
    rendered = render(chart, values)
    for role in [*rendered.of_kind("ClusterRole"), *rendered.of_kind("Role")]:
        nodes = {str(node) for node in walk(role["rules"])}
        assert "*" not in nodes
        for forbidden in ("secrets", "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
                          "escalate", "bind", "impersonate", "serviceaccounts/token", "pods/exec"):
            assert forbidden not in nodes, f"{role['kind']} grants {forbidden}"


def test_rbac_rules_have_reasons() -> None:
    """Each rule in the templates is preceded by a comment saying why it exists."""
    text = (CHART_DIR / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    rendered_rules = text.split("smi2mesh.namespacedRules\" -}}", 1)[1]
    lines = rendered_rules.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("- apiGroups:")]
    assert starts
    for index in starts:
        previous = next(
            line for line in reversed(lines[:index]) if line.strip() and not line.startswith("{{")
        )
        assert previous.startswith(("#", "  verbs:")), f"rule without a reason: {lines[index]}"


# ---------------------------------------------------------------- CRDs


def repo_crd_files() -> dict[str, bytes]:
    """``crds/*.yaml`` by file name."""
    return {path.name: path.read_bytes() for path in sorted((REPO_ROOT / "crds").glob("*.yaml"))}


def test_chart_crds_equal_repository_crds() -> None:
    """charts/smi2mesh/files/crds/ is a byte-for-byte copy of crds/ (the single source of truth).

    Refresh it with: cp crds/*.yaml charts/smi2mesh/files/crds/
    """
    chart_files = {path.name: path.read_bytes() for path in sorted((CHART_DIR / "files" / "crds").glob("*"))}
    expected = repo_crd_files()
    assert expected, "crds/ is empty"
    assert sorted(chart_files) == sorted(expected), "run: cp crds/*.yaml charts/smi2mesh/files/crds/"
    for name, data in expected.items():
        assert chart_files[name] == data, f"{name} differs; run: cp crds/*.yaml charts/smi2mesh/files/crds/"


@pytest.mark.parametrize("keep", [True, False])
def test_rendered_crds_are_the_repository_crds(chart: helm.Chart, keep: bool) -> None:
    """The chart renders each SMI CRD as in crds/, plus the keep annotation when crds.keep."""
    rendered = render(chart, {"crds": {"install": True, "keep": keep}})
    smi = {crd["metadata"]["name"]: crd for crd in rendered.of_kind("CustomResourceDefinition")
           if crd["spec"]["group"].endswith("smi-spec.io")}
    expected = {}
    for data in repo_crd_files().values():
        crd = yaml.safe_load(data)
        if keep:
            crd["metadata"]["annotations"] = {"helm.sh/resource-policy": "keep"}
        expected[crd["metadata"]["name"]] = crd
    assert smi == expected


def test_crds_install_false_renders_no_smi_crd(chart: helm.Chart) -> None:
    """crds.install: false leaves SMI CRDs to whoever installed them (OSM, Flagger, ...)."""
    rendered = render(chart, {"crds": {"install": False, "keep": True}})
    assert [crd["metadata"]["name"] for crd in rendered.of_kind("CustomResourceDefinition")] == []
    assert rendered.templates["smi2mesh/templates/crds.yaml"].strip() == ""


def test_high_availability_objects(chart: helm.Chart) -> None:
    """Two replicas: a PDB keeping one, anti-affinity across nodes; one replica: neither."""
    rendered = render(chart)
    (pdb,) = rendered.of_kind("PodDisruptionBudget")
    deployment = rendered.one("Deployment")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    single = render(chart, {"replicas": 1})
    assert single.of_kind("PodDisruptionBudget") == [], "a PDB on one replica would block every drain"
    assert "affinity" not in single.one("Deployment")["spec"]["template"]["spec"]
    # One replica keeps its standby-free rolling update: the new pod waits as a standby.
    assert single.one("Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    custom = render(chart, {"affinity": {"nodeAffinity": {"x": 1}}})
    assert custom.one("Deployment")["spec"]["template"]["spec"]["affinity"] == {"nodeAffinity": {"x": 1}}


def test_without_leader_election_one_replica_and_recreate(chart: helm.Chart) -> None:
    """leaderElection off: Recreate (never two writers), no Lease RBAC; replicas > 1 refused."""
    off = {"enabled": False, "leaseDuration": 15, "renewDeadline": 10, "retryPeriod": 2}
    rendered = render(chart, {"replicas": 1, "leaderElection": off})
    assert rendered.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(rendered)["SMI2MESH_LEADER_ELECTION"] == "false"
    assert not [r for r in rendered.of_kind("Role") if "leases" in str(r["rules"])]
    with pytest.raises(Exception, match=r"replicas > 1 needs leaderElection\.enabled"):
        chart.render({"leaderElection": off}, name="smi2mesh", namespace=RELEASE_NAMESPACE)
    with pytest.raises(Exception, match=r"leaseDuration > renewDeadline > retryPeriod"):
        chart.render({"leaderElection": {**off, "enabled": True, "renewDeadline": 15}},
                     name="smi2mesh", namespace=RELEASE_NAMESPACE)
    assert not [o for o in render(chart).objects if str(o["apiVersion"]).startswith("kopf.dev")]


def test_mesh_kinds_file_matches_translators() -> None:
    """files/mesh-kinds.yaml, which the RBAC templates read, lists each mesh's namespaced ``emits``."""
    kinds = yaml.safe_load((CHART_DIR / "files" / "mesh-kinds.yaml").read_text(encoding="utf-8"))
    expected: dict[str, dict[str, list[str]]] = {}
    for mesh in OPERATOR_MESHES:
        groups: dict[str, list[str]] = {}
        for kind in TRANSLATORS[mesh].emits:
            if kind.namespaced:
                groups.setdefault(kind.group, []).append(kind.plural)
        expected[mesh] = {group: sorted(set(plurals)) for group, plurals in groups.items()}
    assert {mesh: {g: sorted(r) for g, r in groups.items()} for mesh, groups in kinds.items()} == expected


def test_notes_render(chart: helm.Chart) -> None:
    """NOTES.txt summarises the configuration after install."""
    notes = render(chart, {"watchNamespaces": WATCHED}).templates["smi2mesh/templates/NOTES.txt"]
    assert "team-a, team-b" in notes
    assert "Default mesh:   istio" in notes


def test_chart_has_no_helm_crds_folder() -> None:
    """SMI CRDs are templates (crds.install); a crds/ folder in the chart would bypass that flag."""
    assert not (CHART_DIR / "crds").exists()
    assert Path(CHART_DIR / "templates" / "crds.yaml").is_file()
