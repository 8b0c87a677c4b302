"""Differential semantics: istiod's generated Envoy config answers what tests/access asks.

For every golden case with routing or access meaning (of every mesh's folder:
an input is an input), the case's input is translated for Istio (live), the
objects go through istiod's config generator (``istio-configgen``:
NewConfigGenTest over an in-memory store, ServiceEntries
standing in for Services) and our matcher (:mod:`.envoy`, Python) walks the
RDS routes, outbound listeners and inbound RBAC filters it produced.

Access probes (per TrafficTarget: its sources and an outsider, its pods,
granted and other ports, TCP, UDP and HTTP requests built from its matches
plus near misses) compare three readings of one request:

* istiod's explicit allow (an RBAC filter enforced and let it through) must
  equal our Python evaluator's (``tests.access.istio.allows``);
* whatever istiod lets through (explicitly, or by Istio's allow-all default
  when no policy selects the pod) the SMI oracle must allow, unless a finding
  on that destination says Istio's default applies, or it is UDP (Istio never
  intercepts it);
* what SMI allows and istiod denies must be a reported loss: a finding on a
  TrafficTarget of that destination.

Split probes (per TrafficSplit and root port: a request per match, a miss,
and a TCP connection) compare istiod's clusters and weights with the SMI
meaning: matching requests (all, without matches) spread over the backends
by weight (to within one point: Istio takes whole percentages), everything else on
the root Service.  Sending to the root what SMI would split is allowed only
when the split carries a finding.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import re2

from smi2mesh.errors import InputError
from smi2mesh.findings import Finding, FindingReason
from smi2mesh.model import HTTPMatch, Identity, Inputs, Protocol, SmiKind, TrafficSplit
from smi2mesh.translate import translate
from smi2mesh.translators.base import Options, TranslationResult
from tests.access import HttpRequest, Request, http_match_allows, smi_allows
from tests.access.istio import allows as evaluator_allows
from tests.golden import GOLDEN, Case
from tests.meshcheck.istio import envoy
from tests.meshcheck.istio.istiod import Endpoint, Port, Proxy, ProxyConfig, Scenario, Service, generate

CLIENT = Proxy("client", "meshcheck-client", "10.255.0.1", {"app": "meshcheck-client"}, "client",
               client=True)
OUTSIDER = Identity("meshcheck-outsider", "meshcheck-elsewhere")
# A probe port no TrafficTarget names, to see that grants stay on their ports.
OTHER_PORT = 6543
# istiod's protocols that carry only HTTP (pkg/config/protocol IsHTTP): a plain
# TCP stream there is not HTTP and not a question SMI's split answers.
HTTP_PROTOCOLS = frozenset(("HTTP", "HTTP2", "GRPC", "GRPC-Web", "HTTP_PROXY"))
# Envoy's original-destination cluster: the connection goes to the address the
# client dialled, i.e. the root Service's VIP.
PASSTHROUGH = "PassthroughCluster"
# Why a destination's pods may get no policy (and so Istio's allow-all default).
UNSELECTABLE = frozenset((FindingReason.UNRESOLVED_REFERENCE, FindingReason.AMBIGUOUS_SELECTOR))
# SMI weights are relative; Istio's are whole percentages summing to 100, each
# the exact share rounded down or up, so off by less than one point.
WEIGHT_TOLERANCE = 0.01


def cases() -> list[Case]:
    """Golden cases whose input has a TrafficSplit or a TrafficTarget, of every mesh's folder.

    Inputs kept in several folders (the shared ones) count once, under Istio's.
    """
    out: list[Case] = []
    seen: set[str] = set()
    folders = sorted(GOLDEN.glob("*/*/input.yaml"), key=lambda p: (p.parent.parent.name != "istio", p))
    for path in folders:
        text = path.read_text(encoding="utf-8")
        if text in seen:
            continue
        seen.add(text)
        case = Case(path.parent.parent.name, path.parent)
        try:
            inputs = case.inputs()
        except InputError:  # invalid-input cases have no semantics to compare
            continue
        if inputs.splits or inputs.targets:
            out.append(case)
    return out


# ---- request samples ------------------------------------------------------------------

_META = re.compile(r"[\\^$|?*+()\[\]{}]")


def _candidates(pattern: str) -> list[str]:
    """Strings a regex may match: itself, without metacharacters, simple expansions."""
    bare = _META.sub("", pattern.replace(".*", "").replace(".+", "x").replace("[0-9]+", "7")
                     .replace("[a-z0-9]+", "a7"))
    return list(dict.fromkeys([bare, bare + "x", bare + "/x", pattern, pattern.split("|", 1)[0]]))


def _sample(pattern: str, prefix: bool) -> str:
    """A value SMI's match accepts (prefix-anchored for paths), or a best guess."""
    for value in _candidates(pattern):
        anchored = re2.match(f"(?:{pattern})", value) if prefix else re2.fullmatch(f"(?:{pattern})", value)
        if anchored is not None:
            return value
    return _candidates(pattern)[0]


def requests_for(m: HTTPMatch) -> list[HttpRequest]:
    """A request the match accepts, and near misses (method, path, one header)."""
    path = _sample(m.path_regex, prefix=True) if m.path_regex is not None else "/any"
    if not path.startswith("/"):
        path = "/" + path
    headers = {h.name: _sample(h.value, prefix=False) for h in m.headers}
    method = next((x for x in m.methods if x != "*"), "GET")
    hit = HttpRequest(method, path, headers)
    out = [hit, HttpRequest(method, path + "?q=1", headers)]
    if m.methods and "*" not in m.methods:
        out.append(HttpRequest("DELETE" if "DELETE" not in m.methods else "PATCH", path, headers))
    if m.path_regex is not None:
        out.append(HttpRequest(method, "/zz-miss", headers))
    for name in list(headers)[:2]:
        out.append(HttpRequest(method, path, {k: v for k, v in headers.items() if k != name}))
        out.append(HttpRequest(method, path, {**headers, name: "zz-miss"}))
    return out


# ---- access probes ---------------------------------------------------------------------


def access_probes(inputs: Inputs) -> list[Request]:
    """Requests aimed at every TrafficTarget, hits and misses."""
    out: list[Request] = []
    for tt in inputs.targets:
        ns, sa = tt.destination.namespace, tt.destination.name
        pods = [dict(w.pod_labels) for w in inputs.workloads_of(ns, sa)] or [{"app": "meshcheck-nopod"}]
        pods = [dict(p) for p in {tuple(sorted(p.items())) for p in pods}]
        tcp_ports: set[int] = {80, OTHER_PORT}
        udp_ports: set[int] = set()
        if tt.port is not None:
            tcp_ports.add(tt.port)
        http: list[HttpRequest | None] = [None, HttpRequest("GET", "/")]
        for rule in tt.rules:
            if rule.kind in (SmiKind.TCP_ROUTE, SmiKind.UDP_ROUTE):
                route = inputs.port_route(rule.kind, ns, rule.name)
                if route is not None:
                    (udp_ports if route.protocol is Protocol.UDP else tcp_ports).update(route.ports)
            group = inputs.http_route_group(ns, rule.name) if rule.kind is SmiKind.HTTP_ROUTE_GROUP else None
            for m in group.matches if group is not None else ():
                http.extend(requests_for(m))
        udp_ports.update({53} if udp_ports else set())
        for src, labels in itertools.product([*tt.sources, OUTSIDER], pods):
            for port, req in itertools.product(sorted(tcp_ports), http):
                out.append(Request(src, ns, sa, labels, "TCP", port, req))
            out.extend(Request(src, ns, sa, labels, "UDP", port) for port in sorted(udp_ports))
    unique: dict[str, Request] = {}
    for probe in out:
        unique.setdefault(repr(probe), probe)
    return list(unique.values())


def _variant(req: Request) -> str:
    if req.protocol == "UDP":
        return "udp"
    return "http" if req.http is not None else "tcp"


def access_scenarios(case_id: str, objects: Sequence[Mapping[str, Any]],
                     probes: list[Request]) -> tuple[list[Scenario], list[tuple[str, str]]]:
    """One scenario per variant (HTTP, TCP, UDP ports); a pod proxy per destination pod.

    Also returns, per probe, its scenario and proxy ids.
    """
    where: list[tuple[str, str]] = [("", "")] * len(probes)
    scenarios = []
    for variant in ("http", "tcp", "udp"):
        pods: dict[tuple[str, str, tuple[tuple[str, str], ...]], set[int]] = {}
        for req in probes:
            if _variant(req) == variant:
                labels = tuple(sorted(req.dest_pod_labels.items()))
                key = (req.dest_namespace, req.dest_service_account, labels)
                pods.setdefault(key, set()).add(req.port)
        if not pods:
            continue
        services, proxies = [], []
        ids: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        for i, ((ns, sa, labels), ports) in enumerate(sorted(pods.items())):
            ip = f"10.{1 + i // 250}.{i % 250}.{ {'http': 1, 'tcp': 2, 'udp': 3}[variant] }"
            name = f"meshcheck-pod-{i}"
            protocol = "UDP" if variant == "udp" else "TCP"
            services.append(Service(name, ns, f"240.240.{i // 250}.{i % 250 + 1}",
                                    [Port(p, f"{variant}-{p}", protocol) for p in sorted(ports)],
                                    [Endpoint(ip, dict(labels), sa)]))
            proxies.append(Proxy(name, ns, ip, dict(labels), sa))
            ids[(ns, sa, labels)] = name
        sid = f"{case_id}/{variant}"
        scenarios.append(Scenario(sid, list(objects), services, proxies))
        for n, req in enumerate(probes):
            if _variant(req) == variant:
                where[n] = (sid, ids[(req.dest_namespace, req.dest_service_account,
                                        tuple(sorted(req.dest_pod_labels.items())))])
    return scenarios, where


def peer(src: Identity, trust_domain: str) -> envoy.Peer:
    return envoy.Peer(f"spiffe://{trust_domain}/ns/{src.namespace}/sa/{src.name}")


# ---- split probes -----------------------------------------------------------------------


@dataclass(frozen=True)
class SplitProbe:
    """A request to a root Service port, and what SMI means for it (None: nothing split)."""

    split: TrafficSplit
    host: str
    port: int
    protocol: str
    http: HttpRequest | None
    expected: dict[str, float]


def _host(name: str, ns: str) -> str:
    return f"{name}.{ns}.svc.cluster.local"


def _cluster(name: str, ns: str, port: int) -> str:
    return f"outbound|{port}||{_host(name, ns)}"


def _resolvable(ts: TrafficSplit) -> bool:
    return all(host.service("cluster.local") is not None for _, host in ts.hosts())


def _split_matches(inputs: Inputs, ts: TrafficSplit) -> list[HTTPMatch] | None:
    """The HTTP matches a split selects; None when it has no ``matches`` (everything is split)."""
    if not ts.matches:
        return None
    out: list[HTTPMatch] = []
    for ref in ts.matches:
        group = inputs.http_route_group(ts.meta.namespace, ref.name)
        out.extend(group.matches if group is not None else ())
    return out


def smi_split(inputs: Inputs, ts: TrafficSplit, port: int, http: HttpRequest | None) -> dict[str, float]:
    """SMI's answer: backend clusters by relative weight, or the root Service alone."""
    ns = ts.meta.namespace
    matches = _split_matches(inputs, ts)
    split = matches is None or (http is not None and any(http_match_allows(m, http) for m in matches))
    total = sum(b.weight_milli for b in ts.backends)
    if not split or total == 0:
        return {_cluster(ts.service, ns, port): 1.0}
    shares: dict[str, float] = {}
    for b in ts.backends:
        key = _cluster(b.service, ns, port)
        shares[key] = shares.get(key, 0.0) + b.weight_milli / total
    return shares


def split_world(inputs: Inputs) -> tuple[list[Service], list[SplitProbe]]:
    """Services (from the input, or made up for names it lacks) and the split probes."""
    services: dict[tuple[str, str], Service] = {}
    probes: list[SplitProbe] = []
    vip = itertools.count(1)

    def service(ns: str, name: str, like: list[Port]) -> Service:
        if (ns, name) not in services:
            svc = inputs.service(ns, name)
            ports = ([Port(p.port, p.name, p.protocol, p.app_protocol) for p in svc.ports]
                     if svc is not None and svc.ports else like)
            n = next(vip)
            services[(ns, name)] = Service(name, ns, f"240.241.{n // 250}.{n % 250 + 1}", ports)
        return services[(ns, name)]

    made_up = [Port(80, "http"), Port(9000, "tcp")]
    for ts in inputs.splits:
        if not _resolvable(ts):
            continue
        ns = ts.meta.namespace
        root = service(ns, ts.service, made_up)
        for b in ts.backends:
            service(ns, b.service, root.ports)
        matches = _split_matches(inputs, ts) or []
        https = [r for m in matches for r in requests_for(m)] + [HttpRequest("GET", "/zz-miss")]
        for p in root.ports:
            kinds: list[HttpRequest | None] = [None, *https]
            for http in kinds:
                probes.append(SplitProbe(ts, root.host, p.port, p.protocol, http,
                                         smi_split(inputs, ts, p.port, http)))
    return list(services.values()), probes


def _same_split(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    keys = {k for k, v in [*a.items(), *b.items()] if v > 0}
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) < WEIGHT_TOLERANCE for k in keys)


# ---- the comparison ---------------------------------------------------------------------


@dataclass
class Outcome:
    """Per case: counters, and the disagreements (empty when istiod and SMI agree)."""

    counts: Counter[str]
    disagreements: list[str]


def _finding_on(findings: tuple[Finding, ...], kind: str, namespace: str, names: set[str],
                reasons: frozenset[FindingReason] | None = None) -> bool:
    """Whether the translator reported something (for one of ``reasons``) about
    one of ``kind`` ``namespace``/``names``."""
    return any(f.kind == kind and f.namespace == namespace and f.name in names
               and (reasons is None or f.reason in reasons) for f in findings)


def _targets_of(inputs: Inputs, req: Request) -> set[str]:
    dest = (req.dest_namespace, req.dest_service_account)
    return {tt.meta.name for tt in inputs.targets
            if (tt.destination.namespace, tt.destination.name) == dest}


Mutation = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def compare(case: Case, binary: Path, mutate: Mutation | None = None) -> Outcome:
    """Run every probe of ``case`` through istiod's config and compare.

    ``mutate`` edits the translated objects first (to show the check catches a wrong output).
    """
    inputs = case.inputs()
    # Another mesh's options (its trust domain, say) describe that mesh's cluster.
    options = case.options() if case.mesh == "istio" else Options()
    result: TranslationResult = translate(inputs, "istio", options)
    objects = [copy.deepcopy(dict(o)) for o in result.objects]
    if mutate is not None:
        objects = mutate(objects)
    access = access_probes(inputs)
    scenarios, where = access_scenarios(case.id, objects, access)
    services, splits = split_world(inputs)
    if splits:
        scenarios.append(Scenario(f"{case.id}/routes", list(objects), services, [CLIENT]))
    generated = generate(binary, scenarios) if scenarios else {}
    counts: Counter[str] = Counter()
    problems: list[str] = []
    for req, (sid, pid) in zip(access, where, strict=True):
        config: ProxyConfig = generated[sid].proxies[pid]
        http = None if req.http is None else envoy.Http(req.http.method, req.http.path, req.http.headers)
        decision = envoy.authorize(config.inbound, req.port, peer(req.source, options.trust_domain), http,
                                   f"{req.dest_service_account}.{req.dest_namespace}")
        if req.protocol == "UDP":
            # Sidecar listeners are TCP and Istio's iptables redirect only TCP:
            # whatever istiod generated, a UDP datagram never reaches Envoy.
            decision = envoy.Decision(False, False, True)
        explicit = decision.intercepted and decision.enforced and decision.allowed
        ours = evaluator_allows(objects, req)
        smi = smi_allows(inputs, req)
        counts["access probes"] += 1
        counts["istiod allows (explicit)"] += explicit
        named = _targets_of(inputs, req)
        has_finding = _finding_on(result.findings, "TrafficTarget", req.dest_namespace, named)
        # Only pods no policy can select fall back to Istio's allow-all.
        unselectable = _finding_on(result.findings, "TrafficTarget", req.dest_namespace, named,
                                   UNSELECTABLE)
        if explicit != ours:
            problems.append(f"istiod {'allows' if explicit else 'denies'} but tests/access/istio.py "
                            f"{'allows' if ours else 'denies'}: {req}")
        if decision.allowed and not smi:
            if req.protocol == "UDP" and not decision.intercepted:
                counts["UDP, not intercepted by Istio"] += 1
            elif not decision.enforced and unselectable:
                counts["Istio default (allow), reported"] += 1
            else:
                problems.append(f"istiod lets through what SMI denies "
                                f"({'policy' if decision.enforced else 'no policy selects the pod'}): {req}")
        if smi and not explicit:
            if has_finding:
                counts["SMI allows, istiod denies, reported"] += 1
            elif not decision.allowed or not decision.intercepted:
                problems.append(f"SMI allows but istiod denies, with no finding: {req}")
    for probe in splits:
        world = generated[f"{case.id}/routes"]
        config = world.proxies[CLIENT.id]
        svc = next(s for s in services if s.host == probe.host)
        if probe.http is None and world.protocols.get(f"{probe.host}:{probe.port}") in HTTP_PROTOCOLS:
            counts["split probes not applicable (plain TCP on an HTTP port)"] += 1
            continue
        http = (None if probe.http is None
                else envoy.Http(probe.http.method, probe.http.path, probe.http.headers))
        actual = envoy.route(config.outbound, config.routes, probe.host, svc.vip, probe.port, http)
        if actual is not None and PASSTHROUGH in actual:
            root_cluster = _cluster(probe.split.service, probe.split.meta.namespace, probe.port)
            actual = {root_cluster if k == PASSTHROUGH else k: v for k, v in actual.items()}
        counts["split probes"] += 1
        rivals = [ts for ts in inputs.splits if ts.service == probe.split.service
                  and ts.meta.namespace == probe.split.meta.namespace]
        expected = [smi_split(inputs, ts, probe.port, probe.http) for ts in rivals]
        if actual is not None and any(_same_split(actual, e) for e in expected):
            continue
        root = {_cluster(probe.split.service, probe.split.meta.namespace, probe.port): 1.0}
        reported = _finding_on(result.findings, "TrafficSplit", probe.split.meta.namespace,
                               {ts.meta.name for ts in rivals})
        if reported and (actual is None or _same_split(actual, root)):
            counts["SMI splits, istiod keeps on the root, reported"] += 1
            continue
        problems.append(f"{probe.host}:{probe.port} {probe.http or 'TCP'}: istiod routes {actual}, "
                        f"SMI means {expected[0]}")
    return Outcome(counts, problems)


CASES = cases()


@pytest.fixture(scope="module")
def configgen(meshcheck_tool: Callable[[str], Path]) -> Path:
    return meshcheck_tool("istio-configgen")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_istiod_agrees_with_smi(case: Case, configgen: Path) -> None:
    outcome = compare(case, configgen)
    assert outcome.counts["access probes"] + outcome.counts["split probes"] > 0, "no probe compared"
    assert outcome.disagreements == []


def _case(name: str) -> Case:
    return next(c for c in CASES if c.id == f"istio/{name}")


def test_a_broader_policy_is_caught(configgen: Path) -> None:
    """Granting the policies to anyone: istiod then allows what SMI denies."""
    def anyone(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for obj in objects:
            for rule in obj["spec"].get("rules") or []:
                rule.pop("from", None)
        return objects

    outcome = compare(_case("access-v1alpha2-http"), configgen, anyone)
    assert any("lets through what SMI denies" in d for d in outcome.disagreements)


def test_swapped_weights_are_caught(configgen: Path) -> None:
    def swap(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for obj in objects:
            for entry in obj["spec"].get("http") or []:
                weights = [r.get("weight") for r in entry["route"]]
                for r, w in zip(entry["route"], reversed(weights), strict=True):
                    r["weight"] = w
        return objects

    outcome = compare(_case("split-v1alpha2-canary"), configgen, swap)
    assert outcome.disagreements
    assert "istiod routes" in outcome.disagreements[0]


def test_every_case_with_meaning_is_compared() -> None:
    names = {c.id for c in CASES}
    assert {"istio/access-v1alpha1-port", "istio/split-v1alpha4-three-way",
            "istio/istio-service-ports"} <= names
    assert any(not name.startswith("istio/") for name in names), "other meshes' cases are compared too"



def test_matcher_reads_envoy_semantics() -> None:
    """The matcher's own rules, on hand-made Envoy config."""
    present = {"name": "x-a", "presentMatch": True}
    assert envoy.header_matches(present, {"x-a": ""})
    assert not envoy.header_matches(present, {})
    assert envoy.header_matches({**present, "invertMatch": True}, {})
    regex = {"name": "x-a", "stringMatch": {"safeRegex": {"regex": "a.*"}}}
    assert envoy.header_matches(regex, {"x-a": "abc"})
    assert not envoy.header_matches(regex, {"x-a": "bab"})
    assert not envoy.header_matches({**regex, "invertMatch": True}, {"x-a": "abc"})
    allow = {"rules": {"policies": {"p": {
        "permissions": [{"andRules": {"rules": [{"destinationPort": 80},
                                                {"urlPath": {"path": {"prefix": "/a"}}}]}}],
        "principals": [{"authenticated": {"principalName": {"exact": "spiffe://td/ns/n/sa/s"}}}]}}}}
    ok = envoy.Peer("spiffe://td/ns/n/sa/s")
    assert envoy.rbac_allows(allow, 80, ok, {":path": "/ab?x=1"}) is True
    assert envoy.rbac_allows(allow, 81, ok, {":path": "/ab"}) is False
    assert envoy.rbac_allows(allow, 80, envoy.Peer("spiffe://td/ns/n/sa/t"), {":path": "/ab"}) is False
    assert envoy.rbac_allows({"rules": {}}, 80, ok, None) is False
    assert envoy.rbac_allows({}, 80, ok, None) is None
    deny = {"rules": {**allow["rules"], "action": "DENY"}}
    assert envoy.rbac_allows(deny, 80, ok, {":path": "/ab"}) is False
    with pytest.raises(envoy.UnsupportedConfig):
        envoy.rbac_allows({"rules": {"policies": {"p": {"permissions": [{"sourcedMetadata": {}}],
                                                        "principals": [{"any": True}]}}}},
                          80, ok, None)
