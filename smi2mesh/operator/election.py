"""Lease-based leader election for ``smi2mesh run`` (``coordination.k8s.io/v1`` Leases).

Every replica watches and keeps its cache warm; only the holder of one Lease
writes. The rules are client-go's (``tools/leaderelection``): a candidate
creates the Lease or takes it over once the record it observed has not
changed for the record's ``leaseDurationSeconds``, measured on its own clock
(clocks of different nodes are never compared, only their rates); the holder
renews every retry period, and updates are guarded by ``resourceVersion``, so
of two racing candidates exactly one wins.

Fencing is by time and stricter than client-go's: the holder may write only
until ``renew deadline`` after it *sent* its last successful renewal, and a
write sent then may take at most until ``lease duration`` after it. A standby
cannot take over before ``lease duration`` after it *saw* that renewal, which
is later, so two replicas never write in the same period. On shutdown the
holder stops writing, lets the write in flight finish, then empties
``holderIdentity`` so a standby takes over at its next retry.

:class:`Elector` is the pure timing logic over a :class:`Leases` store and a
clock (unit-tested with fakes); :class:`KubeLeases` is the store on the API
server; :class:`Election` runs an elector in a thread of its own, so a busy
event loop never delays a renewal.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from smi2mesh.operator.kube import ApiError, Kube

log = logging.getLogger("smi2mesh.election")

# client-go's defaults (tools/leaderelection; controller-runtime uses the same).
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
LEASE_NAME = "smi2mesh"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
LEASES_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


@dataclass(frozen=True)
class Timing:
    """Lease duration, renew deadline and retry period, in seconds."""

    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    def problems(self) -> list[str]:
        """Why these timings cannot fence (empty when they can)."""
        out = [f"{name} must be positive" for name, v in (
            ("--lease-duration", self.lease_duration), ("--renew-deadline", self.renew_deadline),
            ("--retry-period", self.retry_period)) if not v > 0]
        if out:
            return out
        if self.lease_duration <= self.renew_deadline:
            # The gap is the time a write sent just before the deadline has to land.
            out.append(f"--lease-duration ({self.lease_duration:g}) must be longer than "
                       f"--renew-deadline ({self.renew_deadline:g})")
        if self.renew_deadline <= self.retry_period:
            out.append(f"--renew-deadline ({self.renew_deadline:g}) must be longer than "
                       f"--retry-period ({self.retry_period:g}), or one failed renewal loses the lease")
        return out

    @property
    def lease_seconds(self) -> int:
        """``leaseDurationSeconds`` as written: whole seconds, never shorter than configured."""
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease, and its resourceVersion."""

    holder: str = ""
    duration: int = 0  # leaseDurationSeconds
    acquired: str = ""  # acquireTime (MicroTime)
    renewed: str = ""  # renewTime (MicroTime)
    transitions: int = 0
    version: str = ""

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(holder=str(spec.get("holderIdentity") or ""),
                   duration=int(spec.get("leaseDurationSeconds") or 0),
                   acquired=str(spec.get("acquireTime") or ""), renewed=str(spec.get("renewTime") or ""),
                   transitions=int(spec.get("leaseTransitions") or 0),
                   version=str((lease.get("metadata") or {}).get("resourceVersion") or ""))

    def spec(self) -> dict[str, Any]:
        return {"holderIdentity": self.holder or None, "leaseDurationSeconds": self.duration,
                "acquireTime": self.acquired or None, "renewTime": self.renewed or None,
                "leaseTransitions": self.transitions}


class LeaseConflict(Exception):
    """The Lease changed since it was read (409), or was created meanwhile."""


class Leases(Protocol):
    """Where the Lease lives; every call may raise (a failed attempt) and must end by *timeout*."""

    def get(self, timeout: float) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord: ...

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord: ...


@dataclass
class KubeLeases:
    """A Lease on the API server, through the operator's own client (never fenced)."""

    kube: Kube
    namespace: str
    name: str = LEASE_NAME

    def _path(self, named: bool = True) -> str:
        base = LEASES_PATH.format(namespace=self.namespace)
        return f"{base}/{self.name}" if named else base

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.version:
            meta["resourceVersion"] = record.version  # a PUT of a stale version is a 409
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {k: v for k, v in record.spec().items() if v is not None}}

    def _call(self, method: str, record: LeaseRecord | None, timeout: float) -> LeaseRecord | None:
        try:
            status, body = self.kube.request(
                method, self._path(method != "POST"), body=None if record is None else self._body(record),
                what=f"{method.lower()} lease {self.namespace}/{self.name}",
                timeout=max(0.05, timeout), fenced=False)
        except ApiError as exc:
            if exc.status == 409:
                raise LeaseConflict(str(exc)) from exc
            raise
        if status == 404 or not isinstance(body, Mapping):
            return None
        return LeaseRecord.of(body)

    def get(self, timeout: float) -> LeaseRecord | None:
        return self._call("GET", None, timeout)

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        out = self._call("POST", replace(record, version=""), timeout)
        if out is None:
            raise LeaseConflict("create answered without a Lease")
        return out

    def update(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        out = self._call("PUT", record, timeout)
        if out is None:
            raise LeaseConflict("the Lease is gone")
        return out


def micro_time(at: datetime.datetime | None = None) -> str:
    """A MicroTime, as the API server writes it."""
    at = at or datetime.datetime.now(datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity(env: Mapping[str, str] | None = None) -> str:
    """``$POD_NAME`` (the chart sets it) or the hostname, plus a random suffix.

    The suffix keeps a restarted pod (same name) from mistaking the previous
    process's Lease for its own.
    """
    env = os.environ if env is None else env
    base = env.get("POD_NAME") or socket.gethostname() or "smi2mesh"
    return f"{base}_{secrets.token_hex(4)}"


def default_namespace(env: Mapping[str, str] | None = None,
                      account_file: str = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The pod's own namespace in a cluster, else ``default``."""
    try:
        with open(account_file, encoding="utf-8") as f:
            found = f.read().strip()
        if found:
            return found
    except OSError:
        pass
    env = os.environ if env is None else env
    return env.get("POD_NAMESPACE") or "default"


Notify = Callable[[bool, str], None]


class Elector:
    """The election's state and timing for one replica; every method is thread-safe.

    ``step()`` is one round (try to acquire or renew, step down when the renew
    deadline passed) and says when the next round is due; ``write_budget()`` is
    the fence the API client asks before every write.
    """

    def __init__(self, leases: Leases, identity: str, timing: Timing | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], str] = micro_time,
                 jitter: Callable[[], float] | None = None,
                 notify: Notify | None = None) -> None:
        self.leases = leases
        self.identity = identity
        self.timing = timing or Timing()
        self.clock = clock
        self.wall = wall
        self.jitter = jitter or (lambda: random.uniform(0.8, 1.0))  # never later than the retry period
        self.notify = notify
        self.leading = False
        self.holder = ""  # the holder last seen on the Lease
        self.transitions = 0  # times this replica became the leader
        self.closed = False
        self.last_step = clock()
        self._renewed_at = -math.inf  # clock() when the last successful renewal was sent
        self._observed: LeaseRecord | None = None
        self._observed_at = -math.inf
        self._lock = threading.RLock()

    # -- the fence

    def write_budget(self) -> float:
        """Seconds a write sent now may take; 0 when this replica must not write."""
        with self._lock:
            if not self.leading:
                return 0.0
            now = self.clock()
            if now >= self._renewed_at + self.timing.renew_deadline:
                return 0.0
            return self._renewed_at + self.timing.lease_duration - now

    def fence_deadline(self) -> float:
        """clock() time at which writing stops unless a renewal succeeds first."""
        with self._lock:
            return self._renewed_at + self.timing.renew_deadline if self.leading else -math.inf

    # -- rounds

    def step(self) -> float:
        """One round; returns the seconds until the next one is due."""
        started = self.clock()
        self.last_step = started
        held = self.attempt()
        with self._lock:
            if self.leading and not held and self.clock() >= self._renewed_at + self.timing.renew_deadline:
                self._step_down("the Lease was not renewed before the renew deadline")
            if self.leading:
                return max(0.0, started + self.timing.retry_period - self.clock())
            wait = self.timing.retry_period * self.jitter()
            observed = self._observed
            if observed is not None and observed.holder and observed.holder != self.identity:
                # Come back the moment the holder's lease would expire, not up to a period later.
                expires = self._observed_at + observed.duration
                wait = min(wait, max(0.0, expires - self.clock()) + 0.01)
            return max(0.0, started + wait - self.clock())

    def attempt(self) -> bool:
        """Acquire or renew the Lease once (client-go's tryAcquireOrRenew); True when held."""
        with self._lock:
            if self.closed:
                return False
            started = self.clock()
            if self.leading and started >= self._renewed_at + self.timing.renew_deadline:
                self._step_down("the Lease was not renewed before the renew deadline")
            deadline = started + self.timing.renew_deadline
            if self.leading:
                # A renewal that answers after the fence would be of no use.
                deadline = min(deadline, self._renewed_at + self.timing.renew_deadline)
        try:
            current = self.leases.get(deadline - self.clock())
            if current is None:
                record = LeaseRecord(self.identity, self.timing.lease_seconds, self.wall(), self.wall(), 0)
                return self._won(started, self.leases.create(record, deadline - self.clock()))
            with self._lock:
                self._observe(current)
                if current.holder and current.holder != self.identity:
                    if self.leading:
                        self._step_down(f"{current.holder} holds the Lease now")
                    if self.clock() < self._observed_at + current.duration:
                        return False
                mine = current.holder == self.identity
                record = LeaseRecord(
                    self.identity, self.timing.lease_seconds,
                    current.acquired if mine and current.acquired else self.wall(), self.wall(),
                    current.transitions + (0 if mine else 1), current.version)
                if self.closed:
                    return False
            return self._won(started, self.leases.update(record, deadline - self.clock()))
        except Exception as exc:  # any failure is a failed attempt; the deadline decides
            log.debug("lease attempt failed: %s", exc, extra={"identity": self.identity})
            return False

    def _observe(self, record: LeaseRecord) -> None:
        if self._observed is None or record != self._observed:
            self._observed = record
            self._observed_at = self.clock()
        if record.holder != self.holder:
            self.holder = record.holder
            if record.holder and record.holder != self.identity:
                log.info("leader is %s", record.holder,
                         extra={"holder": record.holder, "identity": self.identity, "at": time.time()})
                self._tell(False)

    def _won(self, started: float, record: LeaseRecord) -> bool:
        with self._lock:
            if self.closed:
                return False
            self._observed = record
            self._observed_at = self.clock()
            self._renewed_at = started
            self.holder = self.identity
            if not self.leading:
                self.leading = True
                self.transitions += 1
                log.info("became the leader", extra={"holder": self.identity, "identity": self.identity,
                                                     "transitions": record.transitions, "at": time.time()})
                self._tell(True)
        return True

    def _step_down(self, reason: str) -> None:
        if not self.leading:
            return
        self.leading = False
        self._renewed_at = -math.inf
        log.warning("stopped leading: %s", reason,
                    extra={"holder": self.holder, "identity": self.identity, "at": time.time()})
        self._tell(False)

    def _tell(self, leading: bool) -> None:
        if self.notify is not None:
            self.notify(leading, self.holder)

    # -- shutdown

    def close(self) -> None:
        """Stop writing now and never acquire again (the first half of a release)."""
        with self._lock:
            self.closed = True
            self._step_down("shutting down")

    def release(self) -> bool:
        """Empty ``holderIdentity`` (after :meth:`close` and the write in flight); True if released."""
        with self._lock:
            self.closed = True
            self._step_down("shutting down")
            observed = self._observed
        if observed is None or observed.holder != self.identity:
            return False
        record = LeaseRecord("", 1, self.wall(), self.wall(), observed.transitions, observed.version)
        try:
            self.leases.update(record, self.timing.renew_deadline)
        except Exception as exc:  # the Lease then simply expires
            log.warning("could not release the Lease: %s", exc, extra={"identity": self.identity})
            return False
        log.info("released the Lease", extra={"identity": self.identity, "at": time.time()})
        return True


class Election:
    """Runs an :class:`Elector` in a thread of its own."""

    def __init__(self, elector: Elector) -> None:
        self.elector = elector
        self._stop = threading.Event()
        self.first_round = threading.Event()  # set once this replica knows whether it leads
        self._thread = threading.Thread(target=self._run, daemon=True, name="smi2mesh-election")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.elector.step()
            except Exception:  # never let the loop die: /healthz would report it stuck
                log.exception("leader election round failed")
                delay = self.elector.timing.retry_period
            self.first_round.set()
            self._stop.wait(delay)

    def stuck(self) -> bool:
        """True when the loop died or has not completed a round for too long."""
        if not self._thread.is_alive():
            return self._thread.ident is not None and not self._stop.is_set()
        t = self.elector.timing
        # A round takes at most the renew deadline (its requests' bound) plus a retry period.
        return self.elector.clock() - self.elector.last_step > t.lease_duration + t.retry_period

    def stop(self, timeout: float | None = None) -> None:
        """Stop the rounds (the one running finishes: its requests are bounded)."""
        self.elector.close()
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(self.elector.timing.renew_deadline + 1 if timeout is None else timeout)
