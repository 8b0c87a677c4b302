"""Proposed operator fixes, applied by monkeypatching, to measure them before they land.

Nothing here is imported by the operator itself. ``python -m benchmarks.fixes
run ...`` starts ``smi2mesh run`` with the pending fixes applied; the
benchmarks' ``--with-fixes`` runs it as a side called ``fixed``, interleaved
with the unpatched operator and the bare baseline, so before and after come
from the same run on the same machine.

Landed (commit 1ae7008), measured with an earlier version of this module:

1. ``reconcile.drift`` / ``reconcile.status_changed``: plain ``==`` on the
   projected dicts instead of a DeepDiff per object per pass.
2. ``Store.upsert``: no namespace pass for the echo of our own writes.
3. ``reconcile.execute`` / ``Operator._write_statuses``: a phase's writes
   sent concurrently.

4. ``reconcile.drift``: detection stays plain ``==``; a real drift is
   described with DeepDiff lazily (``Write.describe``). The log line still
   described every apply before cutting the list to three; session 2
   (commit 8b49e39) describes only repairs of someone else's edits, at most
   three, measured directly with ``operator_latency.py``.

Nothing is pending: ``apply()`` patches nothing until the next proposal.
"""

from __future__ import annotations

import sys


def apply() -> None:
    """Monkeypatch the pending fixes into the operator (none at the moment)."""


if __name__ == "__main__":
    apply()
    from smi2mesh.cli import main

    sys.argv[0] = "smi2mesh"
    sys.exit(main())
