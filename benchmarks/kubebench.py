"""Shared plumbing of the cluster benchmarks: envtest, CRDs, a raw watch, the operator process.

The cluster benchmarks (``operator_latency.py``, ``reconcile.py``) run their
own envtest control plane in a temporary folder (never a shared one), so two
engineers' runs cannot disturb each other's objects. Clients here use the
operator's own :class:`~smi2mesh.operator.kube.Kube` layer, so the bare
baselines pay exactly the HTTP and JSON costs the operator pays, and the
difference measured is what the operator adds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smi2mesh.operator.kube import Kube, Resource, TransientApiError
from tests.envtest import envtest as lib
from tests.envtest import fixtures

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"
VENV_PY = sys.executable

Doc = dict[str, Any]


# ---- statistics ------------------------------------------------------------------------


def median_spread(xs: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)``, the one format every table uses."""
    if not xs:
        return "n/a"
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); no interpolation, so p99 is a real sample."""
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def write_results(name: str, report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return out


# ---- the control plane --------------------------------------------------------------------


def mesh_crds_dir() -> Path:
    return fixtures.mesh_crds_dir()


@contextlib.contextmanager
def envtest_cluster(mesh_groups: Sequence[str] = ("istio.io",)) -> Iterator[lib.Environment]:
    """A private envtest with the project's SMI CRDs and the mesh CRDs whose group ends in *mesh_groups*.

    Only the mesh CRDs the benchmark's mesh needs are installed: every
    installed CRD costs the API server memory and discovery time, which
    would be charged to both sides but add noise.
    """
    directory = Path(tempfile.mkdtemp(prefix="smi2mesh-bench-envtest-"))
    # A SIGTERM (timeout, kill PID) must still stop the servers and operators: exit through finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    env = lib.start(directory)
    try:
        print(f"envtest ready in {time.monotonic() - started:.1f}s ({directory})", file=sys.stderr)
        http = env.http()
        mesh = [d for d in fixtures.upstream_crd_documents(mesh_crds_dir())
                if str(d["spec"]["group"]).endswith(tuple(mesh_groups))]
        fixtures.install_crds(http, [*fixtures.crd_documents_in(fixtures.project_crds_dir()), *mesh])
        yield env
    finally:
        lib.stop(directory)
        print(f"envtest stopped ({directory})", file=sys.stderr)


def kube_for(kubeconfig: Path, pool: int = 8) -> Kube:
    """A :class:`Kube` on its own client (so threads of one side never share a pool with the other)."""
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig),  # type: ignore[no-untyped-call]
                                       client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return Kube(kubernetes.client.ApiClient(cfg))


# ---- resources and writes --------------------------------------------------------------------


class Resources:
    """Discovery by (apiVersion, kind), cached."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._served: dict[str, dict[str, Resource]] = {}

    def __call__(self, api_version: str, kind: str) -> Resource:
        if kind not in self._served.get(api_version, {}):
            self._served[api_version] = self.kube.served(api_version) or {}
        return self._served[api_version][kind]


def ensure_namespaces(kube: Kube, names: Sequence[str]) -> None:
    res = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
    for ns in names:
        with contextlib.suppress(Exception):  # 409: already there
            kube.request("POST", res.path(), body={"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": ns}})


def apply(kube: Kube, res: Resource, obj: Doc, manager: str) -> Doc:
    """Server-side apply *obj* as *manager* (forced, as kubectl apply --server-side --force-conflicts)."""
    meta = obj["metadata"]
    _, body = kube.request("PATCH", res.path(meta.get("namespace"), meta["name"]),
                           query=[("fieldManager", manager), ("force", "true")], body=obj,
                           content_type="application/apply-patch+yaml")
    return dict(body or {})


def headless(docs: Sequence[Doc]) -> list[Doc]:
    """*docs* with every Service headless.

    envtest's service range is a /24, so only ~250 Services can get a cluster
    IP; a headless Service allocates none, and translation never reads it.
    """
    out = []
    for d in docs:
        if d["kind"] == "Service":
            d = {**d, "spec": {**d["spec"], "clusterIP": "None"}}  # noqa: PLW2901 (a changed copy)
        out.append(d)
    return out


def apply_all(kube: Kube, resources: Resources, docs: Sequence[Doc], manager: str,
              threads: int = 4) -> list[Doc]:
    """Apply *docs* with *threads* workers; returns the server's bodies in order.

    Transient refusals (a loaded API server answering 429/5xx) are retried;
    anything else is raised after every worker stopped.
    """
    out: list[Doc] = [{} for _ in docs]
    todo = list(enumerate(docs))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while not errors:
            with lock:
                if not todo:
                    return
                i, doc = todo.pop()
            res = resources(doc["apiVersion"], doc["kind"])
            for attempt in range(5):
                try:
                    out[i] = apply(kube, res, doc, manager)
                    break
                except TransientApiError as exc:
                    if attempt == 4:
                        errors.append(exc)
                    time.sleep(0.2 * 2**attempt)
                except BaseException as exc:
                    errors.append(exc)
                    return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return out


# ---- a raw watch ---------------------------------------------------------------------------


@dataclass
class Watch:
    """A watch stream in a thread, calling ``on_event(type, body, received_at)`` per event.

    Raw urllib3 streaming of newline-delimited JSON, not the client's
    ``watch.Watch``: that one builds model objects and adds milliseconds per
    event, which would land in every latency sample.
    """

    kubeconfig: Path
    path: str  # collection path, e.g. /apis/networking.istio.io/v1/virtualservices
    on_event: Callable[[str, Doc, float], None]
    resource_version: str = ""
    _thread: threading.Thread | None = None
    _resp: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def start(self) -> Watch:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(self.kubeconfig),  # type: ignore[no-untyped-call]
                                           client_configuration=cfg)
        self._pool = urllib3.PoolManager(cert_file=cfg.cert_file, key_file=cfg.key_file,
                                         ca_certs=cfg.ssl_ca_cert, cert_reqs="CERT_REQUIRED")
        self._host = cfg.host
        if not self.resource_version:
            # List first, so the watch starts after what exists now and sends only changes.
            r = self._pool.request("GET", f"{self._host}{self.path}?limit=1")
            self.resource_version = json.loads(r.data)["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {self.path}")
        self._thread.start()
        self.ready.wait(10)
        return self

    def _run(self) -> None:
        query = urllib.parse.urlencode({"watch": "1", "resourceVersion": self.resource_version,
                                        "timeoutSeconds": "3600", "allowWatchBookmarks": "false"})
        try:
            self._resp = self._pool.request(
                "GET", f"{self._host}{self.path}?{query}", preload_content=False,
                timeout=urllib3.Timeout(connect=10, read=None))
            self.ready.set()
            buf = b""
            for chunk in self._resp.stream(1024 * 1024, decode_content=True):
                now = time.perf_counter()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        ev = json.loads(line)
                        self.on_event(ev["type"], ev["object"], now)
                if self._stop.is_set():
                    return
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = exc
        finally:
            self.ready.set()

    def stop(self) -> None:
        self._stop.set()
        if self._resp is not None:
            with contextlib.suppress(Exception):
                self._resp.shutdown()
            with contextlib.suppress(Exception):
                self._resp.release_conn()
        if self._thread is not None:
            self._thread.join(5)


# ---- the operator as a process ----------------------------------------------------------------


@dataclass
class OperatorProcess:
    """``smi2mesh run`` as a child process, its JSON log lines timestamped as they arrive."""

    kubeconfig: Path
    args: Sequence[str]
    log_path: Path | None = None
    env_extra: dict[str, str] = field(default_factory=dict)
    fixed: bool = False  # run with benchmarks/fixes.py applied (the "after" of a proposed fix)
    proc: subprocess.Popen[str] | None = None
    launched: float = 0.0
    lines: list[tuple[float, Doc]] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self) -> OperatorProcess:
        self.health_port = lib.free_port()
        self.metrics_port = lib.free_port()
        entry = "benchmarks.fixes" if self.fixed else "smi2mesh.cli"
        cmd = [VENV_PY, "-m", entry, "run", *self.args,
               "--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port)]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1",
               **self.env_extra}
        self.launched = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env=env, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        sink = self.log_path.open("a") if self.log_path else None
        try:
            for line in self.proc.stderr:
                now = time.perf_counter()
                if sink:
                    sink.write(line)
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict):
                    self.lines.append((now, doc))
        finally:
            if sink:
                sink.close()

    def http_ok(self, path: str) -> bool:
        try:
            r = urllib3.request("GET", f"http://127.0.0.1:{self.health_port}{path}", timeout=1.0,
                                retries=False)
        except urllib3.exceptions.HTTPError:
            return False
        return r.status == 200

    def wait_ready(self, timeout: float = 600.0, interval: float = 0.02) -> float:
        """Seconds from launch until /readyz answers 200 (ready = first pass over every namespace)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; log {self.log_path}")
            if self.http_ok("/readyz"):
                return time.perf_counter() - self.launched
            time.sleep(interval)
        raise TimeoutError("operator not ready")

    def metrics(self) -> dict[str, float]:
        r = urllib3.request("GET", f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5.0)
        out: dict[str, float] = {}
        for line in r.data.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 60.0) -> float:
        """Wait until no "reconciled" line arrived for *quiet* seconds (its backlog is done)."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            last = max((t for t, _ in self.reconciled()), default=0.0)
            if time.perf_counter() - last >= quiet:
                break
            time.sleep(0.1)
        return time.perf_counter() - start

    def reconciled(self) -> list[tuple[float, Doc]]:
        return [(t, d) for t, d in list(self.lines) if d.get("msg") in ("reconciled", "statuses written")]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # kopf stops cleanly on SIGINT
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
