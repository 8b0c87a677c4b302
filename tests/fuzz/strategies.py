"""Hypothesis strategies for SMI document sets, as ``yaml.safe_load_all`` would return them.

A document set is one small "world": TrafficSplits, TrafficTargets,
HTTPRouteGroups, TCPRoutes and UDPRoutes of every version, in both layouts
(top-level fields or ``spec``), with the Services, workloads and unrelated
objects that surround them in a real repository. Names come from small pools
so that references resolve and generated requests hit the rules.

The generators are valid by construction and a separate mutation step
corrupts a few fields (wrong types, out-of-range numbers, regexes RE2
rejects, bad names, missing fields, unknown fields, whole documents), so
that a good share of examples still parse and reach the translators, where
the interesting properties live.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import strategies as st

Doc = dict[str, Any]
# One step into a document: a mapping key or a list index.
Step = str | int

SPLIT_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
ACCESS_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3")
SPECS_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")

SERVICE_ACCOUNTS = ("a", "b", "c", "default")
ROOT_SERVICES = ("web", "api")
BACKEND_SERVICES = ("web-v1", "web-v2", "web-v3", "api")
GROUPS = ("g1", "g2")
TCP_ROUTES = ("t1", "t2")
UDP_ROUTES = ("u1",)
PORTS = (53, 80, 8080, 9090)
METHODS = ("*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
# Valid RE2 path regexes, literal and not; SMI anchors them at the start only.
PATH_REGEXES: tuple[str, ...] = (
    "/api", "/api/.*", "/api$", "/v[0-9]+/x", ".*", "/metrics", "/a|/b", "^/health$", "/",
    "/x*y", "/api/v1\\.json", "(/a)(/b)?", "/caf\u00e9", "/[a-c]+", "/api/", "",
    # Edge cases: only the empty path, an empty alternative, flags, classes, odd characters.
    "$", "^$", "|/api", "(?i)/API", "/api/[^/]+$", "\\/api", "/\\d+", "^/", "/a b", "/a#b", "//x", "/./",
    "/a%2Fb", "/\U0001f600",
)
# Path regexes that trigger bugs already reproduced in test_regressions.py; a long
# run can leave them out (SMI2MESH_FUZZ_AVOID_KNOWN=1) to look past them.
KNOWN_BUG_PATHS = ("$", "^$")
if os.environ.get("SMI2MESH_FUZZ_AVOID_KNOWN"):
    PATH_REGEXES = tuple(p for p in PATH_REGEXES if p not in KNOWN_BUG_PATHS)
HEADER_NAMES = ("x-a", "X-B", "user-agent", "x-user")
HEADER_REGEXES = (
    "a", "a.*", ".*a", ".*", "a|b", "[0-9]+", "^b$", "x*", "", "Mozilla/5\\.0.*", "caf\u00e9",
    "a b", " ", "^$", ".+", "(?i)abc", "\\d+", "\U0001f600", "a\"b",
)
SELECTORS: tuple[dict[str, str], ...] = (
    {"app": "a"}, {"app": "b"}, {"app": "c"}, {"app": "a", "track": "x"}, {"tier": "web"},
)
WORKLOAD_KINDS = (
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"), ("batch/v1", "Job"), ("batch/v1", "CronJob"), ("v1", "Pod"),
)

# Values the mutation step writes over a field: wrong types, boundary and
# out-of-range numbers, names the API server rejects, regexes RE2 rejects.
NASTY_SCALARS: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 65535, 65536, 70000, 2**31, 2**63, -(2**63), 10**30, 1.5, -0.5, 0.0001,
    float("nan"), float("inf"), float("-inf"), "", " ", "0", "-5", "80", " 80 ", "0x50", "1e400", "1e18",
    "1e19", "500m", "0.5", "1Ki", "-1", "+3", "1.5.5", "abc", "ABC", "Web", "a" * 64, "a" * 254, "a" * 300,
    "\u00fcn\u00efc\u00f8d\u00e9", "\u540d\u524d", "a b", "a_b", "-a", "a-", "a.b", "(", "(?=x)", "(?!x)",
    "(?<=x)y", "a{1001}", "\\", "[z-a]", "(?P<n>a)\\1", "x**", "*", "GET", "get", "ServiceAccount",
    "HTTPRouteGroup", "TCPRoute", "UDPRoute", "Service", "/api", "\x00", "\ufeff", "\U0001f600",
)
NASTY_CONTAINERS: tuple[Any, ...] = (
    [], {}, [1, 2], {"a": 1}, ["x"], [None], [{}], {"name": "x", "value": "(?!y)"}, {"x-a": 5},
    [{"x-a": "a"}, {"name": "x-b", "value": "b"}], {1: "a"}, {"kind": "ServiceAccount"},
)


def nasty_values() -> st.SearchStrategy[Any]:
    """Anything a careless or hostile manifest might hold in one field."""
    return st.one_of(
        st.sampled_from(NASTY_SCALARS),
        st.sampled_from(NASTY_CONTAINERS).map(copy.deepcopy),
        st.integers(),
        st.floats(),
        st.text(max_size=12),
        st.text(alphabet="/abc.*+?[](){}|^$\\-", max_size=10),  # mostly-regexes, often invalid
        st.lists(st.sampled_from(["a", 1, None, {}]), max_size=3),
        st.integers(0, 400).map(lambda n: [{"service": f"s{i}", "weight": 1} for i in range(n)]),
    )


def _meta(draw: st.DrawFn, name: str, namespace: str | None) -> Doc:
    meta: Doc = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if draw(st.integers(0, 9)) == 0:
        meta["labels"] = {"team": "x", "app.kubernetes.io/part-of": "shop"}
    if draw(st.integers(0, 9)) == 0:
        meta["annotations"] = {"flagger.app/primary": "true"}
    return meta


def _smi(draw: st.DrawFn, api_version: str, kind: str, name: str, namespace: str | None,
         body: Doc, top_level_default: bool) -> Doc:
    """An SMI document with *body* under ``spec`` or at the top level (both are accepted)."""
    top = draw(st.booleans()) if draw(st.integers(0, 3)) == 0 else top_level_default
    doc: Doc = {"apiVersion": api_version, "kind": kind, "metadata": _meta(draw, name, namespace)}
    if top:
        doc.update(body)
    elif bool(body) or draw(st.booleans()):
        doc["spec"] = body
    return doc


def _port_value(draw: st.DrawFn) -> int | str:
    port = draw(st.sampled_from(PORTS))
    return str(port) if draw(st.integers(0, 4)) == 0 else port


@st.composite
def _weight(draw: st.DrawFn, version: str) -> Any:
    if version == "v1alpha1":  # a Kubernetes Quantity
        return draw(st.one_of(
            st.integers(0, 100),
            st.sampled_from(["500m", "1", "1.5", "2k", "0", "100m", "1Ki", "1e2", "250m", "0.1"]),
            st.sampled_from([0.5, 1.0, 2.25, 33.3]),
        ))
    if draw(st.integers(0, 7)) == 0:  # a Quantity, as linkerd-smi serves v1alpha1 as v1alpha2
        return draw(st.sampled_from(["500m", "1500m", "0.5", "2k", "-1", "1Ki"]))
    weight = draw(st.integers(0, 1000) | st.sampled_from([1, 50, 100, 10**6, 10**9]))
    return str(weight) if draw(st.integers(0, 5)) == 0 else weight


def _host(draw: st.DrawFn, name: str, namespace: str | None) -> str:
    """A Service as a split names it: mostly a bare name, else a hostname of any kind."""
    ns = namespace or "default"
    return draw(st.sampled_from([
        name, name, name, name, name, name, f"{name}.{ns}", f"{name}.{ns}.svc",
        f"{name}.{ns}.svc.cluster.local", f"{name}.other", f"{name}.example.com",
        f"{name}.{ns}.svc.corp.internal",
    ]))


@st.composite
def traffic_splits(draw: st.DrawFn, name: str, namespace: str | None, groups: tuple[str, ...]) -> Doc:
    """A TrafficSplit of any version; weights positive in most draws."""
    version = draw(st.sampled_from(SPLIT_VERSIONS))
    services = draw(st.lists(st.sampled_from(BACKEND_SERVICES), min_size=1, max_size=4, unique=True))
    backends = [{"service": _host(draw, s, namespace), "weight": draw(_weight(version))}
                for s in services]
    body: Doc = {"service": _host(draw, draw(st.sampled_from(ROOT_SERVICES)), namespace),
                 "backends": backends}
    if version in ("v1alpha3", "v1alpha4") and groups and draw(st.booleans()):
        refs = draw(st.lists(st.sampled_from(groups), min_size=1, max_size=2, unique=True))
        body["matches"] = [
            {"kind": "HTTPRouteGroup", "name": g, **({"apiGroup": "specs.smi-spec.io"} if i else {})}
            for i, g in enumerate(refs)
        ]
    return _smi(draw, f"split.smi-spec.io/{version}", "TrafficSplit", name, namespace, body, False)


@st.composite
def _headers(draw: st.DrawFn) -> Any:
    pairs = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.sampled_from(HEADER_REGEXES)),
                          min_size=1, max_size=2, unique_by=lambda p: p[0].lower()))
    shape = draw(st.sampled_from(["map", "list", "name-value"]))
    if shape == "map":
        return dict(pairs)
    if shape == "list":
        return [{n: v} for n, v in pairs]
    return [{"name": n, "value": v} for n, v in pairs]


@st.composite
def http_route_groups(draw: st.DrawFn, name: str, namespace: str | None) -> Doc:
    """An HTTPRouteGroup of any version with up to four named matches."""
    version = draw(st.sampled_from(SPECS_VERSIONS))
    matches: list[Doc] = []
    for i in range(draw(st.integers(0, 4))):
        m: Doc = {"name": f"m{i}"}
        if draw(st.booleans()):
            m["methods"] = draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True))
        if draw(st.integers(0, 3)):
            m["pathRegex"] = draw(st.sampled_from(PATH_REGEXES))
        if version != "v1alpha1" and draw(st.integers(0, 2)) == 0:
            m["headers"] = draw(_headers())
        matches.append(m)
    body: Doc = {"matches": matches} if bool(matches) or draw(st.booleans()) else {}
    return _smi(draw, f"specs.smi-spec.io/{version}", "HTTPRouteGroup", name, namespace, body,
                version in ("v1alpha1", "v1alpha2"))


@st.composite
def port_routes(draw: st.DrawFn, kind: str, name: str, namespace: str | None) -> Doc:
    """A TCPRoute (any version) or a UDPRoute (v1alpha4 only)."""
    version = "v1alpha4" if kind == "UDPRoute" else draw(st.sampled_from(SPECS_VERSIONS))
    body: Doc = {}
    if version == "v1alpha4" and draw(st.integers(0, 3)):
        ports = [_port_value(draw) for _ in range(draw(st.integers(0, 3)))]
        body["matches"] = {"ports": ports, **({"name": "m"} if draw(st.booleans()) else {})}
    return _smi(draw, f"specs.smi-spec.io/{version}", kind, name, namespace, body, False)


def _subject(draw: st.DrawFn, namespace: str | None, dest: bool) -> Doc:
    sa = draw(st.sampled_from(SERVICE_ACCOUNTS))
    subject: Doc = {"kind": "ServiceAccount", "name": sa}
    if dest:
        if draw(st.integers(0, 3)) == 0 and namespace is not None:
            subject["namespace"] = namespace
    else:
        ns = draw(st.sampled_from([None, namespace, "other"]))
        if ns is not None:
            subject["namespace"] = ns
    return subject


@st.composite
def traffic_targets(draw: st.DrawFn, name: str, namespace: str | None) -> Doc:
    """A TrafficTarget of any version; rules name routes that usually exist."""
    version = draw(st.sampled_from(ACCESS_VERSIONS))
    dest = _subject(draw, namespace, dest=True)
    # destination.port belongs to v1alpha1/v1alpha2 but is honoured in every version.
    if draw(st.integers(0, 3 if version != "v1alpha3" else 8)) == 0:
        dest["port"] = _port_value(draw)
    rules: list[Doc] = []
    for _ in range(draw(st.integers(0, 3) | st.integers(1, 2))):
        kind = draw(st.sampled_from(["HTTPRouteGroup", "HTTPRouteGroup", "TCPRoute", "UDPRoute"]))
        pool = {"HTTPRouteGroup": GROUPS, "TCPRoute": TCP_ROUTES, "UDPRoute": UDP_ROUTES}[kind]
        rule: Doc = {"kind": kind, "name": draw(st.sampled_from([*pool, "missing"]))}
        if kind == "HTTPRouteGroup" and draw(st.booleans()):
            rule["matches"] = draw(st.lists(st.sampled_from(["m0", "m1", "m2", "m3", "nope"]),
                                            max_size=2, unique=True))
        rules.append(rule)
    count = draw(st.integers(0, 3) | st.just(1))
    sources = [_subject(draw, namespace, dest=False) for _ in range(count)]
    rules_field = "specs" if version == "v1alpha1" else "rules"
    body: Doc = {"destination": dest, "sources": sources, rules_field: rules}
    return _smi(draw, f"access.smi-spec.io/{version}", "TrafficTarget", name, namespace, body,
                version == "v1alpha1")


@st.composite
def services(draw: st.DrawFn, name: str, namespace: str | None) -> Doc:
    """A core/v1 Service, context for ports and backends."""
    ports: list[Doc] = []
    for i, port in enumerate(draw(st.lists(st.sampled_from(PORTS), max_size=3, unique=True))):
        p: Doc = {"port": port, "targetPort": port}
        style = draw(st.integers(0, 3))
        if style == 0:
            p["name"] = f"http-{i}"
        elif style == 1:
            p["appProtocol"] = draw(st.sampled_from(["http", "grpc", "tcp", "kubernetes.io/h2c"]))
        elif style == 2:
            p["name"] = f"tcp-{i}"
        if port == 53 and draw(st.booleans()):
            p["protocol"] = "UDP"
        ports.append(p)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(draw, name, namespace),
            "spec": {"selector": draw(st.sampled_from(SELECTORS)), "ports": ports}}


@st.composite
def workloads(draw: st.DrawFn, name: str, namespace: str | None) -> Doc:
    """A Pod or a pod-template workload running as one of the ServiceAccounts."""
    api_version, kind = draw(st.sampled_from(WORKLOAD_KINDS))
    selector = dict(draw(st.sampled_from(SELECTORS)))
    labels = {**selector, **draw(st.sampled_from([{}, {"tier": "web"}, {"track": "x"}]))}
    pod_spec: Doc = {"containers": [{"name": "app", "image": "busybox"}]}
    sa = draw(st.sampled_from([*SERVICE_ACCOUNTS, None]))
    if sa is not None:
        pod_spec["serviceAccount" if draw(st.integers(0, 5)) == 0 else "serviceAccountName"] = sa
    meta = _meta(draw, name, namespace)
    if kind == "Pod":
        meta["labels"] = labels
        return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": pod_spec}
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    spec: Doc = {"selector": {"matchLabels": selector}, "template": template}
    if kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": spec}}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}


def _noise(namespace: str | None) -> st.SearchStrategy[Doc]:
    """Objects of other API groups, passed over by the parser."""
    meta: Doc = {"name": "noise", **({"namespace": namespace} if namespace else {})}
    return st.sampled_from([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": {}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {**meta, "name": "a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    ]).map(copy.deepcopy)


@st.composite
def valid_worlds(draw: st.DrawFn) -> list[Doc]:
    """A document set that is valid as far as the generators know."""
    namespace = draw(st.sampled_from([None, "ns", "ns"]))  # None: metadata without namespace

    def ns() -> str | None:
        # A few objects live elsewhere: references across namespaces must not resolve.
        return "other" if draw(st.integers(0, 14)) == 0 else namespace

    docs: list[Doc] = []
    groups = tuple(g for g in GROUPS if draw(st.integers(0, 4)))
    docs += [draw(http_route_groups(g, namespace)) for g in groups]
    docs += [draw(port_routes("TCPRoute", t, ns())) for t in TCP_ROUTES if draw(st.integers(0, 3))]
    docs += [draw(port_routes("UDPRoute", u, ns())) for u in UDP_ROUTES if draw(st.integers(0, 2))]
    docs += [draw(traffic_splits(f"ts{i}", namespace, groups)) for i in range(draw(st.integers(0, 2)))]
    docs += [draw(traffic_targets(f"tt{i}", ns())) for i in range(draw(st.integers(0, 3)))]
    names = draw(st.lists(st.sampled_from([*ROOT_SERVICES, *BACKEND_SERVICES]), max_size=4, unique=True))
    docs += [draw(services(s, namespace)) for s in names]
    docs += [draw(workloads(f"w{i}", ns())) for i in range(draw(st.integers(0, 5)))]
    if draw(st.integers(0, 4)) == 0:
        docs.append(draw(_noise(namespace)))
    docs = draw(st.permutations(docs))
    if docs and draw(st.integers(0, 9)) == 0:
        # What `kubectl get -o yaml` prints: the parser expands it.
        cut = draw(st.integers(0, len(docs)))
        docs = [*docs[:cut], {"apiVersion": "v1", "kind": "List", "items": docs[cut:]}]
    return docs


# ---- mutation ------------------------------------------------------------------------


def paths(value: Any, prefix: tuple[Step, ...] = ()) -> list[tuple[Step, ...]]:
    """Every path to a field or list item inside *value*."""
    out: list[tuple[Step, ...]] = []
    items: list[tuple[Step, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, sub in items:
        out.append((*prefix, key))
        out.extend(paths(sub, (*prefix, key)))
    return out


def _parent(doc: Any, path: tuple[Step, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated(draw: st.DrawFn, docs: list[Doc]) -> list[Any]:
    """*docs* with one or two corruptions, each a realistic way a manifest goes wrong."""
    out: list[Any] = copy.deepcopy(docs)
    for _ in range(draw(st.integers(1, 2))):
        op = draw(st.sampled_from(
            ["replace", "replace", "replace", "delete", "unknown", "apiversion", "name",
             "duplicate", "not-a-mapping", "both-layouts"]))
        if op == "not-a-mapping" or not out:
            out.insert(draw(st.integers(0, len(out))),
                       draw(st.sampled_from(["text", 42, ["a"], None, {"kind": "TrafficSplit"}])))
            continue
        index = draw(st.integers(0, len(out) - 1))
        doc = out[index]
        if not isinstance(doc, dict):
            continue
        if op == "duplicate":
            out.append(copy.deepcopy(doc))
        elif op == "apiversion":
            doc["apiVersion"] = draw(st.sampled_from([
                "split.smi-spec.io/v1alpha5", "access.smi-spec.io/v1alpha4", "specs.smi-spec.io/v1",
                "specs.smi-spec.io/v1alpha1", "split.smi-spec.io", "", None, 3]))
            if draw(st.booleans()):
                doc["kind"] = draw(st.sampled_from(["TrafficSplits", "UDPRoute", "", None]))
        elif op == "name":
            meta = doc.setdefault("metadata", {})
            if isinstance(meta, dict):
                field = draw(st.sampled_from(["name", "name", "namespace"]))
                if draw(st.integers(0, 4)) == 0:
                    meta.pop(field, None)
                else:
                    meta[field] = draw(st.sampled_from(
                        ["Web", "a" * 64, "a" * 254, "\u00fcber", "a_b", "-a", "a.b", "", 5, None]))
        elif op == "both-layouts":
            spec = doc.get("spec")
            if isinstance(spec, dict) and spec:
                key = draw(st.sampled_from(sorted(spec)))
                doc[key] = copy.deepcopy(spec[key])
            else:
                doc["spec"] = {"x": 1}
        else:
            where = paths(doc)
            if not where:
                continue
            path = where[draw(st.integers(0, len(where) - 1))]
            parent = _parent(doc, path)
            if op == "delete":
                del parent[path[-1]]
            elif op == "unknown" and isinstance(parent, dict):
                key = draw(st.sampled_from(["extra", "Weight", "portNumber", "spec"]))
                parent[key] = draw(nasty_values())
            else:
                parent[path[-1]] = draw(nasty_values())
    return out


@st.composite
def document_sets(draw: st.DrawFn) -> list[Any]:
    """A world, corrupted in 40 % of the draws (some corruptions keep it valid)."""
    docs = draw(valid_worlds())
    if draw(st.integers(0, 99)) < 40:
        return draw(mutated(docs))
    return list(docs)
