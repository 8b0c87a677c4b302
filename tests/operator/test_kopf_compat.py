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
