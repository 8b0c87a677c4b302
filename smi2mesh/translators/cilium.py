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
  use port 0, but since Cilium 1.17 they accept port ranges: an all-port HTTP
  grant uses ``1-65535/TCP`` (reported as a prerequisite).
* ``method``/``path`` are RE2 regexes that Envoy full-matches (``safe_regex``
  header matchers on ``:method``/``:path``), so SMI's prefix-anchored path
  regexes go through :func:`classify_path`. Headers are presence
  (``headers``) or exact value (``headerMatches``); any other value regex,
  and an exact empty value (which Cilium reads as presence), fail closed.
"""

from __future__ import annotations

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
        spec: Obj = {
            "endpointSelector": {"matchLabels": {SA_LABEL: dest.name}},
            # Explicit, although the default: SMI access is deny-by-default.
            "enableDefaultDeny": {"ingress": True},
            # An empty rule selects no peer and no port: the destination is
            # put into default-deny while nothing is allowed (see the docstring).
            "ingress": rules or [{}],
        }
        em.emit(CILIUM_V2, "CiliumNetworkPolicy", dest.namespace, tt.meta.name, spec, [tt])

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
            em.finding(tt, g.field, FindingReason.PREREQUISITE,
                       "HTTP rules without TCPRoute ports apply to TCP ports 1-65535: L7 rules on "
                       "port ranges need Cilium 1.17 or later")
            ports = [{"port": "1", "endPort": 65535, "protocol": proto}]
        return {"fromEndpoints": selectors, "toPorts": _port_rules(ports, {"http": http})}
