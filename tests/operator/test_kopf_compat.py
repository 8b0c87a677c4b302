"""kopf's watch loop survives a resource whose CRD is deleted under it (a 404)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import errors, watching

from smi2mesh.operator import kopf_compat


async def _drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


def _failing(exc: Exception) -> Any:
    async def original(**_: Any) -> AsyncIterator[Any]:
        yield {"type": "ADDED"}
        raise exc
    return original


def test_a_404_ends_the_stream_after_the_events_before_it() -> None:
    gone = errors.APINotFoundError("not found", status=404, headers={})
    wrapped = kopf_compat.tolerant(_failing(gone), backoff=0)
    assert asyncio.run(_drain(wrapped(resource="x"))) == [{"type": "ADDED"}]


def test_other_errors_still_reach_kopf() -> None:
    refused = errors.APIForbiddenError("no", status=403, headers={})
    wrapped = kopf_compat.tolerant(_failing(refused), backoff=0)
    with pytest.raises(errors.APIForbiddenError):
        asyncio.run(_drain(wrapped(resource="x")))


def test_install_patches_the_function_kopf_reconnects_through_once() -> None:
    kopf_compat.install()
    patched = watching.continuous_watch
    kopf_compat.install()
    assert watching.continuous_watch is patched
    assert getattr(patched, "smi2mesh_tolerant", False)
    # infinite_watch looks the name up at call time, so the patch is what it runs.
    assert "continuous_watch" in watching.infinite_watch.__code__.co_names


class _Settings:
    """Stands in for kopf's OperatorSettings: the callback is stored on it."""


def _listing(*objects: str) -> Any:
    async def original(**_: Any) -> AsyncIterator[Any]:
        for name in objects:
            yield {"type": None, "object": {"metadata": {"name": name}}}
        yield watching.Bookmark.LISTED
        yield {"type": "ADDED", "object": {"metadata": {"name": "later"}}}
    return original


def test_first_listings_hand_over_their_objects_and_later_ones_only_announce() -> None:
    calls: list[tuple[tuple[str, str], str | None, list[str] | None]] = []
    settings = _Settings()

    def listed(key: tuple[str, str], ns: str | None, objects: list[Any] | None) -> None:
        names = None if objects is None else [o["metadata"]["name"] for o in objects]
        calls.append((key, ns, names))

    kopf_compat.on_listed(settings, listed)
    wrapped = kopf_compat.tolerant(_listing("a", "b"), backoff=0)
    splits = type("R", (), {"group": "split.smi-spec.io", "plural": "trafficsplits"})()
    pods = type("R", (), {"group": "", "plural": "pods"})()
    split_key = ("split.smi-spec.io", "trafficsplits")

    def stream(resource: Any, namespace: str | None) -> list[Any]:
        return asyncio.run(_drain(wrapped(settings=settings, resource=resource, namespace=namespace)))

    def last() -> tuple[tuple[str, str], str | None, list[str] | None]:
        return calls[-1]

    events = stream(splits, "shop")
    assert len(events) == 4
    assert events[2] is watching.Bookmark.LISTED
    # Only the listing is handed over, not the watch events after it.
    assert calls == [(split_key, "shop", ["a", "b"])]
    stream(pods, None)
    assert last() == (("", "pods"), None, ["a", "b"])
    stream(splits, "shop")  # a re-listing: deletions may have been missed
    assert last() == (split_key, "shop", None)
    stream(splits, "other")  # another namespace's first listing
    assert last() == (split_key, "other", ["a", "b"])
    stream(pods, None)
    assert last() == (("", "pods"), None, None)
    assert len(calls) == 5


def test_streams_without_a_callback_pass_through() -> None:
    wrapped = kopf_compat.tolerant(_listing("a"), backoff=0)
    events = asyncio.run(_drain(wrapped(settings=_Settings(), resource=None, namespace=None)))
    assert [e if e is watching.Bookmark.LISTED else e["type"] for e in events] == \
        [None, watching.Bookmark.LISTED, "ADDED"]
