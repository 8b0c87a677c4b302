"""Target ``cilium``: CiliumNetworkPolicy for access, GAMMA HTTPRoute for splits.

A TrafficTarget becomes one ``cilium.io/v2`` CiliumNetworkPolicy in the
destination namespace. Cilium selects workloads by the identity labels it
derives from every pod (``io.cilium.k8s.policy.serviceaccount`` and
``io.kubernetes.pod.namespace``), so no pod-label resolution is needed.

Access semantics kept exact (or fail closed):

* Every destination gets a policy with ``enableDefaultDeny: {ingress: true}``,
  even when nothing of its TrafficTarget is expressible, and the policy
  always holds at least one ingress rule. Cilium 1.19 needs both: it turns
  each ingress rule into one policy entry that carries the default-deny flag
  (``pkg/policy/utils/parserules.go``, ``RulesToPolicyEntries``), so a policy
  without ingress rules denies nothing; and ``Rule.Sanitize``
  (``pkg/policy/api/rule_validation.go``) refuses a rule with no ingress,
  egress or deny section at all. With nothing to allow, the only rule is
  ``{}``: its peer list is empty and it has no ports, so it allows nothing
  (``mergeL4Filter`` in ``pkg/policy/rule.go`` adds no filter for it) while
  the endpoint is put into ingress default-deny. Egress is left alone.
* An omitted ``toPorts`` allows every protocol, so all-port grants name their
  protocol with port ``"0"`` (every port of that protocol). L7 rules cannot
  use port 0, but they accept port ranges (``endPort``, in Cilium since 1.16:
  ``pkg/policy/api/l4.go``, sent to Envoy as ranges by ``pkg/envoy/xds_server.go``):
  an all-port HTTP grant uses ``1-65535/TCP``.
* Cilium merges every policy that selects an endpoint, and an L7 rule sends
  that peer's traffic on its ports through Envoy's HTTP parser, where a
  plain L4 grant of the same peer on the same port (another TrafficTarget,
  say Redis on 6379) would no longer pass. So an HTTP rule leaves out, per
  peer, the TCP ports that peer is already granted at L4 (which allow every
  request there anyway); the union SMI means is kept exactly.
* ``method``/``path`` are RE2 regexes that Envoy full-matches (``safe_regex``
  header matchers on ``:method``/``:path``), so SMI's prefix-anchored path
  regexes go through :func:`classify_path`. Headers are presence
  (``headers``) or exact value (``headerMatches``); any other value regex,
  and an exact empty value (which Cilium reads as presence), fail closed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import ClassVar

from smi2mesh.findings import FindingReason
from smi2mesh.model import HTTPMatch, Identity, TrafficSplit, TrafficTarget
from smi2mesh.regex import MatchType, classify_path, classify_value, escape
from smi2mesh.translators.base import (
    GATEWAY_HTTP_ROUTES,
    Emitter,
    Grant,
    Obj,
    OutputKind,
    Translator,
    grants,
)
from smi2mesh.translators.gateway_api import split_routes

CILIUM_V2 = "cilium.io/v2"
SA_LABEL = "io.cilium.k8s.policy.serviceaccount"
NS_LABEL = "io.kubernetes.pod.namespace"
# CRD limit on PortRule.ports.
MAX_PORTS_PER_RULE = 40
# Same pattern and length as the CRD's matchLabels values.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# RFC 9110 token: Cilium splits a ``headers`` entry at the first space into
# name and value, so anything else in a name would change its meaning.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")


def _label_value_ok(value: str) -> bool:
    return bool(value) and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def identity_selector(identity: Identity) -> Obj:
    """The endpoint selector of the pods running as one ServiceAccount."""
    return {"matchLabels": {SA_LABEL: identity.name, NS_LABEL: identity.namespace}}


def _port_rules(ports: list[Obj], rules: Obj | None) -> list[Obj]:
    """PortRules holding *ports*, split to respect the CRD's per-rule limit."""
    out: list[Obj] = []
    for i in range(0, len(ports), MAX_PORTS_PER_RULE):
        entry: Obj = {"ports": ports[i:i + MAX_PORTS_PER_RULE]}
        if rules is not None:
            entry["rules"] = rules
        out.append(entry)
    return out


def http_rule(match: HTTPMatch) -> tuple[Obj | None, str]:
    """Cilium ``PortRuleHTTP`` for one SMI match, or None and why it cannot be exact."""
    rule: Obj = {}
    if match.methods:
        rule["method"] = "|".join(escape(m) for m in match.methods)
    if match.path_regex is not None:
        pat = classify_path(match.path_regex)
        if pat.type is not MatchType.ANY:
            rule["path"] = pat.full_regex()
    present: list[str] = []
    exact: list[Obj] = []
    for h in match.headers:
        if not _HEADER_NAME.match(h.name):
            return None, f"header name {h.name!r} is not an HTTP token"
        pat = classify_value(h.value)
        if pat.type is MatchType.ANY:
            present.append(h.name)
        elif pat.type is MatchType.EXACT and pat.value:
            exact.append({"name": h.name, "value": pat.value})
        elif pat.type is MatchType.EXACT:
            return None, (f"header {h.name!r} must be empty; Cilium reads an empty value as "
                          "'present with any value'")
        else:
            return None, (f"header {h.name!r} value regex {h.value!r} ({pat.type.value}): Cilium "
                          "matches headers only by presence or exact value")
    if present:
        rule["headers"] = present
    if exact:
        rule["headerMatches"] = exact
    return rule, ""


class CiliumTranslator(Translator):
    """TrafficSplit -> GAMMA HTTPRoute/TCPRoute; TrafficTarget -> CiliumNetworkPolicy."""

    name: ClassVar[str] = "cilium"
    description: ClassVar[str] = ("CiliumNetworkPolicy (L3/L4/L7 by ServiceAccount) and "
                                  "Gateway API (GAMMA) routes for splits")
    emits: ClassVar[tuple[OutputKind, ...]] = (
        # Cilium's GAMMA routes HTTPRoutes only: a TCP split is a finding.
        *GATEWAY_HTTP_ROUTES,
        OutputKind("cilium.io/v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies"),
    )

    def split(self, ts: TrafficSplit, em: Emitter) -> None:
        # CiliumNetworkPolicy cannot split traffic; Cilium implements GAMMA routes.
        split_routes(ts, em, target="Cilium")

    def target(self, tt: TrafficTarget, em: Emitter) -> None:
        dest = tt.destination
        if not _label_value_ok(dest.name):
            em.finding(tt, tt.path("destination.name"), FindingReason.NOT_EXPRESSIBLE,
                       f"ServiceAccount name {dest.name!r} is not a valid label value (max 63 "
                       "characters), so no endpoint selector can pick its pods and no policy is "
                       "emitted; Cilium's default applies to them: allow, unless another policy "
                       "selects them")
            return
        selectors = self._sources(tt, em)
        rules: list[Obj] = []
        # grants() runs even without selectable sources: it reports what else is wrong.
        for g in grants(tt, em):
            rule = self._ingress_rule(tt, g, selectors, em) if selectors else None
            if rule is not None:
                rules.append(rule)
        em.state(_Run).policies.append((tt, rules))

    def finish(self, em: Emitter) -> None:
        run = em.state(_Run)
        granted: dict[tuple[str, str], dict[str, _Ports]] = {}
        for tt, rules in run.policies:
            dest = (tt.destination.namespace, tt.destination.name)
            for rule in rules:
                _collect_l4(rule, granted.setdefault(dest, {}))
        for tt, rules in run.policies:
            l4 = granted.get((tt.destination.namespace, tt.destination.name), {})
            ingress = [part for rule in rules for part in _without_l4(rule, l4)]
            spec: Obj = {
                "endpointSelector": {"matchLabels": {SA_LABEL: tt.destination.name}},
                # Explicit, although the default: SMI access is deny-by-default.
                "enableDefaultDeny": {"ingress": True},
                # An empty rule selects no peer and no port: the destination is
                # put into default-deny while nothing is allowed (see the docstring).
                "ingress": ingress or [{}],
            }
            em.emit(CILIUM_V2, "CiliumNetworkPolicy", tt.destination.namespace, tt.meta.name,
                    spec, [tt])

    def _sources(self, tt: TrafficTarget, em: Emitter) -> list[Obj]:
        out: list[Obj] = []
        seen: set[Identity] = set()
        for i, src in enumerate(tt.sources):
            if src in seen:
                continue
            seen.add(src)
            if not _label_value_ok(src.name):
                em.finding(tt, tt.path(f"sources[{i}]"), FindingReason.ACCESS_FAIL_CLOSED,
                           f"ServiceAccount name {src.name!r} is not a valid label value (max 63 "
                           "characters); this source is not allowed")
                continue
            out.append(identity_selector(src))
        if tt.sources and not out:
            em.finding(tt, tt.path("sources"), FindingReason.ACCESS_FAIL_CLOSED,
                       "no source can be selected; the TrafficTarget grants nothing and its "
                       "destination stays in default-deny")
        return out

    def _ingress_rule(self, tt: TrafficTarget, g: Grant, selectors: list[Obj],
                      em: Emitter) -> Obj | None:
        proto = g.protocol.value
        if g.http is None:
            l4_ports: list[Obj] = [{"port": str(p), "protocol": proto} for p in g.ports] or [
                # Port 0 is every port of this protocol only; an omitted
                # toPorts would also allow the other protocols.
                {"port": "0", "protocol": proto}]
            return {"fromEndpoints": selectors, "toPorts": _port_rules(l4_ports, None)}
        http: list[Obj] = []
        for match, field in zip(g.http, g.http_fields, strict=True):
            rule, why = http_rule(match)
            if rule is None:
                em.finding(tt, field, FindingReason.ACCESS_FAIL_CLOSED,
                           f"match {match.name!r}: {why}; it allows nothing")
                continue
            if rule not in http:
                http.append(rule)
        if not http:
            return None
        if {} in http:
            # A catch-all match already allows every request; the rest is redundant.
            http = [{}]
        ports: list[Obj]
        if g.ports:
            ports = [{"port": str(p), "protocol": proto} for p in g.ports]
        else:
            ports = [{"port": "1", "endPort": _MAX_PORT, "protocol": proto}]
        return {"fromEndpoints": selectors, "toPorts": _port_rules(ports, {"http": http})}


_MAX_PORT = 65535
# TCP port intervals, inclusive; (1, 65535) is every port.
_Ports = list[tuple[int, int]]


@dataclasses.dataclass
class _Run:
    """Per-run state: every policy's ingress rules, emitted in finish() once all are known."""

    policies: list[tuple[TrafficTarget, list[Obj]]] = dataclasses.field(default_factory=list)


def _peer(selector: Obj) -> str:
    return json.dumps(selector, sort_keys=True)


def _collect_l4(rule: Obj, granted: dict[str, _Ports]) -> None:
    """Add the TCP ports an L4-only ingress rule grants to each of its peers."""
    port_rules = rule.get("toPorts", [])
    if any("rules" in pr for pr in port_rules):
        return
    for pr in port_rules:
        for entry in pr["ports"]:
            if entry["protocol"] != "TCP":
                continue
            first = int(entry["port"])
            span = (1, _MAX_PORT) if first == 0 else (first, int(entry.get("endPort", first)))
            for selector in rule.get("fromEndpoints", []):
                granted.setdefault(_peer(selector), []).append(span)


def _subtract(spans: _Ports, minus: _Ports) -> _Ports:
    out: _Ports = []
    for lo, hi in spans:
        pieces = [(lo, hi)]
        for m_lo, m_hi in minus:
            pieces = [piece for a, b in pieces
                      for piece in ((a, min(b, m_lo - 1)), (max(a, m_hi + 1), b)) if piece[0] <= piece[1]]
        out.extend(pieces)
    return sorted(out)


def _without_l4(rule: Obj, granted: dict[str, _Ports]) -> list[Obj]:
    """An HTTP rule without the ports each peer already has at L4.

    Peers left with different ports get rules of their own.
    """
    port_rules = rule.get("toPorts", [])
    if not granted or not port_rules or not all("rules" in pr for pr in port_rules):
        return [rule]
    spans = sorted((int(e["port"]), int(e.get("endPort", e["port"])))
                   for pr in port_rules for e in pr["ports"])
    groups: dict[tuple[tuple[int, int], ...], list[Obj]] = {}
    for selector in rule["fromEndpoints"]:
        left = tuple(_subtract(spans, granted.get(_peer(selector), [])))
        groups.setdefault(left, []).append(selector)
    if list(groups) == [tuple(spans)]:
        return [rule]
    l7 = port_rules[0]["rules"]
    out: list[Obj] = []
    for left, selectors in groups.items():
        if not left:
            continue  # L4 grants of these peers already allow every request here.
        ports = [{"port": str(a), "protocol": "TCP"} if a == b else
                 {"port": str(a), "endPort": b, "protocol": "TCP"} for a, b in left]
        out.append({"fromEndpoints": selectors, "toPorts": _port_rules(ports, l7)})
    return out
