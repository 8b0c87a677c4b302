"""Access evaluator for the gamma target: Gateway API has no authorization API,
so nothing the gamma target emits can allow a request."""

from __future__ import annotations

from typing import Any

from tests.access import Request


def allows(objects: list[dict[str, Any]], req: Request) -> bool:
    """Routes never grant access; only HTTPRoute/TCPRoute are ever emitted."""
    assert all(o["kind"] in ("HTTPRoute", "TCPRoute") for o in objects)
    return False
