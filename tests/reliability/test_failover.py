"""Failover between two ``smi2mesh run`` processes elected on a Lease (issue 15).

Two real operator processes (mesh istio, client-go's default timings: lease
15 s, renew deadline 10 s, retry 2 s) run against the dedicated control plane
of this tier, over the same corpus as the fault scenarios. The first leads,
the second is a warm standby. Each scenario takes the leader away (SIGKILL
mid-burst, SIGTERM, a partition from the API server), measures when the
standby leads, waits until every change has converged, and audits dual
writes from the write log each process keeps (``smi2mesh.writes`` at debug
level: method, path, status, when sent and when answered, wall clock of this
one machine): every write of one replica must have been answered before the
other's first write was sent.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.operator import harness
from tests.reliability import checks
from tests.reliability.conftest import record
from tests.reliability.corpus import Change, Doc, key_of
from tests.reliability.plane import Plane, Proxy, kubeconfig_via
from tests.reliability.test_faults import CONVERGE, Scene, scene

pytestmark = [
    pytest.mark.envtest,
    pytest.mark.filterwarnings("ignore:Exception ignored in. <ssl.SSLSocket"
                               ":pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning"),
]

LEASE, RENEW, RETRY = 15.0, 10.0, 2.0  # the defaults, so the figures are the ones users get
# Scheduling slack on two shared cores, on top of each bound the election guarantees.
SLACK = 1.0
# The operator as `smi2mesh run`, plus its write log (a debug logger of its own).
LAUNCH = ("import logging, sys; logging.getLogger('smi2mesh.writes').setLevel(logging.DEBUG); "
          "from smi2mesh.cli import main; sys.exit(main(['run', *sys.argv[1:]]))")


@dataclass
class Replica:
    """One operator process and what its JSON log says."""

    name: str
    args: list[str]
    kubeconfig: Path
    log: Path
    health_port: int
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "POD_NAME": self.name}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, *self.args, "--health-port", str(self.health_port),
                 "--metrics-port", str(self.metrics_port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> float:
        """Send *sig*; returns the wall time it was sent."""
        assert self.process is not None
        at = time.time()
        self.process.send_signal(sig)
        return at

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def said(self, msg: str) -> list[float]:
        """Wall times of the election's log lines starting with *msg*."""
        return [float(r["at"]) for r in self.records() if str(r.get("msg", "")).startswith(msg) and "at" in r]

    def writes(self) -> list[dict[str, Any]]:
        """Writes of mesh objects, statuses and Events (the Lease's own requests excluded)."""
        return [r for r in self.records() if r.get("logger") == "smi2mesh.writes"
                and "/coordination.k8s.io/" not in str(r.get("path"))]

    def http(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except OSError as exc:
            return getattr(exc, "code", 0) or 0, ""

    def metric(self, name: str) -> float | None:
        status, text = self.http(self.metrics_port, "/metrics")
        for line in text.splitlines() if status == 200 else []:
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def errors(self) -> list[str]:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if '"level": "error"' in line or "Traceback" in line]


@dataclass
class Pair:
    """A leader and a standby over one scene."""

    s: Scene
    a: Replica
    b: Replica


@contextlib.contextmanager
def pair(plane: Plane, prefix: str, tmp_path: Path, *, a_via: Path | None = None) -> Iterator[Pair]:
    """A leads (it starts first) and has converged; B is a ready standby."""
    s = scene(plane, prefix)
    ns = s.corpus.namespaces
    args = ["--mesh", "istio", *[x for n in ns for x in ("--namespace", n)],
            "--leader-election-namespace", ns[0], "--leader-election-lease", f"{prefix}-lease",
            "--lease-duration", str(LEASE), "--renew-deadline", str(RENEW), "--retry-period", str(RETRY)]

    def replica(name: str, kubeconfig: Path) -> Replica:
        return Replica(name, args, kubeconfig, tmp_path / f"{name}.log", harness.free_port(),
                       harness.free_port())

    a = replica(f"{prefix}-a", a_via or plane.env.kubeconfig).start()
    b = replica(f"{prefix}-b", plane.env.kubeconfig)
    try:
        harness.wait_for(lambda: a.said("became the leader") or not a.running(), 120, "A leads")
        assert a.running(), a.log.read_text()[-3000:]
        checks.wait_converged(s.kube, s.corpus, CONVERGE, "initial",
                              alive=lambda: "" if a.running() else "A exited")
        b.start()
        # A standby is ready (its cache is warm; it serves metrics) but does not lead.
        harness.wait_for(lambda: b.http(b.health_port, "/readyz")[0] == 200 or not b.running(), 120,
                         "B ready")
        assert b.http(b.health_port, "/healthz")[0] == 200
        assert (a.metric("smi2mesh_leader"), b.metric("smi2mesh_leader")) == (1.0, 0.0)
        assert b.said("became the leader") == []
        assert any(str(r.get("msg", "")).startswith(f"leader is {prefix}-a_") for r in b.records()), \
            "the standby's log names the holder"
        yield Pair(s, a, b)
    finally:
        a.stop()
        b.stop()


def split_changes(s: Scene, count: int, seed: int) -> list[Change]:
    """*count* weight changes of the corpus's TrafficSplits, round robin (a canary's steps)."""
    keys = sorted(k for k in s.corpus.docs if k[0] == "TrafficSplit")
    out = []
    for i in range(count):
        k = keys[(i * 7 + seed) % len(keys)]
        doc: Doc = copy.deepcopy(s.corpus.docs[k])
        w = 5 + (i * 13 + seed) % 91
        doc["spec"]["backends"][0]["weight"] = w
        doc["spec"]["backends"][1]["weight"] = 100 - w
        out.append(Change(key_of(doc), s.corpus.put(doc)))
    return out


class Writer:
    """Applies changes in a thread, *pace* seconds apart; ``done`` counts them."""

    def __init__(self, s: Scene, changes: list[Change], pace: float = 0.0) -> None:
        self.changes, self.pace, self.done = changes, pace, 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(s,), daemon=True, name="changes")

    def _run(self, s: Scene) -> None:
        try:
            for c in self.changes:
                checks.write(s.kube, c)
                self.done += 1
                time.sleep(self.pace)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def start(self) -> Writer:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(300)
        assert not self._thread.is_alive(), "the changes were not all written"
        if self.error is not None:
            raise self.error


def dual_writes(first: Replica, second: Replica) -> dict[str, Any]:
    """Writes of *first* answered after *second* sent its first, and of *second* sent before
    *first*'s last was answered: any of either is two writers in one period."""
    a, b = first.writes(), second.writes()
    b_first = min((w["sent"] for w in b), default=float("inf"))
    a_last = max((w["done"] for w in a), default=float("-inf"))
    overlapping = [w for w in a if w["done"] > b_first] + [w for w in b if w["sent"] < a_last]
    return {"dual_writes": len(overlapping),
            "gap_between_writers_s": round(b_first - a_last, 3) if a and b else None,
            "first_replica_writes": len(a), "second_replica_writes": len(b)}


def converge(p: Pair, what: str, alive: Replica) -> float:
    """Wait until converged; returns the wall time (the processes' logs are in wall time)."""
    checks.wait_converged(p.s.kube, p.s.corpus, CONVERGE, what,
                          alive=lambda: "" if alive.running() else f"{alive.name} exited")
    return time.time()


# ---- SIGKILL of the leader mid-burst ---------------------------------------------------


def test_leader_sigkilled_mid_burst_the_standby_takes_over(plane: Plane, tmp_path: Path) -> None:
    with pair(plane, "f1", tmp_path) as p:
        changes = split_changes(p.s, 100, 3)
        w = Writer(p.s, changes).start()
        harness.wait_for(lambda: w.done >= 33 or w.error, 120, "a third of the burst", interval=0.01)
        killed = p.a.signal(signal.SIGKILL)
        assert p.a.process is not None
        p.a.process.wait(30)
        during = w.done
        led = harness.wait_for(lambda: p.b.said("became the leader"), LEASE + RETRY + 30, "B leads")[0]
        gap_changes = w.done - during
        w.join()
        converged = converge(p, "after the leader was SIGKILLed", p.b)
        p.s.finish()
        audit = dual_writes(p.a, p.b)
        b_writes = [x for x in p.b.writes() if x["sent"] <= converged]
        assert p.b.errors() == []
        assert p.b.metric("smi2mesh_leader") == 1.0
        assert p.b.metric("smi2mesh_leader_transitions_total") == 1.0
    p.s.cleanup()
    failover = led - killed
    # The standby takes over <= lease + retry after the holder's last renewal (before the kill).
    assert failover <= LEASE + RETRY + SLACK, failover
    assert audit["dual_writes"] == 0, audit
    record("10-leader-sigkill", {
        "smi_objects": p.s.corpus.smi_count(), "burst_changes": len(changes),
        "changes_before_kill": during, "changes_while_leaderless": gap_changes,
        "fault": "SIGKILL of the leading `smi2mesh run` mid-burst of TrafficSplit weight changes; "
                 "a warm standby process running",
        "timings_s": {"lease": LEASE, "renew_deadline": RENEW, "retry": RETRY},
        "failover_s": round(failover, 2), "bound_s": LEASE + RETRY,
        "converged_after_takeover_s": round(converged - led, 1),
        "standby_writes_from_takeover_to_converged": len(b_writes), "lost_changes": 0, **audit})


# ---- SIGTERM: the holder releases the Lease -----------------------------------------------


def test_leader_sigterm_hands_over_within_the_retry_period(plane: Plane, tmp_path: Path) -> None:
    with pair(plane, "f2", tmp_path) as p:
        changes = split_changes(p.s, 40, 5)
        w = Writer(p.s, changes, pace=0.05).start()
        harness.wait_for(lambda: w.done >= 10 or w.error, 120, "changes under way", interval=0.01)
        termed = p.a.signal(signal.SIGTERM)
        assert p.a.process is not None
        assert p.a.process.wait(40) == 0, "the leader did not exit cleanly on SIGTERM"
        released = p.a.said("released the Lease")
        assert released, "the leader exited without releasing the Lease"
        led = harness.wait_for(lambda: p.b.said("became the leader"), LEASE + RETRY + 30, "B leads")[0]
        w.join()
        converged = converge(p, "after SIGTERM", p.b)
        p.s.finish()
        audit = dual_writes(p.a, p.b)
        assert p.a.errors() == []
        assert p.b.errors() == []
    p.s.cleanup()
    handover, release = led - released[0], released[0] - termed
    assert handover <= RETRY + 0.5, handover  # one standby round after the release, plus its round trip
    assert audit["dual_writes"] == 0, audit
    record("11-leader-sigterm", {
        "smi_objects": p.s.corpus.smi_count(), "changes": len(changes),
        "fault": "SIGTERM of the leading `smi2mesh run` while TrafficSplits change every 50 ms",
        "timings_s": {"lease": LEASE, "renew_deadline": RENEW, "retry": RETRY},
        "sigterm_to_release_s": round(release, 2), "release_to_standby_leading_s": round(handover, 2),
        "sigterm_to_standby_leading_s": round(led - termed, 2),
        "converged_after_takeover_s": round(converged - led, 1), "lost_changes": 0, **audit})


# ---- a partition between the leader and the API server -------------------------------------


def test_partitioned_leader_stops_writing_before_its_lease_expires(plane: Plane, tmp_path: Path) -> None:
    proxy = Proxy(("127.0.0.1", int(plane.env.server.rsplit(":", 1)[1])))
    try:
        via = kubeconfig_via(plane.env.kubeconfig, proxy.port, tmp_path / "via-proxy")
        with pair(plane, "f3", tmp_path, a_via=via) as p:
            changes = split_changes(p.s, 30, 9)
            proxy.blocked.set()
            cut_at = time.time()
            dropped = proxy.cut()
            Writer(p.s, changes, pace=0.2).start().join()
            stopped = harness.wait_for(lambda: p.a.said("stopped leading"), RENEW + 30, "A steps down")[0]
            led = harness.wait_for(lambda: p.b.said("became the leader"), LEASE + RETRY + 30, "B leads")[0]
            proxy.blocked.clear()  # healed: A reconnects and must stay a standby
            converged = converge(p, "after the partition", p.b)
            time.sleep(2 * RETRY)  # a few of A's rounds against B's Lease
            p.s.finish()
            a_after = [x for x in p.a.writes() if x["sent"] > stopped]
            a_attempts = [x for x in p.a.writes() if x["sent"] > cut_at]
            audit = dual_writes(p.a, p.b)
            assert p.a.metric("smi2mesh_leader") == 0.0
            assert p.b.metric("smi2mesh_leader") == 1.0
            assert p.a.running()
            assert p.b.running()
    finally:
        proxy.close()
    p.s.cleanup()
    # A's last renewal was sent before the cut: it stops by then + renew deadline (+ its round's end) ...
    assert stopped - cut_at <= RENEW + SLACK, stopped - cut_at
    # ... which is before its Lease could expire, and so before B leads.
    assert stopped < led
    assert a_after == [], f"the partitioned leader wrote after stepping down: {a_after[:3]}"
    assert audit["dual_writes"] == 0, audit
    record("12-leader-partitioned", {
        "smi_objects": p.s.corpus.smi_count(), "changes_during_partition": len(changes),
        "fault": "every connection of the leading `smi2mesh run` to the API server cut and refused; "
                 "healed after the standby took over",
        "timings_s": {"lease": LEASE, "renew_deadline": RENEW, "retry": RETRY},
        "connections_cut": dropped, "cut_to_leader_stopped_writing_s": round(stopped - cut_at, 2),
        "cut_to_standby_leading_s": round(led - cut_at, 2),
        "leader_write_attempts_during_partition": len(a_attempts),
        "leader_writes_after_stepping_down": len(a_after),
        "converged_after_takeover_s": round(converged - led, 1), "lost_changes": 0, **audit})
