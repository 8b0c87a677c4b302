"""Reporting for the fuzz tests: per-target counters at the end of the run.

With ``SMI2MESH_FUZZ_STATS=<file>`` the counters are also written as JSON,
which ``scripts/fuzz`` merges across its parallel pytest processes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fuzz.properties import COUNTERS, STATS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STATS:
        return
    terminalreporter.section("smi2mesh fuzz counters")
    terminalreporter.write_line("target " + " ".join(COUNTERS))
    for target, counts in sorted(STATS.items()):
        terminalreporter.write_line(f"{target} " + " ".join(str(counts[c]) for c in COUNTERS))
    out = os.environ.get("SMI2MESH_FUZZ_STATS")
    if out:
        Path(out).write_text(json.dumps({t: dict(c) for t, c in STATS.items()}, indent=1) + "\n")
