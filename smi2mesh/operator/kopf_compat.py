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

2. Listings go to the operator. The operator registers a callback on its
   settings object. The objects of a stream's first listing are handed to
   it one by one instead of to kopf, so kopf's own LIST fills the
   operator's cache at start-up: nothing is listed twice, and kopf does not
   spawn a worker per existing object only to run a handler that would
   cache it (at 10,000 objects that took seconds and most of the start-up
   memory). The operator's handlers only cache what they see, so nothing
   else needs those events; watch events after the listing go to kopf as
   usual. Later listings (after "410 Gone" or a broken connection) go to
   kopf too, and report only what exists, never what was deleted while
   the watch was down: the callback is told, and the operator re-lists
   that kind itself, which drops what is gone from its cache.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("smi2mesh.operator")
VANISHED_BACKOFF = 1.0  # seconds between retries of a resource that answers 404
_CALLBACK = "smi2mesh_on_listed"

Stream = Callable[..., AsyncIterator[Any]]


class Listing(enum.Enum):
    """What a listing callback is told."""

    OBJECT = "object"  # one object of a stream's first listing (kopf never sees it)
    LISTED = "listed"  # the first listing is over
    RELISTED = "relisted"  # a later listing is over (its objects went to kopf)


Listed = Callable[[tuple[str, str], str | None, Listing, Mapping[str, Any] | None], None]
"""Called with (group, plural), namespace, what happened, and the object for OBJECT."""


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
        taking = callback is not None and stream_id not in listed_before
        try:
            async for event in original(**kwargs):
                if event is watching.Bookmark.LISTED:
                    what = Listing.RELISTED if stream_id in listed_before else Listing.LISTED
                    listed_before.add(stream_id)
                    taking = False
                    if callback is not None:
                        callback(key, namespace, what, None)
                elif (taking and callback is not None and isinstance(event, dict)
                      and event.get("type") is None):
                    callback(key, namespace, Listing.OBJECT, event["object"])
                    continue
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
