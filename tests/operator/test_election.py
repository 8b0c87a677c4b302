"""The leader elector's timing, on a fake clock and an in-memory Lease (no API server).

The store behaves as the API server does for a Lease: create fails when it
exists, update fails on a stale resourceVersion, and every call can be made
to fail (a partition) per replica.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
from dataclasses import replace

import pytest

from smi2mesh.operator.config import ConfigError, add_run_arguments, from_args
from smi2mesh.operator.election import (
    Elector,
    LeaseConflict,
    LeaseRecord,
    Timing,
    default_namespace,
    identity,
)

DEFAULTS = Timing()  # client-go's 15 s / 10 s / 2 s


class Clock:
    """A clock tests move by hand; every replica reads the same one (same rate)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Unreachable(Exception):
    """The replica cannot reach the store (a partition)."""


class Store:
    """One Lease with resourceVersion semantics; reachability per replica."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.versions = itertools.count(1)
        self.cut: set[str] = set()
        self.writes: list[tuple[str, LeaseRecord]] = []
        self.late: list[str] = []

    def view(self, who: str) -> Leases:
        return Leases(self, who)


class Leases:
    def __init__(self, store: Store, who: str) -> None:
        self.store = store
        self.who = who

    def _check(self, timeout: float) -> None:
        if timeout <= 0:
            self.store.late.append(self.who)  # a request with no time left must not be sent
        if self.who in self.store.cut:
            raise Unreachable(self.who)

    def get(self, timeout: float) -> LeaseRecord | None:
        self._check(timeout)
        return self.store.record

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        self._check(timeout)
        if self.store.record is not None:
            raise LeaseConflict("exists")
        return self._put(record)

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        self._check(timeout)
        if self.store.record is None or self.store.record.version != record.version:
            raise LeaseConflict("stale")
        return self._put(record)

    def _put(self, record: LeaseRecord) -> LeaseRecord:
        stored = replace(record, version=str(next(self.store.versions)))
        self.store.record = stored
        self.store.writes.append((self.who, stored))
        return stored


def elector(store: Store, who: str, clock: Clock, timing: Timing = DEFAULTS,
            events: list[tuple[str, bool]] | None = None) -> Elector:
    return Elector(store.view(who), who, timing, clock=clock, wall=lambda: f"t{clock.now:.3f}",
                   jitter=lambda: 1.0,
                   notify=None if events is None else (lambda leading, _h: events.append((who, leading))))


def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    clock, store = Clock(), Store()
    a = elector(store, "a", clock)
    assert a.write_budget() == 0
    assert a.step() == pytest.approx(2.0)
    assert a.leading
    assert store.record is not None
    assert (store.record.holder, store.record.duration, store.record.transitions) == ("a", 15, 0)
    # Allowed to write until the renew deadline, each write bounded by the lease's expiry.
    assert a.write_budget() == pytest.approx(15.0)
    clock.now += 9.9
    assert a.write_budget() == pytest.approx(5.1)
    clock.now += 0.1
    assert a.write_budget() == 0


def test_a_standby_never_takes_a_lease_that_is_being_renewed() -> None:
    clock, store = Clock(), Store()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    a.step()
    for _ in range(60):  # two minutes of renewals every retry period
        assert not b.attempt()
        clock.now += 2.0
        assert a.attempt()
        assert a.write_budget() > 0
        assert b.write_budget() == 0
    assert store.record is not None
    assert store.record.holder == "a"
    assert b.holder == "a"


def test_a_holder_that_cannot_renew_stops_writing_at_its_renew_deadline() -> None:
    clock, store = Clock(), Store()
    events: list[tuple[str, bool]] = []
    a = elector(store, "a", clock, events=events)
    a.step()
    renewed_at = clock.now
    store.cut.add("a")
    while clock.now < renewed_at + 10.0:
        assert a.write_budget() > 0
        delay = a.step()
        assert a.leading, "stepped down before the renew deadline"
        clock.now += max(delay, 0.5)
    # Past the deadline: the fence is closed even before the next round says so ...
    assert a.write_budget() == 0
    a.step()
    # ... and the round steps down and tells the runtime.
    assert not a.leading
    assert events == [("a", True), ("a", False)]


def test_a_standby_takes_over_within_lease_duration_plus_retry_of_the_last_renewal() -> None:
    """Whatever the phase of the standby's rounds, takeover comes <= lease + retry after the
    holder's last renewal, and never while the holder may still write."""
    for offset in (0.0, 0.3, 1.0, 1.7, 1.99):
        clock, store = Clock(), Store()
        a, b = elector(store, "a", clock), elector(store, "b", clock)
        a.step()
        clock.now += offset
        last_renewal = clock.now - offset
        next_a, next_b = 2.0 - offset, 0.0
        store.cut.add("a")  # the holder dies (or is partitioned) now
        killed = clock.now
        while not b.leading:
            step = min(next_a, next_b)
            clock.now += step
            next_a -= step
            next_b -= step
            if next_a <= 0:
                next_a = a.step()
            if next_b <= 0:
                assert a.write_budget() == 0 or not b.attempt(), "b acquired while a may write"
                next_b = b.step()
            assert not (a.write_budget() > 0 and b.write_budget() > 0)
        assert clock.now - last_renewal >= 15.0
        assert clock.now - killed <= 15.0 + 2.0 + 0.02, offset
        assert store.record is not None
        assert (store.record.holder, store.record.transitions) == ("b", 1)


def test_release_empties_the_holder_and_the_standby_takes_over_at_its_next_round() -> None:
    clock, store = Clock(), Store()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    a.step()
    assert not b.attempt()
    a.close()
    assert a.write_budget() == 0, "closing stops writing before the release"
    assert a.release()
    assert store.record is not None
    assert (store.record.holder, store.record.duration) == ("", 1)
    assert not a.attempt(), "a closed elector never acquires again"
    clock.now += 2.0  # b's next round
    assert b.attempt()
    assert b.leading
    assert store.record.holder == "b"
    assert store.record.transitions == 1
    assert not elector(store, "c", clock).release(), "only the holder releases"


def test_the_holder_steps_down_when_another_holds_the_lease() -> None:
    clock, store = Clock(), Store()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    a.step()
    assert not b.attempt()  # b sees a's record now ...
    store.cut.add("a")
    clock.now += 14.9
    assert not b.attempt()
    clock.now += 0.1
    assert b.attempt()  # ... and, a never having renewed, takes over 15 s later
    store.cut.clear()
    clock.now += 0.5
    # a's clock says it is past its deadline anyway; the round also sees b as holder.
    a.step()
    assert not a.leading
    assert a.holder == "b"
    assert a.write_budget() == 0


def test_racing_candidates_one_wins() -> None:
    clock, store = Clock(), Store()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    a.step()
    store.cut.add("a")
    clock.now += 1.0
    assert not b.attempt()
    clock.now += 15.0
    stale = store.record
    assert stale is not None
    # c read the same record as b and updates second: the stale resourceVersion loses.
    c = elector(store, "c", clock)
    c._observe(stale)
    c._observed_at = clock.now - 16.0
    assert b.attempt()
    with pytest.raises(LeaseConflict):
        store.view("c").update(replace(stale, holder="c"), 1.0)
    assert store.record is not None
    assert store.record.holder == "b"


def test_renewal_requests_never_outlive_the_fence() -> None:
    """Every request a holder sends has time left before its renew deadline (the store asserts)."""
    clock, store = Clock(), Store()
    a = elector(store, "a", clock)
    a.step()
    clock.now += 9.999
    a.step()
    assert a.leading
    store.cut.add("a")
    clock.now += 9.0
    a.step()  # fails: 1 s left before the fence
    clock.now += 1.5
    a.step()  # past the fence: steps down first, then tries as a candidate
    assert not a.leading
    assert store.late == []


@pytest.mark.parametrize("seed", range(6))
def test_random_partitions_never_give_two_writers(seed: int) -> None:
    """Three replicas, random partitions and pauses: at no instant do two have write budget."""
    rnd = random.Random(seed)
    timing = Timing(4.0, 3.0, 0.5)
    clock, store = Clock(), Store()
    names = ("a", "b", "c")
    electors = {n: elector(store, n, clock, timing) for n in names}
    due = dict.fromkeys(names, 0.0)
    leaders_seen: set[str] = set()
    lands_by = dict.fromkeys(names, -math.inf)  # the latest a write each one sent could still land
    for _ in range(4000):
        who = min(due, key=lambda n: due[n])
        clock.now = max(clock.now, due[who])
        if rnd.random() < 0.05:
            store.cut ^= {rnd.choice(names)}
        stall = rnd.choice([0.0, 0.0, 0.0, 0.3, 2.5])  # a stalled replica (GC, CPU starvation)
        due[who] = clock.now + electors[who].step() + stall
        writers = [n for n, e in electors.items() if e.write_budget() > 0]
        assert len(writers) <= 1, (clock.now, writers)
        leaders_seen.update(writers)
        for n in writers:
            # Whatever the previous writers sent has landed (or timed out) by now.
            assert all(lands_by[o] <= clock.now for o in names if o != n), (clock.now, n, lands_by)
            lands_by[n] = max(lands_by[n], clock.now + electors[n].write_budget())
    assert len(leaders_seen) >= 2, "the partitions never moved the lease; the test proves nothing"
    assert store.late == []


def test_timing_must_fence() -> None:
    assert Timing().problems() == []
    assert Timing(10, 10, 2).problems() == ["--lease-duration (10) must be longer than --renew-deadline (10)"]
    assert "--retry-period" in Timing(15, 2, 2).problems()[0]
    assert Timing(0, 1, 1).problems() == ["--lease-duration must be positive"]
    assert Timing(2.5, 2, 1).lease_seconds == 3


def test_identity_is_pod_name_or_hostname_plus_a_suffix() -> None:
    one, two = identity({"POD_NAME": "smi2mesh-7d9f-abcde"}), identity({"POD_NAME": "smi2mesh-7d9f-abcde"})
    assert one.startswith("smi2mesh-7d9f-abcde_")
    assert one != two, "a restarted pod of the same name gets a new identity"
    assert len(one.rsplit("_", 1)[1]) == 8
    assert identity({}).rsplit("_", 1)[0]


def test_lease_namespace_is_the_pods_own_else_default(tmp_path: object) -> None:
    from pathlib import Path
    folder = Path(str(tmp_path))
    account = folder / "namespace"
    account.write_text("smi2mesh-system\n", encoding="utf-8")
    assert default_namespace({}, str(account)) == "smi2mesh-system"
    assert default_namespace({"POD_NAMESPACE": "ops"}, str(folder / "missing")) == "ops"
    assert default_namespace({}, str(folder / "missing")) == "default"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_election_flags_and_environment() -> None:
    config = from_args(_args("--mesh", "istio"), {})
    assert (config.leader_election, config.leader_election_namespace, config.leader_election_lease) == (
        True, None, "smi2mesh")
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15.0, 10.0, 2.0)
    env = {"SMI2MESH_LEADER_ELECTION": "false", "SMI2MESH_LEADER_ELECTION_NAMESPACE": "ops",
           "SMI2MESH_LEADER_ELECTION_LEASE": "blue", "SMI2MESH_LEASE_DURATION": "6",
           "SMI2MESH_RENEW_DEADLINE": "4", "SMI2MESH_RETRY_PERIOD": "0.5"}
    config = from_args(_args("--mesh", "istio"), env)
    assert (config.leader_election, config.leader_election_namespace, config.leader_election_lease) == (
        False, "ops", "blue")
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (6.0, 4.0, 0.5)
    flags = from_args(_args("--mesh", "istio", "--leader-election", "--lease-duration", "30",
                            "--leader-election-namespace", "x"), env)
    assert flags.leader_election
    assert flags.leader_election_namespace == "x"
    assert flags.lease_duration == 30.0
    assert not from_args(_args("--mesh", "istio", "--no-leader-election"), {}).leader_election


@pytest.mark.parametrize(("argv", "env", "message"), [
    (("--lease-duration", "10"), {}, "--lease-duration (10) > --renew-deadline (10)"),
    (("--retry-period", "10"), {}, "> --retry-period (10)"),
    ((), {"SMI2MESH_RENEW_DEADLINE": "soon"}, "SMI2MESH_RENEW_DEADLINE: 'soon' is not a number"),
    ((), {"SMI2MESH_LEADER_ELECTION": "yes"}, "SMI2MESH_LEADER_ELECTION: 'yes'"),
    (("--retry-period", "0"), {}, "must be positive"),
])
def test_election_config_errors(argv: tuple[str, ...], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        from_args(_args("--mesh", "istio", *argv), env)
    assert message in str(raised.value)


def test_peering_is_gone() -> None:
    with pytest.raises(SystemExit):
        _args("--mesh", "istio", "--peering", "x")
