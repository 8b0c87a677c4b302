"""Progress on stderr: only on a terminal (or when asked), never on stdout.

A StringIO that says it is a terminal stands in for one; a fake clock makes
the rates exact.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from smi2mesh import cli, migration
from smi2mesh.cluster import Connection
from smi2mesh.operator.kube import Kube, Resource
from smi2mesh.progress import MIN_REDRAW, Progress
from tests.golden import SHARED_CASES

SPLIT = SHARED_CASES / "split-v1alpha2-canary.yaml"
ACCESS = SHARED_CASES / "access-v1alpha2-http.yaml"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_per_kind_and_rate_redrawn_in_place_then_a_summary_line() -> None:
    tty, clock = Tty(), Clock()
    shown = Progress(tty, clock=clock)
    assert shown.enabled
    shown.start("reading")
    clock.now += 1.0
    shown.add("Service", 500)
    clock.now += 1.0
    shown.add("Deployment", 300)
    clock.now += MIN_REDRAW / 10
    shown.add("Deployment", 1)  # too soon after the last draw: counted, not drawn
    shown.finish()
    frames = tty.getvalue().split("\r\x1b[K")[1:]
    assert frames == [
        "reading: 0 object(s) ...",
        "reading: 500 object(s) (Service 500), 500/s ...",
        "reading: 800 object(s) (Service 500, Deployment 300), 400/s ...",
        "reading: 801 object(s) (Service 500, Deployment 301), 399/s in 2.0 s\n",
    ]


def test_nothing_without_a_terminal_unless_asked() -> None:
    plain = io.StringIO()
    for shown in (Progress(plain), Progress(Tty(), False), Progress(None, True)):
        shown.start("x")
        shown.add("Service", 3)
        shown.finish()
        assert not shown.enabled
    assert plain.getvalue() == ""
    forced = io.StringIO()
    Progress(forced, True).start("x")
    assert forced.getvalue() == "\r\x1b[Kx: 0 object(s) ..."


def translate(argv: list[str], stderr: io.StringIO) -> tuple[int, str, str]:
    args = cli.build_parser().parse_args(argv)
    out = io.StringIO()
    code = cli.run_translate(args, io.StringIO(), out, stderr)
    return code, out.getvalue(), stderr.getvalue()


@pytest.mark.parametrize("path", [SPLIT, ACCESS])
def test_translate_shows_progress_on_a_terminal_and_stdout_is_unchanged(path: Path) -> None:
    argv = ["translate", "--mesh", "istio", "-f", str(path)]
    code, out, err = translate(argv, io.StringIO())
    tty_code, tty_out, tty_err = translate(argv, Tty())
    assert (tty_code, tty_out) == (code, out)
    assert out
    assert "\x1b" not in err
    assert tty_err.startswith("\r\x1b[Ktranslating for istio: 0 object(s) ...")
    kinds = "(TrafficSplit 1)" if path == SPLIT else "(TrafficTarget 1, HTTPRouteGroup 1)"
    summary, _, rest = tty_err.rpartition("\r\x1b[K")[2].partition("\n")
    assert summary.startswith(f"translating for istio: {'1' if path == SPLIT else '2'} object(s) {kinds}")
    assert summary.endswith(" s")
    assert rest == err  # the warnings follow, as without a terminal


def test_flags_override_the_terminal_check() -> None:
    argv = ["translate", "--mesh", "gamma", "-f", str(SPLIT)]
    assert translate([*argv, "--no-progress"], Tty())[2] == ""
    assert "translating for gamma: 1 object(s)" in translate([*argv, "--progress"], io.StringIO())[2]


def test_report_shows_each_mesh_translated() -> None:
    args = cli.build_parser().parse_args(["report", "-f", str(SPLIT), "--mesh", "istio",
                                          "--mesh", "cilium"])
    out, tty = io.StringIO(), Tty()
    assert migration.run(args, io.StringIO(), out, tty) == 0
    lines = [f.rsplit(", ", 1)[0] for f in tty.getvalue().split("\r\x1b[K") if f.endswith("\n")]
    assert lines == ["translating for istio: 1 object(s) (TrafficSplit 1)",
                     "translating for cilium: 1 object(s) (TrafficSplit 1)"]
    assert "\x1b" not in out.getvalue()
    assert "istio" in out.getvalue()


class _PagedKube(Kube):
    """Answers list requests with pages of *sizes* objects, like an API server with ``limit``."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def request(self, method: str, path: str, **_: Any) -> tuple[int, Any]:
        n = self.sizes.pop(0)
        items = [{"metadata": {"name": f"o{i}", "namespace": "shop"}} for i in range(n)]
        return 200, {"items": items, "metadata": {"continue": "more" if self.sizes else ""}}


def test_cluster_lists_report_every_page() -> None:
    tty, clock = Tty(), Clock()
    conn = Connection(_PagedKube([500, 500, 20]), ("shop",), False, "test",
                      progress=Progress(tty, clock=clock))
    conn.progress.start("reading test")
    clock.now += 2.0
    found = conn.list_objects(Resource("apps", "v1", "deployments", "Deployment"))
    assert len(found) == 1020
    frames = tty.getvalue().split("\r\x1b[K")[1:]
    # Every page is counted; the clock stands still between pages, so only the first redraws.
    assert frames == ["reading test: 0 object(s) ...",
                      "reading test: 500 object(s) (Deployment 500), 250/s ..."]
    conn.progress.finish()
    assert tty.getvalue().endswith("reading test: 1,020 object(s) (Deployment 1,020), 510/s in 2.0 s\n")
    # Without progress the same list is read, and nothing is written.
    quiet = Connection(_PagedKube([500, 20]), ("shop",), False, "test")
    assert len(quiet.list_objects(Resource("apps", "v1", "deployments", "Deployment"))) == 520
