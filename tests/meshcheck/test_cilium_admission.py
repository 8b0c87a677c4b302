"""Cilium's own parsers accept every Cilium output: golden cases, examples and a fuzz sample.

The judge is ``cilium-check admit`` (tests/meshcheck/cilium): the agent's
sanitizer ``CiliumNetworkPolicy.Parse`` for CiliumNetworkPolicies and the
agent's CEC resource parser, with Envoy's proto validation, for
CiliumEnvoyConfigs (which the cilium target does not emit today; any it
emits later is judged the same way). An object passes when the agent would
import it whole: no parse error and no field the agent's types do not know
(the agent decodes leniently and would drop such a field without a word).
Gateway API routes, the cilium target's split output, are read by no Cilium
parser and are left to the CRD and API-server tiers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from smi2mesh import yamlio
from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from tests import golden
from tests.fuzz.strategies import document_sets
from tests.meshcheck.cilium.client import Admission, admit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = golden.cases("cilium")
# Gateway API routes are the only kinds the cilium target emits that no
# Cilium parser reads.
UNJUDGED_GROUPS = ("gateway.networking.k8s.io/",)
FUZZ_SEED = 20261206
FUZZ_MIN = 500


@pytest.fixture(scope="module", autouse=True)
def _built(meshcheck_tool: Callable[[str], Path]) -> None:
    meshcheck_tool("cilium-check")


def _problems(objects: Sequence[Mapping[str, Any]], verdicts: Sequence[Admission]) -> list[str]:
    """Every object the agent would not import whole, or that no parser judged unexpectedly."""
    out = []
    for obj, v in zip(objects, verdicts, strict=True):
        where = f"{obj.get('kind')} {v.namespace}/{v.name}"
        if not v.judged:
            if not str(obj.get("apiVersion", "")).startswith(UNJUDGED_GROUPS):
                out.append(f"{where}: no Cilium parser judged it")
            continue
        if not v.ok:
            out.append(f"{where}: rejected: {'; '.join(v.errors)}")
        if v.dropped:
            out.append(f"{where}: the agent would drop: {'; '.join(v.dropped)}")
        if v.ok and v.rules == 0:
            out.append(f"{where}: accepted but yields no rule")
    return out


@pytest.fixture(scope="module")
def golden_verdicts() -> dict[str, tuple[list[Any], list[Admission]]]:
    """Every golden case's output, judged in one call."""
    objects = [(case.id, obj) for case in CASES for obj in case.expected_objects()]
    verdicts = admit([o for _, o in objects])
    out: dict[str, tuple[list[Any], list[Admission]]] = {c.id: ([], []) for c in CASES}
    for (case_id, obj), v in zip(objects, verdicts, strict=True):
        out[case_id][0].append(obj)
        out[case_id][1].append(v)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_output_is_accepted_by_cilium(
        case: golden.Case, golden_verdicts: dict[str, tuple[list[Any], list[Admission]]]) -> None:
    objects, verdicts = golden_verdicts[case.id]
    assert _problems(objects, verdicts) == []


def test_every_golden_policy_was_judged(
        golden_verdicts: dict[str, tuple[list[Any], list[Admission]]]) -> None:
    judged = [v for _, vs in golden_verdicts.values() for v in vs if v.judged]
    policies = [o for objs, _ in golden_verdicts.values() for o in objs
                if o.get("kind") == "CiliumNetworkPolicy"]
    assert len(judged) == len(policies) > 0


def test_examples_output_is_accepted_by_cilium() -> None:
    inputs = parse_documents(yamlio.read_sources([str(EXAMPLES)]))
    objects = [dict(o) for o in translate(inputs, "cilium").objects]
    verdicts = admit(objects)
    assert _problems(objects, verdicts) == []
    assert sum(v.judged for v in verdicts) > 0


def _fuzz_sample() -> list[list[Any]]:
    """Generated document sets from tests/fuzz, with a fixed seed (the same every run)."""
    sample: list[list[Any]] = []

    @seed(FUZZ_SEED)
    @settings(max_examples=3 * FUZZ_MIN, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(docs=document_sets())
    def collect(docs: list[Any]) -> None:
        sample.append(copy.deepcopy(docs))

    collect()
    return sample


def test_fuzz_sample_output_is_accepted_by_cilium() -> None:
    translated = 0
    objects: list[tuple[int, dict[str, Any]]] = []
    for i, docs in enumerate(_fuzz_sample()):
        try:
            inputs = parse_documents([(f"fuzz-{i}.yaml:{j + 1}", d) for j, d in enumerate(docs)])
        except InputError:
            continue  # invalid input: nothing is emitted, the fuzz tier checks the error
        translated += 1
        objects.extend((i, dict(o)) for o in translate(inputs, "cilium").objects)
    assert translated >= FUZZ_MIN, f"only {translated} generated inputs parsed"
    verdicts = admit([o for _, o in objects])  # one call for the whole sample
    problems = [f"example {i}: {p}" for (i, obj), v in zip(objects, verdicts, strict=True)
                for p in _problems([obj], [v])]
    assert problems == []
    # Not vacuous: the sample reached the policy translation many times.
    assert sum(v.judged for v in verdicts) >= FUZZ_MIN // 2


# The judge is live: objects the agent refuses are refused here, each for its
# own reason (pkg/policy/api/rule_validation.go, l4.go, the CEC parser).
_CNP = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "p", "namespace": "ns"}}
_L7 = {"http": [{"method": "GET"}]}
_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def _cnp(ingress: list[Any]) -> dict[str, Any]:
    return {**_CNP, "spec": {"endpointSelector": {}, "ingress": ingress}}


def _cec(resources: list[Any]) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumEnvoyConfig",
            "metadata": {"name": "c", "namespace": "ns"}, "spec": {"resources": resources}}


REFUSED = {
    "l7-on-port-0": (_cnp([{"toPorts": [{"ports": [{"port": "0", "protocol": "TCP"}],
                                         "rules": _L7}]}]), "L7 rules can not be used when a port is 0"),
    "bad-protocol": (_cnp([{"toPorts": [{"ports": [{"port": "80", "protocol": "XTP"}]}]}]),
                     "invalid protocol"),
    "l7-on-udp": (_cnp([{"toPorts": [{"ports": [{"port": "80", "protocol": "UDP"}], "rules": _L7}]}]),
                  "L7 rules can only apply to TCP"),
    "41-ports": (_cnp([{"toPorts": [{"ports": [{"port": str(p), "protocol": "TCP"}
                                              for p in range(7000, 7041)]}]}]), "too many ports"),
    "no-rule": ({**_CNP, "spec": {"endpointSelector": {}}}, "at least one of"),
    "undecodable-cec": (_cec([{"@type": _LISTENER, "name": "l", "bogus": 1}]),
                        "the agent drops it silently"),
    "unnamed-cluster": (_cec([{"@type": _CLUSTER, "name": ""}]), "Cluster name"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_the_judge_refuses_what_the_agent_refuses(name: str) -> None:
    obj, reason = REFUSED[name]
    [verdict] = admit([obj])
    assert verdict.judged
    assert not verdict.ok
    assert any(reason in e for e in verdict.errors), verdict.errors


def test_the_judge_reports_fields_the_agent_would_drop() -> None:
    obj = _cnp([{"fromEndpoints": [{}]}])
    obj["spec"]["ingres"] = []
    [verdict] = admit([obj])
    assert verdict.ok
    assert verdict.dropped == ('unknown field "spec.ingres"',)
    assert _problems([obj], [verdict]) != []


def test_the_judge_accepts_a_valid_cec() -> None:
    tcp_proxy = {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                 "stat_prefix": "x", "cluster": "c"}
    cec = _cec([{"@type": _LISTENER, "name": "l",
                 "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                                 "typed_config": tcp_proxy}]}]},
                {"@type": _CLUSTER, "name": "c", "connect_timeout": "1s"}])
    [verdict] = admit([cec])
    assert verdict.ok
    assert verdict.errors == ()
    assert verdict.rules == 2
