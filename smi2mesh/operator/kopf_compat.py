"""Two guarded adjustments to kopf's watch loop, both at its reconnect point.

1. A resource that vanishes is not fatal. kopf stops watching a custom
   resource when its CRD-watching observer sees the CRD deleted. Deleting a
   CRD also closes the open watches of that resource, and kopf reconnects at
   once; when the reconnect reaches the API server before the observer has
   stopped the watcher, the new LIST or WATCH answers 404 and kopf treats it
   as fatal for the whole operator (kopf documents the race in
   ``observation._update_resources``). Removing and reinstalling a mesh's
   CRDs is something the operator must survive, so a 404 ends only that one
   stream: kopf's own reconnect loop then waits and tries again until the
   observer cancels the watcher, or the CRD is back and the watch resumes.

2. Listings are announced. The operator registers a callback on its
   settings object. A stream's first listing hands it the listed objects,
   so kopf's own LIST fills the operator's cache at start-up and nothing is
   listed twice. Later listings (after "410 Gone" or a broken connection)
   report only what exists, never what was deleted while the watch was
   down: the callback is told with no objects, and the operator re-lists
   that kind itself, which drops what is gone from its cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("smi2mesh.operator")
VANISHED_BACKOFF = 1.0  # seconds between retries of a resource that answers 404
_CALLBACK = "smi2mesh_on_listed"

Stream = Callable[..., AsyncIterator[Any]]
Listed = Callable[[tuple[str, str], str | None, list[Mapping[str, Any]] | None], None]
"""(group, plural), namespace, and the objects of a stream's first listing (None later)."""


def on_listed(settings: object, callback: Listed) -> None:
    """Have *callback* told of every listing of the streams run with *settings*."""
    setattr(settings, _CALLBACK, callback)


def tolerant(original: Stream, backoff: float = VANISHED_BACKOFF) -> Stream:
    """*original* (kopf's ``continuous_watch``), ending quietly on 404 and announcing listings."""
    listed_before: set[tuple[int, str, str, str | None]] = set()

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource, namespace = kwargs.get("resource"), kwargs.get("namespace")
        callback: Listed | None = getattr(kwargs.get("settings"), _CALLBACK, None)
        key = (str(getattr(resource, "group", "")), str(getattr(resource, "plural", "")))
        stream_id = (id(kwargs.get("settings")), *key, namespace)
        first = stream_id not in listed_before
        listed: list[Mapping[str, Any]] | None = [] if first and callback is not None else None
        try:
            async for event in original(**kwargs):
                if listed is not None and isinstance(event, dict) and event.get("type") is None:
                    listed.append(event["object"])
                if event is watching.Bookmark.LISTED:
                    listed_before.add(stream_id)
                    if callback is not None:
                        callback(key, namespace, listed)
                    listed = None
                yield event
        except errors.APINotFoundError:
            log.info("%s is not served any more (CRD removed?); the watch waits for discovery",
                     resource)
            await asyncio.sleep(backoff)

    continuous_watch.smi2mesh_tolerant = True  # type: ignore[attr-defined]
    return continuous_watch


def install() -> None:
    """Patch kopf once per process; fails loudly if kopf no longer has the hook."""
    current = watching.continuous_watch
    if getattr(current, "smi2mesh_tolerant", False):
        return
    watching.continuous_watch = tolerant(current)
