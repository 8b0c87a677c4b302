"""A small Envoy matcher of ours over the configuration istiod generated (protojson).

Istio's own simulator (pilot/pkg/simulation) cannot be built here (it imports
a module the Go proxy refuses) and ignores weighted clusters, so this walks
the generated listeners, routes and RBAC filters the way Envoy does:

* :func:`route` - which clusters, with which weights, an outbound request or
  connection from a sidecar reaches: listener by destination address (exact IP
  before 0.0.0.0), filter chain by transport, ALPN and destination prefix,
  then either ``tcp_proxy`` or the HTTP connection manager's route
  configuration (RDS): virtual host by domain, first route whose path, header
  and query matches all hold.
* :func:`authorize` - whether the inbound sidecar lets a request through: the
  inbound filter chain for the destination port and mTLS ALPN, then every
  network and HTTP RBAC filter on it in order (Envoy's RBAC engine: ALLOW
  needs a matching policy, DENY must have none; no ``rules`` means no
  enforcement).

Envoy behaviour it follows: envoy/api/envoy/config/{route,rbac}/v3 and
type/matcher/v3 field documentation (StringMatcher, HeaderMatcher, RBAC
Permission/Principal).  Anything it does not know raises
:class:`UnsupportedConfig`, so a new construct fails loudly instead of being
read as "no match".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

Json = Mapping[str, Any]

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
NETWORK_RBAC = "envoy.filters.network.rbac"
HTTP_RBAC = "envoy.filters.http.rbac"
# ALPN an Istio client sidecar offers on mTLS (istio's mtls ALPN override for
# HTTP/1.1, and the peer-exchange ALPN for TCP).
ALPN_HTTP = ("istio-http/1.1", "istio", "http/1.1")
ALPN_TCP = ("istio-peer-exchange", "istio")


class UnsupportedConfig(ValueError):
    """Generated configuration uses something this matcher does not implement."""


@dataclass(frozen=True)
class Http:
    """The HTTP part of a request: method, path (may carry ?query), lowercase header names."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """The mTLS peer: its SPIFFE URI SAN, e.g. ``spiffe://cluster.local/ns/a/sa/b``."""

    principal: str


# ---- string and header matching ---------------------------------------------------------


def string_matches(m: Json, value: str) -> bool:
    """envoy.type.matcher.v3.StringMatcher."""
    ignore = bool(m.get("ignoreCase"))
    v = value.lower() if ignore else value
    for key in ("exact", "prefix", "suffix", "contains"):
        if key in m:
            want = str(m[key]).lower() if ignore else str(m[key])
            return {"exact": v == want, "prefix": v.startswith(want), "suffix": v.endswith(want),
                    "contains": want in v}[key]
    if "safeRegex" in m:
        return re2.fullmatch(f"(?:{m['safeRegex']['regex']})", value) is not None
    raise UnsupportedConfig(f"string matcher {dict(m)}")


def _header_value(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name.lower())


def header_matches(m: Json, headers: Mapping[str, str]) -> bool:
    """envoy.config.route.v3.HeaderMatcher (Envoy's HeaderUtility::matchHeaders)."""
    value = _header_value(headers, m["name"])
    invert = bool(m.get("invertMatch"))
    if value is None and m.get("treatMissingHeaderAsEmpty"):
        value = ""
    if value is None:
        # An absent header matches only "present: false", or any inverted non-presence matcher.
        if "presentMatch" in m:
            return bool(m["presentMatch"]) is invert
        return invert
    if "presentMatch" in m:
        hit = bool(m["presentMatch"])
    elif "stringMatch" in m:
        hit = string_matches(m["stringMatch"], value)
    elif "exactMatch" in m:
        hit = value == m["exactMatch"]
    elif "prefixMatch" in m:
        hit = value.startswith(m["prefixMatch"])
    elif "suffixMatch" in m:
        hit = value.endswith(m["suffixMatch"])
    elif "containsMatch" in m:
        hit = m["containsMatch"] in value
    elif "safeRegexMatch" in m:
        hit = re2.fullmatch(f"(?:{m['safeRegexMatch']['regex']})", value) is not None
    else:
        raise UnsupportedConfig(f"header matcher {dict(m)}")
    return hit != invert


def _request_headers(authority: str, http: Http) -> dict[str, str]:
    headers = {k.lower(): v for k, v in http.headers.items()}
    headers.update({":method": http.method, ":path": http.path, ":authority": authority})
    return headers


# ---- outbound: listener -> filter chain -> route ----------------------------------------


def _listener_for(listeners: Sequence[Json], ip: str, port: int) -> Json | None:
    by_address: dict[tuple[str, int], Json] = {}
    for listener in listeners:
        sock = (listener.get("address") or {}).get("socketAddress") or {}
        if "portValue" in sock:
            by_address[(sock.get("address", ""), int(sock["portValue"]))] = listener
    return by_address.get((ip, port)) or by_address.get(("0.0.0.0", port))


def _prefix_ok(match: Json, ip: str) -> bool:
    ranges = match.get("prefixRanges") or []
    return not ranges or any(
        ipaddress.ip_address(ip) in ipaddress.ip_network(
            f"{r['addressPrefix']}/{r.get('prefixLen', 32)}", strict=False) for r in ranges)


def _fcm(chain: Json) -> Json:
    match: Json = chain.get("filterChainMatch") or {}
    return match


def _select_chain(listener: Json, port: int, ip: str, transport: str,
                  alpn: Sequence[str]) -> Json | None:
    """Envoy's filter chain match order: destination port, destination IP, transport, ALPN."""
    chains: list[Json] = list(listener.get("filterChains") or [])
    for match_port in (port, None):
        level = [c for c in chains if _fcm(c).get("destinationPort") == match_port
                 and _prefix_ok(_fcm(c), ip)]
        if not level:
            continue
        for want in (transport, ""):
            tier = [c for c in level if _fcm(c).get("transportProtocol", "") == want]
            if not tier:
                continue
            for chain in tier:
                protocols = _fcm(chain).get("applicationProtocols") or []
                if protocols and any(p in protocols for p in alpn):
                    return chain
            for chain in tier:
                if not _fcm(chain).get("applicationProtocols"):
                    return chain
            break
        break
    default: Json | None = listener.get("defaultFilterChain")
    return default


def _filter(chain: Json, name: str) -> Json | None:
    for f in chain.get("filters") or []:
        if f["name"] == name:
            config: Json = f.get("typedConfig") or {}
            return config
    return None


def _weighted(action: Json) -> dict[str, float]:
    """Cluster -> share of a route/tcp_proxy action."""
    if "cluster" in action:
        return {action["cluster"]: 1.0}
    weighted = action.get("weightedClusters")
    if weighted is not None:
        clusters = [(c["name"], int(c.get("weight", 0))) for c in weighted["clusters"]]
        total = sum(w for _, w in clusters)
        if total == 0:
            return {}
        shares: dict[str, float] = {}
        for name, weight in clusters:
            shares[name] = shares.get(name, 0.0) + weight / total
        return shares
    raise UnsupportedConfig(f"route action {sorted(action)}")


def _path_matches(match: Json, path: str) -> bool:
    bare = path.split("?", 1)[0]
    sensitive = match.get("caseSensitive", True)
    p = bare if sensitive else bare.lower()

    def norm(s: str) -> str:
        return s if sensitive else s.lower()

    if "prefix" in match:
        return p.startswith(norm(match["prefix"]))
    if "path" in match:
        return p == norm(match["path"])
    if "safeRegex" in match:
        return re2.fullmatch(f"(?:{match['safeRegex']['regex']})", bare) is not None
    if "pathSeparatedPrefix" in match:
        want = norm(match["pathSeparatedPrefix"])
        return p == want or p.startswith(want + "/")
    raise UnsupportedConfig(f"route match {sorted(match)}")


def _query(path: str) -> dict[str, str]:
    if "?" not in path:
        return {}
    out: dict[str, str] = {}
    for part in path.split("?", 1)[1].split("&"):
        key, _, value = part.partition("=")
        out.setdefault(key, value)
    return out


def _route_matches(match: Json, headers: Mapping[str, str], path: str) -> bool:
    if not _path_matches(match, path):
        return False
    if not all(header_matches(h, headers) for h in match.get("headers") or []):
        return False
    query = _query(path)
    for q in match.get("queryParameters") or []:
        value = query.get(q["name"])
        if "presentMatch" in q:
            if (value is not None) != bool(q["presentMatch"]):
                return False
        elif value is None or not string_matches(q["stringMatch"], value):
            return False
    if "runtimeFraction" in match or "grpc" in match or "tlsContext" in match:
        raise UnsupportedConfig(f"route match {sorted(match)}")
    return True


def _domain_score(domain: str, host: str) -> int:
    """Envoy's virtual host order: exact > longest suffix wildcard > prefix wildcard > ``*``."""
    if domain == host:
        return 4_000_000
    if domain == "*":
        return 1
    if domain.startswith("*") and host.endswith(domain[1:]):
        return 2_000_000 + len(domain)
    if domain.endswith("*") and host.startswith(domain[:-1]):
        return 1_000_000 + len(domain)
    return 0


def _http_route(route_config: Json, host: str, http: Http) -> dict[str, float] | None:
    best: tuple[int, Json] | None = None
    for vhost in route_config.get("virtualHosts") or []:
        score = max((_domain_score(d, host) for d in vhost.get("domains") or []), default=0)
        if score and (best is None or score > best[0]):
            best = (score, vhost)
    if best is None:
        return None
    headers = _request_headers(host, http)
    for r in best[1].get("routes") or []:
        if _route_matches(r["match"], headers, http.path):
            if "route" in r:
                return _weighted(r["route"])
            return None  # redirect or direct response: no cluster
    return None


def route(outbound: Sequence[Json], routes: Sequence[Json], host: str, vip: str, port: int,
          http: Http | None) -> dict[str, float] | None:
    """Clusters (name -> share) a client sidecar sends to for ``host`` at ``vip:port``.

    ``http`` None is a plain TCP connection.  None: no listener or route takes it.
    """
    listener = _listener_for(outbound, vip, port)
    if listener is None:
        return None
    chain = _select_chain(listener, port, vip, "raw_buffer", ("http/1.1",) if http else ())
    if chain is None:
        return None
    hcm = _filter(chain, HCM)
    if hcm is not None:
        if http is None:
            return None  # a plain TCP stream on an HTTP-only chain is not routed
        if "routeConfig" in hcm:
            return _http_route(hcm["routeConfig"], host, http)
        name = hcm["rds"]["routeConfigName"]
        by_name = {r["name"]: r for r in routes}
        if name not in by_name:
            raise UnsupportedConfig(f"route configuration {name} was not generated")
        return _http_route(by_name[name], host, http)
    tcp = _filter(chain, TCP_PROXY)
    if tcp is not None:
        return _weighted(tcp)
    raise UnsupportedConfig(f"outbound chain without HCM or tcp_proxy: {chain.get('name')}")


# ---- inbound: RBAC ----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The inbound sidecar's answer: ``intercepted`` (a chain took it), ``enforced``
    (some RBAC filter had rules) and ``allowed``."""

    intercepted: bool
    enforced: bool
    allowed: bool


def _permission(p: Json, port: int, headers: Mapping[str, str] | None) -> bool:
    if p.get("any"):
        return True
    if "andRules" in p:
        return all(_permission(r, port, headers) for r in p["andRules"]["rules"])
    if "orRules" in p:
        return any(_permission(r, port, headers) for r in p["orRules"]["rules"])
    if "notRule" in p:
        return not _permission(p["notRule"], port, headers)
    if "destinationPort" in p:
        return int(p["destinationPort"]) == port
    if "destinationPortRange" in p:
        r = p["destinationPortRange"]
        return int(r.get("start", 0)) <= port < int(r.get("end", 0))
    if "header" in p:
        return header_matches(p["header"], headers or {})
    if "urlPath" in p:
        if headers is None or ":path" not in headers:
            return False
        return string_matches(p["urlPath"]["path"], headers[":path"].split("?", 1)[0])
    raise UnsupportedConfig(f"RBAC permission {sorted(p)}")


def _principal(p: Json, peer: Peer, headers: Mapping[str, str] | None) -> bool:
    if p.get("any"):
        return True
    if "andIds" in p:
        return all(_principal(i, peer, headers) for i in p["andIds"]["ids"])
    if "orIds" in p:
        return any(_principal(i, peer, headers) for i in p["orIds"]["ids"])
    if "notId" in p:
        return not _principal(p["notId"], peer, headers)
    if "authenticated" in p:
        name = (p["authenticated"] or {}).get("principalName")
        return name is None or string_matches(name, peer.principal)
    if "filterState" in p and p["filterState"].get("key") == "io.istio.peer_principal":
        return string_matches(p["filterState"]["stringMatch"], peer.principal)
    if "header" in p:
        return header_matches(p["header"], headers or {})
    raise UnsupportedConfig(f"RBAC principal {sorted(p)}")


def rbac_allows(config: Json, port: int, peer: Peer, headers: Mapping[str, str] | None) -> bool | None:
    """One RBAC filter: True/False, or None when it has no ``rules`` (not enforcing)."""
    rules = config.get("rules")
    if rules is None:
        return None
    action = rules.get("action", "ALLOW")
    matched = False
    for policy in (rules.get("policies") or {}).values():
        if "condition" in policy or "checkedCondition" in policy:
            raise UnsupportedConfig("RBAC policy with a CEL condition")
        if (any(_permission(p, port, headers) for p in policy.get("permissions") or [])
                and any(_principal(i, peer, headers) for i in policy.get("principals") or [])):
            matched = True
            break
    if action == "ALLOW":
        return matched
    if action == "DENY":
        return not matched
    if action == "LOG":
        return True
    raise UnsupportedConfig(f"RBAC action {action}")


def authorize(inbound: Json | None, port: int, peer: Peer, http: Http | None,
              authority: str = "") -> Decision:
    """What the destination sidecar's inbound listener does with an mTLS request on ``port``."""
    if inbound is None:
        return Decision(False, False, True)
    chain = _select_chain(inbound, port, "0.0.0.0", "tls", ALPN_HTTP if http else ALPN_TCP)
    if chain is None or (chain.get("filterChainMatch") or {}).get("destinationPort") != port:
        # Only the passthrough chains are left: no service port of the pod takes it.
        return Decision(False, False, True)
    decisions: list[bool] = []
    hcm = _filter(chain, HCM)
    headers = _request_headers(authority, http) if http is not None and hcm is not None else None
    for f in chain.get("filters") or []:
        if f["name"] == NETWORK_RBAC:
            d = rbac_allows(f.get("typedConfig") or {}, port, peer, None)
            if d is not None:
                decisions.append(d)
    if hcm is not None:
        if http is None:
            # Raw bytes on an HTTP chain: the connection manager rejects them.
            return Decision(True, bool(decisions), False)
        for f in hcm.get("httpFilters") or []:
            if f["name"] == HTTP_RBAC:
                d = rbac_allows(f.get("typedConfig") or {}, port, peer, headers)
                if d is not None:
                    decisions.append(d)
    return Decision(True, bool(decisions), all(decisions))
