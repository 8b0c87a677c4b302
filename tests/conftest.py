"""Shared pytest configuration: the ``--update-golden`` flag and the envtest fixtures."""

from __future__ import annotations

import pytest

# The real-API-server tier: kube-apiserver, etcd and kube-controller-manager
# built from Go modules by scripts/envtest (see tests/envtest/).
pytest_plugins = ["tests.envtest.fixtures"]


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
