"""Shared pytest configuration: the ``--update-golden`` flag."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden output.yaml/findings.yaml (and input copies) instead of comparing",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether this run refreshes golden files."""
    return bool(request.config.getoption("--update-golden"))
