"""The status smi2mesh writes on SMI objects, and the condition vocabulary.

Defined here (not in the operator) because the project's CRDs are generated
from these models too.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConditionType(StrEnum):
    """Condition types on every SMI object."""

    READY = "Ready"
    RESOLVED_REFS = "ResolvedRefs"
    NOT_EXPRESSIBLE = "NotExpressible"
    CONFLICT = "Conflict"


class ConditionStatus(StrEnum):
    """Kubernetes condition status values."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


class Condition(_Model):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str


class GeneratedRef(_Model):
    """One mesh object generated from this SMI object."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None


class SmiStatus(_Model):
    """``status`` of every SMI object reconciled by smi2mesh."""

    mesh: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = []
    generated: list[GeneratedRef] = []
