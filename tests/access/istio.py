"""Istio AuthorizationPolicy, evaluated the way an Istio sidecar enforces it.

An independent reading of Istio's documented semantics (security.istio.io
AuthorizationPolicy reference and the authorization concept page), not a
re-run of the translator:

* A policy applies to a pod when it is in the pod's namespace (or the root
  namespace, ``istio-system``) and its ``selector.matchLabels`` is a subset of
  the pod's labels; no selector selects the whole namespace. Policies bound
  with ``targetRef(s)`` attach to gateways/waypoints, not to sidecars.
* CUSTOM and DENY policies are checked first; then the request is allowed
  only if some ALLOW policy matches. A policy without rules matches nothing;
  an empty rule (``{}``) matches everything.
* A rule matches when its ``from`` (any source), ``to`` (any operation) and
  every ``when`` condition match; inside a source or an operation every
  present field must match.
* Strings match exactly, as ``prefix*``, ``*suffix``, or ``*`` (non-empty);
  ports only exactly; paths also as ``{*}``/``{**}`` templates; header
  conditions use ``*`` as presence.
* For plain TCP, an ALLOW rule with HTTP-only fields (methods, paths, hosts,
  request principals, request.* conditions) is ignored, while a DENY rule
  drops those fields and so denies more.
* Istio never sees UDP: no policy allows it.
* :func:`default_denies` tells whether a request no ALLOW rule matches is
  refused at all: only when some ALLOW policy selects the pod; otherwise
  Istio's default (allow) applies.

Request data the model does not carry (IP blocks, hosts, JWT claims) never
satisfies an ALLOW rule and always satisfies a DENY rule, so the evaluator
errs towards "not allowed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import re2

from tests.access import Request, labels_match

ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"
_HTTP_OPERATION_FIELDS = ("methods", "notMethods", "paths", "notPaths", "hosts", "notHosts")
_HTTP_SOURCE_FIELDS = ("requestPrincipals", "notRequestPrincipals")


def allows(objects: list[dict[str, Any]], req: Request) -> bool:
    """Whether an Istio sidecar in front of the destination pod lets *req* through."""
    if req.protocol != "TCP":
        return False
    policies = [o for o in objects if _is_policy(o) and _selects(o, req)]
    by_action: dict[str, list[Mapping[str, Any]]] = {}
    for p in policies:
        spec = p.get("spec") or {}
        by_action.setdefault(spec.get("action", "ALLOW"), []).append(spec)
    # CUSTOM delegates to an external authorizer we cannot consult: a match may deny.
    for action in ("CUSTOM", "DENY"):
        if any(_policy_matches(spec, req, deny=True) for spec in by_action.get(action, [])):
            return False
    return any(_policy_matches(spec, req, deny=False) for spec in by_action.get("ALLOW", []))


def default_denies(objects: list[dict[str, Any]], req: Request) -> bool:
    """Whether the destination pod refuses what no policy allows: some ALLOW policy selects it.

    Istio allows every request to a workload no ALLOW policy applies to; once
    one applies (even one without rules), a request must match an ALLOW rule.
    UDP is never seen by Istio, so it is never denied either.
    """
    if req.protocol != "TCP":
        return False
    return any(_is_policy(o) and _selects(o, req)
               and (o.get("spec") or {}).get("action", "ALLOW") == "ALLOW" for o in objects)


def _is_policy(obj: Mapping[str, Any]) -> bool:
    return (str(obj.get("apiVersion", "")).startswith("security.istio.io/")
            and obj.get("kind") == "AuthorizationPolicy")


def _selects(obj: Mapping[str, Any], req: Request) -> bool:
    ns = (obj.get("metadata") or {}).get("namespace", "")
    if ns not in (req.dest_namespace, ROOT_NAMESPACE):
        return False
    spec = obj.get("spec") or {}
    if "targetRef" in spec or "targetRefs" in spec:
        return False
    selector = spec.get("selector")
    if selector is None:
        return True
    return labels_match(selector.get("matchLabels") or {}, req.dest_pod_labels)


def _policy_matches(spec: Mapping[str, Any], req: Request, *, deny: bool) -> bool:
    return any(_rule_matches(rule or {}, req, deny=deny) for rule in spec.get("rules") or [])


def _rule_matches(rule: Mapping[str, Any], req: Request, *, deny: bool) -> bool:
    tcp = req.http is None
    if tcp and not deny and _has_http_fields(rule):
        return False
    sources = rule.get("from")
    if sources is not None and not any(
            _source_matches(s.get("source") or {}, req, deny=deny) for s in sources):
        return False
    operations = rule.get("to")
    if operations is not None and not any(
            _operation_matches(o.get("operation") or {}, req, deny=deny) for o in operations):
        return False
    return all(_condition_matches(c, req, deny=deny) for c in rule.get("when") or [])


def _has_http_fields(rule: Mapping[str, Any]) -> bool:
    for s in rule.get("from") or []:
        if any(f in (s.get("source") or {}) for f in _HTTP_SOURCE_FIELDS):
            return True
    for o in rule.get("to") or []:
        if any(f in (o.get("operation") or {}) for f in _HTTP_OPERATION_FIELDS):
            return True
    return any(str(c.get("key", "")).startswith("request.") for c in rule.get("when") or [])


def source_principal(req: Request) -> str:
    """The mTLS principal of the source workload (SPIFFE ID without the scheme)."""
    return f"{TRUST_DOMAIN}/ns/{req.source.namespace}/sa/{req.source.name}"


def _source_matches(source: Mapping[str, Any], req: Request, *, deny: bool) -> bool:
    known: dict[str, str] = {
        "principals": source_principal(req),
        "namespaces": req.source.namespace,
        "trustDomains": TRUST_DOMAIN,
    }
    for name, values in source.items():
        negated = name.startswith("not")
        base = name[3].lower() + name[4:] if negated else name
        if base == "serviceAccounts":
            hit = f"{req.source.namespace}/{req.source.name}" in values
        elif base in known:
            hit = any(value_matches(v, known[base]) for v in values)
        elif base == "requestPrincipals" and req.http is None:
            # DENY on TCP drops HTTP-only fields.
            continue
        else:
            if not deny:
                return False
            continue
        if hit == negated:
            return False
    return True


def _operation_matches(op: Mapping[str, Any], req: Request, *, deny: bool) -> bool:
    for name, values in op.items():
        negated = name.startswith("not")
        base = name[3].lower() + name[4:] if negated else name
        if base == "ports":
            hit = str(req.port) in values
        elif req.http is None and base in ("methods", "paths", "hosts"):
            continue  # only reached for DENY, which drops HTTP-only fields on TCP
        elif base == "methods":
            assert req.http is not None
            hit = any(value_matches(v, req.http.method) for v in values)
        elif base == "paths":
            assert req.http is not None
            path = req.http.path.split("?", 1)[0]
            hit = any(path_matches(v, path) for v in values)
        else:
            if not deny:
                return False
            continue
        if hit == negated:
            return False
    return True


def _condition_matches(cond: Mapping[str, Any], req: Request, *, deny: bool) -> bool:
    key = str(cond.get("key", ""))
    values: Sequence[str] = cond.get("values") or []
    not_values: Sequence[str] = cond.get("notValues") or []
    if key.startswith("request.headers[") and key.endswith("]"):
        if req.http is None:
            return True  # only reached for DENY, which drops HTTP-only conditions on TCP
        actual = req.http.headers.get(key[len("request.headers["):-1].lower())
        if actual is None:
            return not values
        matcher = header_value_matches
    elif key == "source.principal":
        actual, matcher = source_principal(req), value_matches
    elif key == "source.namespace":
        actual, matcher = req.source.namespace, value_matches
    elif key == "destination.port":
        actual = str(req.port)
        return (not values or actual in values) and actual not in not_values
    else:
        return deny
    if values and not any(matcher(v, actual) for v in values):
        return False
    return not any(matcher(v, actual) for v in not_values)


def value_matches(pattern: str, value: str) -> bool:
    """Istio string matching: exact, ``prefix*``, ``*suffix``, or ``*`` for any non-empty value."""
    if pattern == "*":
        return value != ""
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def header_value_matches(pattern: str, value: str) -> bool:
    """Header conditions: like :func:`value_matches`, but ``*`` is Envoy's presence match."""
    return True if pattern == "*" else value_matches(pattern, value)


def path_matches(pattern: str, path: str) -> bool:
    """Path matching, with the ``{*}`` (one segment) and ``{**}`` (rest) templates."""
    if "{*}" not in pattern and "{**}" not in pattern:
        return value_matches(pattern, path)
    regex = ""
    for i, part in enumerate(pattern.split("{**}")):
        if i:
            regex += ".*"
        regex += "[^/]+".join(re2.escape(seg) for seg in part.split("{*}"))
    return re2.fullmatch(regex, path) is not None
