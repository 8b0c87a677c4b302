"""Minimal reproductions of bugs the fuzzer found, kept as regular tests.

The first two were an SMI path regex of ``$`` (the empty path, which no
request has): ``Pattern.full_regex()`` rendered it as an empty regex, which
Cilium reads as "any path" and Kuma's CRD rejects. It now renders as ``^$``.
The others say in their docstrings what they found.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.model import Identity, Inputs
from smi2mesh.translate import translate
from tests.access import HttpRequest, Request, smi_allows
from tests.access import cilium as cilium_access
from tests.golden import validate_emitted

# pathRegex "$" (or "^$") is prefix-anchored SMI for "the path is empty": no
# HTTP request has an empty path, so a match with it matches nothing.
EMPTY_PATH_GROUP = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: ns}
spec:
  matches:
  - {name: m0, pathRegex: "$"}
"""


def _inputs(text: str) -> Inputs:
    docs: list[Any] = list(yaml.safe_load_all(text))
    return parse_documents([(f"regression:{i}", d) for i, d in enumerate(docs)])


def test_cilium_empty_path_regex_does_not_allow_every_path() -> None:
    inputs = _inputs(EMPTY_PATH_GROUP + """
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: ns}
spec:
  destination: {kind: ServiceAccount, name: a}
  sources: [{kind: ServiceAccount, name: b}]
  rules: [{kind: HTTPRouteGroup, name: g}]
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns, labels: {app: a}}
spec: {serviceAccountName: a}
""")
    req = Request(Identity("b", "ns"), "ns", "a", {"app": "a"}, "TCP", 80,
                  HttpRequest("GET", "/anything", {}))
    assert not smi_allows(inputs, req)
    objects = list(translate(inputs, "cilium").objects)
    assert not cilium_access.allows(objects, req)


def test_kuma_empty_path_regex_gives_a_valid_mesh_http_route() -> None:
    inputs = _inputs(EMPTY_PATH_GROUP + """
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: ns}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}, {service: web-v2, weight: 1}]
  matches: [{kind: HTTPRouteGroup, name: g}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  ports: [{port: 80, name: http}]
""")
    objects = translate(inputs, "kuma").objects
    assert objects
    for obj in objects:
        assert validate_emitted(obj) == []


def test_old_tcproute_with_matches_ports_parses_and_keeps_the_ports() -> None:
    """Found by the 10,000-example run: a TCPRoute v1alpha1 carrying ``spec.matches``
    crashed the parser (pydantic kept it as an extra dict). The ports are honoured, as
    every port restriction is: dropping one would widen access."""
    inputs = _inputs("""
apiVersion: specs.smi-spec.io/v1alpha1
kind: TCPRoute
metadata: {name: t1, namespace: ns}
spec: {matches: {ports: [9090]}}
""")
    (route,) = inputs.port_routes
    assert route.ports == (9090,)
    assert route.ignored == ()


def test_invalid_label_values_and_keys_are_input_errors() -> None:
    """Found by the 10,000-example run of the smi traefik profile: a label value the
    API server refuses ("ÚÜ_Û") was copied into the re-emitted SMI object. Metadata the
    API server would refuse is now the project's input error, naming the label."""
    with pytest.raises(InputError) as caught:
        parse_documents([("regression:0", yaml.safe_load("""
apiVersion: specs.smi-spec.io/v1alpha3
kind: TCPRoute
metadata:
  name: t1
  namespace: default
  labels: {team: "ÚÜ_Û", ok: fine, "-bad": x, "example.com/good": "v"}
  annotations: {"a/b/c": "x", "note": "any value is fine here: ÚÜ",
                "VirtualService.v1alpha3.networking.istio.io/spec.gateways": "checked lowercased"}
"""))])
    where = sorted(p.field for p in caught.value.problems)
    assert where == ["metadata.annotations[a/b/c]", "metadata.labels[-bad]", "metadata.labels[team]"]
