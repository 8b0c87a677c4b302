"""Admission rules of Kuma, Linkerd and consul-k8s, re-expressed in Python.

These meshes' admission code cannot be built here (Kuma's Go module is not
served by the module proxy, Linkerd's policy controller is Rust with
unpublished crates, Consul >= 1.17 is not open source), so each module of
this package restates, rule by rule, what its webhook checks at one pinned
tag, and cites the upstream file and line range of every rule:

* :mod:`tests.meshrules.kuma`: kumahq/kuma v2.14.3, the defaulting and
  validating webhooks of MeshHTTPRoute, MeshTCPRoute, MeshTrafficPermission;
* :mod:`tests.meshrules.linkerd`: linkerd/linkerd2 version-2.20,
  ``policy-controller/runtime/src/admission.rs`` and what it calls;
* :mod:`tests.meshrules.consul`: hashicorp/consul-k8s v2.0.3, the webhooks of
  ServiceDefaults, ServiceRouter, ServiceSplitter, ServiceIntentions.

Each module offers ``validate(obj, ...) -> Verdict`` for one object and
``validate_batch(objs, ...) -> list[Verdict]`` for a set applied together
(consul-k8s has rules across objects). A kind the module has no rules for
raises :class:`NotCovered`, so an output the tier cannot judge is never
passed silently.

Messages are our own words; only the rule identifiers (``<mesh>.<rule>``)
are stable, and every module lists its identifiers in ``RULE_IDS`` so the
tests can show each one rejecting a bad example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


class NotCovered(LookupError):
    """The object's kind is not admitted by the webhooks this module re-expresses."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule's finding on one field: ``rule`` is a ``RULE_IDS`` entry."""

    rule: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail} [{self.rule}]"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a webhook answers: denied when there is any error; warnings never deny."""

    violations: tuple[Violation, ...] = ()
    deprecations: tuple[Violation, ...] = ()

    @property
    def errors(self) -> list[str]:
        return [str(v) for v in self.violations]

    @property
    def warnings(self) -> list[str]:
        return [str(v) for v in self.deprecations]

    @property
    def allowed(self) -> bool:
        return not self.violations

    @property
    def error_rules(self) -> set[str]:
        return {v.rule for v in self.violations}

    @property
    def warning_rules(self) -> set[str]:
        return {v.rule for v in self.deprecations}


class Collector:
    """Gathers violations of one object, refusing rule ids the module did not declare."""

    def __init__(self, rule_ids: Iterable[str]) -> None:
        self._known = frozenset(rule_ids)
        self.errors: list[Violation] = []
        self.warnings: list[Violation] = []

    def _check(self, rule: str) -> None:
        if rule not in self._known:
            raise KeyError(f"undeclared rule id {rule!r}")

    def error(self, rule: str, path: str, detail: str) -> None:
        self._check(rule)
        self.errors.append(Violation(rule, path, detail))

    def warn(self, rule: str, path: str, detail: str) -> None:
        self._check(rule)
        self.warnings.append(Violation(rule, path, detail))

    def verdict(self) -> Verdict:
        return Verdict(tuple(self.errors), tuple(self.warnings))


def as_list(value: Any) -> list[Any]:
    """A YAML list, with null and absent read as empty (Go's nil slice, Rust's None)."""
    return list(value) if isinstance(value, list) else []


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def maps(value: Any) -> list[Mapping[str, Any]]:
    """A YAML list of objects; an item that is not an object reads as empty."""
    return [as_map(item) for item in as_list(value)]


def as_str(value: Any) -> str:
    """A Go string field: absent or null is the empty string."""
    return value if isinstance(value, str) else ""


# k8s.io/apimachinery v0.36 pkg/util/validation/validation.go:184-208 (IsDNS1123Subdomain),
# used by Kuma for hostnames and SNI values.
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


@dataclass(frozen=True)
class RuleCase:
    """A rule's bad example and a close good one (the tests' table row).

    ``good`` differs from ``bad`` only in what the rule is about. For a
    batch rule (consul-k8s uniqueness), ``bad`` and ``good`` are lists and
    the verdict of the last object is the one judged.
    """

    rule: str
    bad: Any
    good: Any
    mode: str = "off"
    note: str = ""
    # The mode the good example is judged in, when the rule is about the mode (consul-k8s).
    good_mode: str | None = None

    @property
    def id(self) -> str:
        return f"{self.rule}{'-' + self.note if self.note else ''}"
