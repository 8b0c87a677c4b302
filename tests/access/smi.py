"""Access evaluator for the smi target: the output is SMI again, so it is read
back through the parser and judged by the same SMI oracle as the input."""

from __future__ import annotations

from typing import Any

from smi2mesh.inputs import parse_documents
from tests.access import Request, smi_allows


def allows(objects: list[dict[str, Any]], req: Request) -> bool:
    """Whether the re-emitted SMI objects allow *req*."""
    inputs = parse_documents(((f"out:{i}", o) for i, o in enumerate(objects)))
    return smi_allows(inputs, req)
