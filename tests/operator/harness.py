"""Run the real operator in-process against the envtest API server.

The operator runs kopf in its own thread and event loop, exactly as
``smi2mesh run`` would, and exposes its counters (writes, metrics) to tests.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

import kopf
import kubernetes

from smi2mesh.operator.config import OperatorConfig
from smi2mesh.operator.kube import Kube, Resource
from smi2mesh.operator.runtime import Operator

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RunningOperator:
    """An operator in a background thread; ``stop()`` ends it."""

    def __init__(self, config: OperatorConfig, kubeconfig: str | None = None, *,
                 api_client: kubernetes.client.ApiClient | None = None, elect: bool = False) -> None:
        """Connect with *api_client* when given (e.g. a ServiceAccount token), else *kubeconfig*.

        kopf logs in from the client's configuration (``connection_info``), so
        its watches use the same credentials as the operator's own calls.
        Leader election runs only with *elect* (tests running several operators
        at once must not queue them behind one Lease).
        """
        if api_client is None:
            if kubeconfig is None:
                raise ValueError("RunningOperator needs a kubeconfig or an api_client")
            kubernetes.config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            api_client = kubernetes.client.ApiClient(pool_threads=4)
        self.kube = Kube(api_client)
        self.config = replace(config, metrics_port=free_port(), health_port=free_port(),
                              discovery_seconds=1.0,
                              leader_election=config.leader_election and elect)
        self.operator = Operator(self.config, self.kube)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="smi2mesh-operator")

    def _main(self) -> None:
        try:
            registry = kopf.OperatorRegistry()
            self.operator.register(registry)
            asyncio.run(kopf.operator(
                registry=registry, clusterwide=self.config.all_namespaces,
                namespaces=self.config.namespaces, standalone=True, stop_flag=self._stop))
        except BaseException as exc:  # surfaced by wait_ready/stop
            self._error = exc

    def start(self, timeout: float = 60.0) -> RunningOperator:
        self._thread.start()
        wait_for(lambda: self.operator.ready.is_set() or self._error is not None, timeout,
                 "operator ready")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        # kopf's loop ends with some aiohttp transports still open; collected later
        # they would warn inside the next test, where warnings are errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        if self._error is not None:
            raise self._error

    @property
    def writes(self) -> int:
        return self.kube.writes


@contextmanager
def operator(config: OperatorConfig, kubeconfig: str | None = None, *,
             api_client: kubernetes.client.ApiClient | None = None) -> Iterator[RunningOperator]:
    op = RunningOperator(config, kubeconfig, api_client=api_client).start()
    try:
        yield op
    finally:
        op.stop()


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """Poll *check* until it returns something truthy; fail with *what* on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def resource(api_version: str, kind: str, plural: str, namespaced: bool = True) -> Resource:
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, plural, kind, namespaced)
