"""Findings: what a target mesh cannot express, reported instead of dropped."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FindingReason(StrEnum):
    """Why a finding was raised. Values are CamelCase, as Kubernetes reasons are."""

    # The target has no way to express the field; routing for it is not emitted.
    NOT_EXPRESSIBLE = "NotExpressible"
    # An access rule could not be expressed without widening it, so no allow
    # rule was emitted for it (fail closed).
    ACCESS_FAIL_CLOSED = "AccessFailClosed"
    # A referenced object (HTTPRouteGroup, Service, workloads) does not exist.
    UNRESOLVED_REFERENCE = "UnresolvedReference"
    # Pods of a ServiceAccount cannot be selected by labels without also
    # selecting pods of another ServiceAccount.
    AMBIGUOUS_SELECTOR = "AmbiguousSelector"
    # Two SMI objects want the same target object; the oldest/first one wins.
    DUPLICATE_TARGET = "DuplicateTarget"
    # An unknown field in the SMI object was ignored.
    IGNORED_FIELD = "IgnoredField"
    # Expressed in another form with the same meaning (e.g. a destination port
    # carried by a generated TCPRoute).
    REWRITTEN = "Rewritten"
    # Something the mesh needs that SMI does not carry (a prerequisite to check).
    PREREQUISITE = "Prerequisite"
    # An HTTP rule the mesh cannot enforce was granted at L4 instead, because
    # the user asked for it (--widen-l7-to-l4): broader than SMI allows.
    WIDENED = "Widened"
    # An object in the cluster that smi2mesh does not manage takes precedence
    # over what was emitted (a Linkerd ServiceProfile makes the routes for its
    # Service inert) or holds the name it would write. The operator reports it
    # as Conflict=True.
    CONFLICT = "Conflict"


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One thing the target could not express, tied to the SMI field it came from."""

    namespace: str
    kind: str
    name: str
    field: str
    reason: FindingReason
    message: str

    def render(self) -> str:
        """Format as ``<namespace>/<Kind>/<name>: <field.path>: <reason>``."""
        return f"{self.namespace}/{self.kind}/{self.name}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        """Plain form for golden files and JSON output."""
        return {
            "object": f"{self.namespace}/{self.kind}/{self.name}",
            "field": self.field,
            "reason": self.reason.value,
            "message": self.message,
        }
