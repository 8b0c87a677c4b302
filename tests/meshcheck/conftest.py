"""Pytest fixtures of the meshcheck tier: the mesh-native checkers, built on first use.

A checker that cannot be built fails the tests that need it, naming the Go
module (never a skip): the tier's promise is that the meshes' own code read
every output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.meshcheck import meshcheck


@pytest.fixture(scope="session")
def meshcheck_tool() -> Callable[[str], Path]:
    """``meshcheck_tool(name)``: the path of a registered tool's binary, built if needed."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            try:
                built[name] = meshcheck.build(name)
            except meshcheck.MeshcheckError as error:
                failure = str(error)
            else:
                return built[name]
            # Outside the except block: pytest would print a chained exception twice.
            pytest.fail(f"meshcheck: cannot build {name}:\n{failure}", pytrace=False)
        return built[name]

    return get
