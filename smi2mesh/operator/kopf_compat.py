"""One guarded adjustment to kopf's watch loop: a resource that vanishes is not fatal.

kopf stops watching a custom resource when its CRD-watching observer sees the
CRD deleted. Deleting a CRD also closes the open watches of that resource, and
kopf reconnects at once; when the reconnect reaches the API server before the
observer has stopped the watcher, the new LIST or WATCH answers 404 and kopf
treats it as fatal for the whole operator (kopf documents the race in
``observation._update_resources``). Removing and reinstalling a mesh's CRDs is
something the operator must survive, so a 404 here ends only that one stream:
kopf's own reconnect loop then waits and tries again until the observer
cancels the watcher, or the CRD is back and the watch resumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("smi2mesh.operator")
VANISHED_BACKOFF = 1.0  # seconds between retries of a resource that answers 404

Stream = Callable[..., AsyncIterator[Any]]


def tolerant(original: Stream, backoff: float = VANISHED_BACKOFF) -> Stream:
    """*original* (kopf's ``continuous_watch``), ending quietly on 404 instead of raising."""

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for event in original(**kwargs):
                yield event
        except errors.APINotFoundError:
            log.info("%s is not served any more (CRD removed?); the watch waits for discovery",
                     kwargs.get("resource"))
            await asyncio.sleep(backoff)

    continuous_watch.smi2mesh_tolerant = True  # type: ignore[attr-defined]
    return continuous_watch


def install() -> None:
    """Patch kopf once per process; fails loudly if kopf no longer has the hook."""
    current = watching.continuous_watch
    if getattr(current, "smi2mesh_tolerant", False):
        return
    watching.continuous_watch = tolerant(current)
