"""Access evaluator for Cilium: CiliumNetworkPolicy ingress, read the way Cilium enforces it.

Independent of the translator: it only knows the Cilium policy language
(docs.cilium.io "Policy Enforcement Modes", "Layer 3/4/7 Examples";
``pkg/policy/api``; the Envoy HTTP rules built in ``pkg/envoy``):

* A CiliumNetworkPolicy applies to endpoints *of its own namespace* whose
  labels match ``endpointSelector``. Cilium gives every pod the identity
  labels ``io.cilium.k8s.policy.serviceaccount`` and
  ``io.kubernetes.pod.namespace`` besides its own labels.
* Allow rules are a union: a request passes when some ingress rule of some
  applicable policy allows it. An ingress rule needs its peer selector and its
  ``toPorts`` to match. L7 takes the port over, though: when any rule that
  lets the peer reach the port (in any policy, on a single port or on a range
  or wildcard covering it) carries HTTP rules, the datapath sends that peer's
  traffic on that port to the proxy (the policy-map entry is a redirect), so
  traffic that is not HTTP is dropped there, and an L3/L4-only rule for the
  same peer and port then allows every request. The meshcheck differential
  (tests/meshcheck/test_cilium_differential.py) reads this from Cilium's own
  policy repository. ``fromEndpoints`` selectors without a namespace
  requirement only select the policy's namespace; an empty non-nil list
  selects nothing; a missing one is a wildcard only when ``toPorts`` is set.
* ``toPorts``: absent means every port and protocol. Port ``"0"`` is every
  port; ``endPort`` makes a range; protocol ``ANY`` (or empty) matches
  TCP/UDP/SCTP.
* ``rules.http``: the request must be HTTP and match one entry. ``method``,
  ``path`` (and ``host``) are RE2 regexes full-matched by Envoy; ``headers``
  entries are ``"name"`` (presence) or ``"name value"`` (exact);
  ``headerMatches`` are exact, an empty value meaning presence; a
  ``mismatch`` action other than the default only logs/edits, so the entry
  still matches.

:func:`default_denies` tells whether a request no rule allows is refused at
all: only when a policy with ingress rules and default-deny selects the
endpoint; otherwise Cilium's default (allow) applies.

Anything this evaluator does not model (deny rules, named ports, CIDR or
entity peers, secrets, other L7 protocols) raises ``NotImplementedError``
rather than being guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import re2

from tests.access import HttpRequest, Request

SA_LABEL = "io.cilium.k8s.policy.serviceaccount"
NS_LABEL = "io.kubernetes.pod.namespace"
_SOURCE_PREFIXES = ("k8s:", "any:")
_UNMODELLED_SPEC = ("ingressDeny", "nodeSelector")
_UNMODELLED_RULE = ("fromCIDR", "fromCIDRSet", "fromEntities", "fromGroups", "fromNodes",
                    "fromRequires", "icmps", "authentication")


def _key(label: str) -> str:
    """A selector key without its Cilium label source (``k8s:``/``any:``)."""
    for prefix in _SOURCE_PREFIXES:
        if label.startswith(prefix):
            return label[len(prefix):]
    return label


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels and matchExpressions, ANDed)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(_key(k)) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = _key(expr["key"]), expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _mentions_namespace(selector: Mapping[str, Any]) -> bool:
    keys = [_key(k) for k in selector.get("matchLabels") or {}]
    keys += [_key(e["key"]) for e in selector.get("matchExpressions") or []]
    return NS_LABEL in keys


def _peer_matches(rule: Mapping[str, Any], policy_ns: str, req: Request) -> bool:
    source = {SA_LABEL: req.source.name, NS_LABEL: req.source.namespace}
    selectors = rule.get("fromEndpoints")
    if selectors is None:
        # nil fromEndpoints is a wildcard only together with toPorts.
        return bool(rule.get("toPorts"))
    for sel in selectors:
        if not _mentions_namespace(sel) and req.source.namespace != policy_ns:
            continue
        if selector_matches(sel, source):
            return True
    return False


def _port_matches(pp: Mapping[str, Any], req: Request) -> bool:
    proto = str(pp.get("protocol") or "ANY").upper()
    if proto not in ("ANY", req.protocol):
        return False
    port = str(pp["port"])
    if not port.isdigit():
        raise NotImplementedError(f"named port {port!r}")
    start = int(port)
    if start == 0:
        return True
    end = int(pp.get("endPort") or 0)
    return start <= req.port <= max(start, end)


def _full(pattern: str, value: str) -> bool:
    return re2.fullmatch(pattern, value) is not None


def http_rule_matches(rule: Mapping[str, Any], req: HttpRequest) -> bool:
    """One ``PortRuleHTTP`` against one request."""
    if rule.get("host"):
        raise NotImplementedError("host rules: the request model carries no host")
    if rule.get("method") and not _full(rule["method"], req.method):
        return False
    if rule.get("path") and not _full(rule["path"], req.path):
        return False
    for entry in rule.get("headers") or []:
        name, _, value = entry.partition(" ")
        actual = req.headers.get(name.rstrip(":").lower())
        if actual is None or (value and actual != value):
            return False
    for hm in rule.get("headerMatches") or []:
        if "secret" in hm:
            raise NotImplementedError("headerMatches with secrets")
        if hm.get("mismatch"):
            continue  # a mismatch action only logs or edits the header
        actual = req.headers.get(hm["name"].lower())
        if actual is None or (hm.get("value") and actual != hm["value"]):
            return False
    return True


def _grants(rule: Mapping[str, Any], req: Request) -> list[list[Any]]:
    """The HTTP rule lists (empty: L3/L4 only) of the parts of *rule* covering req's port."""
    to_ports = rule.get("toPorts")
    if not to_ports:
        return [[]]
    out = []
    for port_rule in to_ports:
        if not any(_port_matches(pp, req) for pp in port_rule.get("ports") or []):
            continue
        l7 = port_rule.get("rules") or {}
        if any(l7.get(k) for k in ("kafka", "dns", "l7proto", "l7")):
            raise NotImplementedError(f"L7 rules {sorted(l7)}")
        out.append(list(l7.get("http") or []))
    return out


def _policy_grants(policy: Mapping[str, Any], req: Request) -> list[list[Any]]:
    """What one CiliumNetworkPolicy grants req's peer on req's port, rule part by rule part."""
    spec = policy.get("spec") or {}
    for key in _UNMODELLED_SPEC:
        if spec.get(key):
            raise NotImplementedError(f"spec.{key}")
    ns = policy["metadata"]["namespace"]
    if not _selects_destination(policy, req):
        return []
    out = []
    for rule in spec.get("ingress") or []:
        for key in _UNMODELLED_RULE:
            if rule.get(key):
                raise NotImplementedError(f"ingress.{key}")
        if _peer_matches(rule, ns, req):
            out.extend(_grants(rule, req))
    return out


def _verdict(grants: list[list[Any]], req: Request) -> bool:
    if not grants:
        return False
    if not any(grants):
        return True
    # Redirected to the proxy: only HTTP gets through, and an L3/L4 grant
    # allows every request.
    return req.http is not None and any(
        not http or any(http_rule_matches(h, req.http) for h in http) for http in grants)


def policy_allows(policy: Mapping[str, Any], req: Request) -> bool:
    """Whether one CiliumNetworkPolicy, alone, explicitly allows *req* at the destination's ingress."""
    return _verdict(_policy_grants(policy, req), req)


def _selects_destination(policy: Mapping[str, Any], req: Request) -> bool:
    ns = policy["metadata"]["namespace"]
    if ns != req.dest_namespace:
        return False
    dest = {**req.dest_pod_labels, SA_LABEL: req.dest_service_account, NS_LABEL: ns}
    return selector_matches((policy.get("spec") or {}).get("endpointSelector") or {}, dest)


def default_denies(objects: list[dict[str, Any]], req: Request) -> bool:
    """Whether the destination endpoint's ingress refuses what no policy allows.

    Cilium makes one policy entry per ingress rule, carrying the policy's
    ``enableDefaultDeny.ingress`` (unset: true); the endpoint is in ingress
    default-deny when any entry selecting it says so. A policy without
    ingress rules makes no entry. Read as with ``enable-non-default-deny-policies``
    on (the stricter reading: with it off every selecting policy denies).
    """
    for o in objects:
        if o.get("apiVersion") != "cilium.io/v2" or o.get("kind") != "CiliumNetworkPolicy":
            continue
        spec = o.get("spec") or {}
        flag = (spec.get("enableDefaultDeny") or {}).get("ingress")
        if _selects_destination(o, req) and spec.get("ingress") and flag is not False:
            return True
    return False


def allows(objects: list[dict[str, Any]], req: Request) -> bool:
    """True only if the emitted CiliumNetworkPolicies, together, explicitly allow *req*."""
    grants = [g for o in objects
              if o.get("apiVersion") == "cilium.io/v2" and o.get("kind") == "CiliumNetworkPolicy"
              for g in _policy_grants(o, req)]
    return _verdict(grants, req)
