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


def test_first_listings_go_to_the_operator_and_later_ones_to_kopf() -> None:
    calls: list[tuple[tuple[str, str], str | None, kopf_compat.Listing, str | None]] = []
    settings = _Settings()

    def listed(key: tuple[str, str], ns: str | None, what: kopf_compat.Listing,
               body: Any) -> None:
        calls.append((key, ns, what, None if body is None else body["metadata"]["name"]))

    kopf_compat.on_listed(settings, listed)
    wrapped = kopf_compat.tolerant(_listing("a", "b"), backoff=0)
    splits = type("R", (), {"group": "split.smi-spec.io", "plural": "trafficsplits"})()
    pods = type("R", (), {"group": "", "plural": "pods"})()
    split_key, pod_key = ("split.smi-spec.io", "trafficsplits"), ("", "pods")
    obj, done, again = kopf_compat.Listing.OBJECT, kopf_compat.Listing.LISTED, kopf_compat.Listing.RELISTED

    def stream(resource: Any, namespace: str | None) -> list[Any]:
        calls.clear()
        return asyncio.run(_drain(wrapped(settings=settings, resource=resource, namespace=namespace)))

    # The first listing's objects go to the operator only; kopf sees the bookmark and the watch.
    events = stream(splits, "shop")
    assert events[0] is watching.Bookmark.LISTED
    assert [e["type"] for e in events[1:]] == ["ADDED"]
    assert calls == [(split_key, "shop", obj, "a"), (split_key, "shop", obj, "b"),
                     (split_key, "shop", done, None)]
    stream(pods, None)
    assert calls == [(pod_key, None, obj, "a"), (pod_key, None, obj, "b"), (pod_key, None, done, None)]
    # A re-listing (the same stream again) goes to kopf, and is announced.
    events = stream(splits, "shop")
    assert [e if e is watching.Bookmark.LISTED else e["type"] for e in events] == \
        [None, None, watching.Bookmark.LISTED, "ADDED"]
    assert calls == [(split_key, "shop", again, None)]
    stream(splits, "other")  # another namespace's stream: a first listing
    assert calls == [(split_key, "other", obj, "a"), (split_key, "other", obj, "b"),
                     (split_key, "other", done, None)]


def test_streams_without_a_callback_pass_through() -> None:
    wrapped = kopf_compat.tolerant(_listing("a"), backoff=0)
    events = asyncio.run(_drain(wrapped(settings=_Settings(), resource=None, namespace=None)))
    assert [e if e is watching.Bookmark.LISTED else e["type"] for e in events] == \
        [None, watching.Bookmark.LISTED, "ADDED"]
