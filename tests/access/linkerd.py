"""Access evaluator for the linkerd target: Linkerd's inbound policy, read from the emitted objects.

It interprets ``policy.linkerd.io`` objects the way the policy controller and
the proxy (linkerd2-proxy ``server-policy``/``http-route``) do:

* a ``Server`` applies to a pod port when its ``podSelector`` selects the
  pod's labels (same namespace) and its ``port`` is the request's port;
* a TCP connection that is not HTTP is authorized by the policies on the
  Server (or its Namespace);
* an HTTP request on a Server with routes must match a route; the route with
  the most specific match wins (length of the path matched, then method, then
  number of header and query conditions), and the request is authorized by
  the policies on that route *or* on the Server. With no routes, a default
  route carries the Server's policies;
* a policy applies when all its required authentications are satisfied, and
  is ignored when one of them does not exist;
* regexes match when a leftmost-first search spans the whole value.

Where Linkerd's choice depends on something the objects do not carry (which
of two overlapping Servers or of two equally specific routes is older, the
client's IP for a NetworkAuthentication, a named port), the evaluator takes
the most permissive reading, so the safety property stays strong. UDP is
never proxied, so never allowed.

:func:`default_denies` tells whether a request nothing allows is refused at
all: only on a pod port some deny Server selects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import re2

from smi2mesh.model import Identity
from tests.access import HttpRequest, Request

Obj = Mapping[str, Any]
POLICY = "policy.linkerd.io"
GATEWAY = "gateway.networking.k8s.io"
TRUST_DOMAIN = "cluster.local"
_OPEN_POLICIES = frozenset({"all-unauthenticated", "cluster-unauthenticated", "all-authenticated",
                            "cluster-authenticated", "audit"})

Summary = tuple[int, bool, int, int]


def _group(obj: Obj) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""


def _is(obj: Obj, group: str, kind: str) -> bool:
    return _group(obj) == group and str(obj.get("kind", "")).lower() == kind.lower()


def _meta(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "default")), str(meta.get("name", ""))


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def selects(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; an empty selector selects everything."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(str(k)) != str(v):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], [str(v) for v in expr.get("values") or []]
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


def _port_matches(port: object, req_port: int) -> bool:
    if isinstance(port, int):
        return port == req_port
    if isinstance(port, str) and port.isdigit():
        return int(port) == req_port
    # A named port: the request does not say which names the pod gives its ports.
    return isinstance(port, str)


def _full_match(pattern: str, value: str) -> bool:
    m = re2.search(pattern, value)
    return m is not None and m.start() == 0 and m.end() == len(value)


def identity_string(source: Identity, trust_domain: str = TRUST_DOMAIN) -> str:
    """The mTLS identity Linkerd gives a ServiceAccount."""
    return f"{source.name}.{source.namespace}.serviceaccount.identity.linkerd.{trust_domain}"


def _identity_matches(pattern: str, source: Identity) -> bool:
    ident = identity_string(source)
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return ident.endswith(pattern[1:])
    return pattern == ident


def _mtls_authenticates(authn: Obj, source: Identity) -> bool:
    ns, _ = _meta(authn)
    spec = _spec(authn)
    for ref in spec.get("identityRefs") or []:
        kind = str(ref.get("kind", "")).lower()
        name = ref.get("name")
        if kind == "serviceaccount":
            if (name is None or name == source.name) and ref.get("namespace", ns) == source.namespace:
                return True
        elif kind == "namespace" and (name is None or name == source.namespace):
            return True
    return any(_identity_matches(str(p), source) for p in spec.get("identities") or [])


def _find(objects: Sequence[Obj], group: str, kind: str, ns: str, name: str) -> Obj | None:
    for o in objects:
        if _is(o, group, kind) and _meta(o) == (ns, name):
            return o
    return None


def _policy_authorizes(objects: Sequence[Obj], policy: Obj, source: Identity) -> bool:
    """All required authentications hold; a missing one voids the policy."""
    ns, _ = _meta(policy)
    for ref in _spec(policy).get("requiredAuthenticationRefs") or []:
        kind = str(ref.get("kind", "")).lower()
        ref_ns = str(ref.get("namespace") or ns)
        name = str(ref.get("name", ""))
        if kind == "meshtlsauthentication":
            authn = _find(objects, POLICY, "MeshTLSAuthentication", ref_ns, name)
            if authn is None or not _mtls_authenticates(authn, source):
                return False
        elif kind == "networkauthentication":
            # The client's IP is unknown here: an existing one is taken as satisfied.
            if _find(objects, POLICY, "NetworkAuthentication", ref_ns, name) is None:
                return False
        elif kind == "serviceaccount":
            if (source.name, source.namespace) != (name, ref_ns):
                return False
        else:
            return False
    return True


def _targets(policy: Obj, group: str, kind: str, name: str, ns: str) -> bool:
    ref = _spec(policy).get("targetRef") or {}
    ref_kind = str(ref.get("kind", "")).lower()
    if ref_kind == "namespace":
        return bool(ref.get("name") == ns)
    return (ref_kind == kind.lower() and str(ref.get("group", "")) == group
            and ref.get("name") == name)


def _authorized_on(objects: Sequence[Obj], targets: Sequence[tuple[str, str, str]], ns: str,
                   source: Identity) -> bool:
    """Whether an AuthorizationPolicy on any of *targets* ((group, kind, name)) admits *source*."""
    for o in objects:
        if not _is(o, POLICY, "AuthorizationPolicy") or _meta(o)[0] != ns:
            continue
        if any(_targets(o, g, k, n, ns) for g, k, n in targets) and _policy_authorizes(objects, o, source):
            return True
    return False


def _server_authorization(objects: Sequence[Obj], server: Obj, source: Identity) -> bool:
    """The legacy ServerAuthorization resource, for completeness."""
    ns, name = _meta(server)
    labels = (server.get("metadata") or {}).get("labels") or {}
    for o in objects:
        if not _is(o, POLICY, "ServerAuthorization") or _meta(o)[0] != ns:
            continue
        spec = _spec(o)
        ref = spec.get("server") or {}
        if "name" in ref and ref["name"] != name:
            continue
        if "selector" in ref and not selects(ref["selector"], labels):
            continue
        client = spec.get("client") or {}
        if client.get("unauthenticated"):
            return True
        mtls = client.get("meshTLS") or {}
        if mtls.get("unauthenticatedTLS"):
            return True
        if any(_identity_matches(str(p), source) for p in mtls.get("identities") or []):
            return True
        for sa in mtls.get("serviceAccounts") or []:
            if sa.get("name") == source.name and sa.get("namespace", ns) == source.namespace:
                return True
    return False


# ---- HTTP route matching -------------------------------------------------


def path_match(match: Obj | None, path: str) -> int | None:
    """Length Linkerd ranks a path match by, or None when it does not match."""
    match = match or {}
    kind = match.get("type", "PathPrefix")
    value = str(match.get("value", "/"))
    if kind == "Exact":
        return len(value) if value == path else None
    if kind == "RegularExpression":
        return len(path) if _full_match(value, path) else None
    if value == "/":
        return 1
    prefix = value.rstrip("/")
    trimmed = path.rstrip("/")
    if not trimmed.startswith(prefix):
        return None
    rest = trimmed[len(prefix):]
    return len(prefix) if rest == "" or rest.startswith("/") else None


def _header_matches(cond: Obj, headers: Mapping[str, str]) -> bool:
    value = headers.get(str(cond["name"]).lower())
    if value is None:
        return False
    if cond.get("type", "Exact") == "RegularExpression":
        return _full_match(str(cond["value"]), value)
    return value == str(cond["value"])


def request_match(match: Obj, req: HttpRequest) -> Summary | None:
    """Linkerd's summary of one HTTPRouteMatch against a request, or None."""
    method = match.get("method")
    if method is not None and method != req.method:
        return None
    # Linkerd matches the URI's path; the query string is not part of it.
    length = path_match(match.get("path"), req.path.split("?", 1)[0])
    if length is None:
        return None
    headers = match.get("headers") or []
    if not all(_header_matches(h, req.headers) for h in headers):
        return None
    if match.get("queryParams"):
        return None  # the request model carries no query string
    return (length, method is not None, len(headers), 0)


def _route_summary(route: Obj, req: HttpRequest) -> Summary | None:
    best: Summary | None = None
    for rule in _spec(route).get("rules") or [{}]:
        matches = rule.get("matches")
        candidates = [request_match(m, req) for m in matches] if matches else [(1, False, 0, 0)]
        for s in candidates:
            if s is not None and (best is None or s > best):
                best = s
    return best


def _parents_server(route: Obj, ns: str, server: str) -> bool:
    default_group = POLICY if _group(route) == POLICY else GATEWAY
    for ref in _spec(route).get("parentRefs") or []:
        if (ref.get("group", default_group) == POLICY and str(ref.get("kind", "Gateway")).lower() == "server"
                and ref.get("name") == server and ref.get("namespace", ns) == ns):
            return True
    return False


def _server_allows(objects: Sequence[Obj], server: Obj, req: Request) -> bool:
    ns, name = _meta(server)
    spec = _spec(server)
    if str(spec.get("accessPolicy", "deny")) in _OPEN_POLICIES:
        return True
    server_ref = [(POLICY, "Server", name)]

    def on_server() -> bool:
        return (_authorized_on(objects, server_ref, ns, req.source)
                or _server_authorization(objects, server, req.source))

    protocol = str(spec.get("proxyProtocol", "unknown"))
    if req.http is None:
        return protocol in ("unknown", "opaque", "TLS") and on_server()
    if protocol in ("opaque", "TLS"):
        return on_server()
    if protocol == "gRPC":
        # gRPC servers use GRPCRoutes, whose matching is not modelled: any
        # policy on an attached GRPCRoute is taken as applying.
        grpc = [(GATEWAY, "GRPCRoute", _meta(r)[1]) for r in objects
                if _is(r, GATEWAY, "GRPCRoute") and _meta(r)[0] == ns and _parents_server(r, ns, name)]
        return on_server() or _authorized_on(objects, grpc, ns, req.source)
    routes = [r for r in objects
              if (_is(r, POLICY, "HTTPRoute") or _is(r, GATEWAY, "HTTPRoute"))
              and _meta(r)[0] == ns and _parents_server(r, ns, name)]
    if not routes:
        return on_server()
    scored = [(s, r) for r in routes if (s := _route_summary(r, req.http)) is not None]
    if not scored:
        return False  # no route: Linkerd answers 404
    best = max(s for s, _ in scored)
    # Among equally specific routes Linkerd takes the oldest; any of them may be it.
    chosen = [r for s, r in scored if s == best]
    if on_server():
        return True
    return any(_authorized_on(objects, [(_group(r), "HTTPRoute", _meta(r)[1])], ns, req.source)
               for r in chosen)


def default_denies(objects: list[dict[str, Any]], req: Request) -> bool:
    """Whether the destination pod port refuses what no policy allows.

    Only a Server decides that: a pod port without one follows the default
    inbound policy (all-unauthenticated unless configured otherwise). A named
    Server port may not be this one, so only numeric ports count here, and
    where Servers overlap every one of them must deny.
    """
    if req.protocol != "TCP":
        return False
    servers = [_spec(o) for o in objects
               if _is(o, POLICY, "Server") and _meta(o)[0] == req.dest_namespace
               and "podSelector" in _spec(o)
               and selects(_spec(o).get("podSelector"), req.dest_pod_labels)
               and str(_spec(o).get("port")) == str(req.port)]
    return bool(servers) and all(str(s.get("accessPolicy", "deny")) not in _OPEN_POLICIES
                                 for s in servers)


def allows(objects: list[dict[str, Any]], req: Request) -> bool:
    """Whether Linkerd, given *objects*, explicitly allows *req*."""
    if req.protocol != "TCP":
        return False
    servers = [o for o in objects
               if _is(o, POLICY, "Server") and _meta(o)[0] == req.dest_namespace
               and "podSelector" in _spec(o)
               and selects(_spec(o).get("podSelector"), req.dest_pod_labels)
               and _port_matches(_spec(o).get("port"), req.port)]
    # Overlapping Servers: Linkerd uses one of them; any may be the one.
    return any(_server_allows(objects, s, req) for s in servers)
