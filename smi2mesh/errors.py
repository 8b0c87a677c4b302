"""Errors raised by smi2mesh, and the problems they carry.

The hierarchy::

    Smi2MeshError
    └── InputError            invalid SMI input; permanent, never retried
                              (carries one Problem per bad field, all of them)

Findings are not errors: a target that cannot express a valid SMI feature
reports a :class:`smi2mesh.findings.Finding` and translation goes on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid field of one input object."""

    message: str
    field: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""
    source: str = ""  # "<file>[:<document>]" when read from files

    def render(self) -> str:
        """Format as the CLI's ``error:`` line body."""
        parts: list[str] = []
        if self.source:
            parts.append(self.source)
        if self.kind or self.name:
            parts.append(f"{self.kind} {self.namespace}/{self.name}".strip())
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class Smi2MeshError(Exception):
    """Base class of every error smi2mesh raises on purpose."""


class InputError(Smi2MeshError):
    """The input is invalid: retrying the same input cannot succeed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.render() for p in problems))
