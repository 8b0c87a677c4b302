"""Build, start and stop a local Kubernetes control plane for the envtest tier.

Shared by ``scripts/envtest`` (the command-line entry point) and the pytest
fixtures in ``tests/envtest/fixtures.py``.  It runs a real etcd,
kube-apiserver and kube-controller-manager (garbage collector and namespace
controllers only) on loopback ports, in the spirit of controller-runtime's
envtest, but builds the binaries from the Go modules pinned in
``tests/envtest/go.mod`` instead of downloading release tarballs.

Standard library only, so the script works before the project is installed.
Certificates and keys are made with the ``openssl`` command-line tool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

MODULE_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODULE_DIR.parent.parent
GO_MOD = MODULE_DIR / "go.mod"

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
BINARIES = (ETCD, APISERVER, CONTROLLER_MANAGER)

# Import paths of the main packages, relative to GO_MOD's directory.
_MAIN_PACKAGES = {
    ETCD: "./cmd/etcd",
    APISERVER: "k8s.io/kubernetes/cmd/kube-apiserver",
    CONTROLLER_MANAGER: "k8s.io/kubernetes/cmd/kube-controller-manager",
}

# Order matters: stop() walks it backwards so etcd outlives its clients.
_START_ORDER = (ETCD, APISERVER, CONTROLLER_MANAGER)

STATE_FILE = "state.json"
DEFAULT_DIR = Path(".envtest")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# First address of SERVICE_CLUSTER_IP_RANGE: the in-cluster `kubernetes` Service.
SERVICE_IP = "10.0.0.1"
ADMIN_USER = "smi2mesh-envtest-admin"


class EnvtestError(RuntimeError):
    """Raised when the binaries cannot be built or the servers cannot start."""


# --------------------------------------------------------------------------
# Versions and binary location
# --------------------------------------------------------------------------


def _module_version(module: str) -> str:
    """Return the version go.mod pins for ``module`` (require or tool line)."""
    text = GO_MOD.read_text(encoding="utf-8")
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    if match is None:
        raise EnvtestError(f"{GO_MOD} does not pin {module}")
    return match.group(1)


def kubernetes_version() -> str:
    """Kubernetes release the binaries are built from, e.g. ``v1.36.3``."""
    return _module_version("k8s.io/kubernetes")


def etcd_version() -> str:
    """etcd release the etcd binary is built from, e.g. ``v3.6.8``."""
    return _module_version("go.etcd.io/etcd/server/v3")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/smi2mesh/envtest``, defaulting to ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smi2mesh" / "envtest"


def cache_dir() -> Path:
    """Folder holding the binaries built from the pinned versions."""
    return cache_root() / f"k8s-{kubernetes_version()}-etcd-{etcd_version()}"


@dataclasses.dataclass(frozen=True)
class Binaries:
    """Paths of the three control-plane executables."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path

    def path(self, name: str) -> Path:
        """Executable for one of :data:`BINARIES`."""
        return {
            ETCD: self.etcd,
            APISERVER: self.kube_apiserver,
            CONTROLLER_MANAGER: self.kube_controller_manager,
        }[name]

    def folders(self) -> list[Path]:
        """Distinct folders holding the binaries, in :data:`BINARIES` order."""
        seen: list[Path] = []
        for name in BINARIES:
            folder = self.path(name).parent
            if folder not in seen:
                seen.append(folder)
        return seen


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_go() -> str:
    """Locate the ``go`` command: ``$GO``, then ``PATH``, then /usr/local/go."""
    candidates = [os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"]
    for candidate in candidates:
        if candidate and _is_executable(Path(candidate)):
            return candidate
    raise EnvtestError("the Go toolchain was not found: install Go or set $GO")


def _ldflags() -> str:
    version = kubernetes_version()
    major, minor = version.lstrip("v").split(".")[:2]
    # Same -X stamps as kubernetes' hack/lib/version.sh, so `--version` and
    # the /version endpoint report the real release instead of v0.0.0-master.
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build_command(names: Sequence[str], out_dir: Path) -> list[str]:
    """The ``go build`` invocation that writes ``names`` into ``out_dir``."""
    return [
        find_go(),
        "build",
        "-trimpath",
        # Upstream's build tags (hack/lib/golang.sh); notest drops test-only code.
        "-tags=selinux,notest,grpcnotrace",
        f"-ldflags={_ldflags()}",
        "-o",
        f"{out_dir}{os.sep}",
        *[_MAIN_PACKAGES[name] for name in names],
    ]


def _build_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries like upstream's release builds; no C toolchain needed.
    env["CGO_ENABLED"] = "0"
    # A go.work further up the tree must not pull in other modules.
    env["GOWORK"] = "off"
    # GOPATH and GOCACHE are deliberately inherited: the module and build
    # caches stay in the user's defaults, outside the repository.
    return env


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Serialise builds across processes (parallel pytest sessions, CI jobs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(names: Sequence[str], dest: Path, log: Any) -> None:
    """Build ``names`` and move them into ``dest`` only once all succeeded."""
    dest.mkdir(parents=True, exist_ok=True)
    # Building into a scratch folder next to ``dest`` keeps a half-written or
    # failed build from ever being mistaken for a usable cached binary.
    with tempfile.TemporaryDirectory(prefix=".build-", dir=dest.parent) as scratch:
        command = build_command(names, Path(scratch))
        print(f"envtest: building {', '.join(names)} ...", file=log, flush=True)
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=MODULE_DIR,
            env=_build_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EnvtestError(
                f"go build failed (exit {result.returncode}) in {MODULE_DIR}\n"
                f"command: {shlex.join(command)}\n{result.stdout}"
            )
        for name in names:
            os.replace(Path(scratch) / name, dest / name)
        elapsed = time.monotonic() - started
        print(f"envtest: built in {elapsed:.0f}s into {dest}", file=log, flush=True)


def ensure_binaries(log: Any = None) -> Binaries:
    """Return the binaries, building whatever is missing.

    ``$KUBEBUILDER_ASSETS`` (the setup-envtest convention) wins when it holds
    etcd and kube-apiserver.  setup-envtest does not ship
    kube-controller-manager, so when that one is missing there it is built
    from the pinned Kubernetes version into the usual cache folder.
    """
    log = sys.stderr if log is None else log
    cached = cache_dir()
    assets_env = os.environ.get("KUBEBUILDER_ASSETS")
    found: dict[str, Path] = {}
    if assets_env:
        assets = Path(assets_env).expanduser().resolve()
        for name in (ETCD, APISERVER):
            if not _is_executable(assets / name):
                raise EnvtestError(f"KUBEBUILDER_ASSETS={assets} has no executable {name}")
            found[name] = assets / name
        if _is_executable(assets / CONTROLLER_MANAGER):
            found[CONTROLLER_MANAGER] = assets / CONTROLLER_MANAGER
    missing = [name for name in BINARIES if name not in found]
    if missing:
        with _lock(cache_root() / ".build.lock"):
            # Re-check under the lock: another process may have just built them.
            todo = [name for name in missing if not _is_executable(cached / name)]
            if todo:
                _build_into(todo, cached, log)
        for name in missing:
            found[name] = cached / name
    return Binaries(
        etcd=found[ETCD],
        kube_apiserver=found[APISERVER],
        kube_controller_manager=found[CONTROLLER_MANAGER],
    )


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise EnvtestError("the openssl command is needed to create certificates")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EnvtestError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _signed_cert(pki: Path, name: str, subject: str, extensions: str, days: int = 365) -> None:
    """Create ``name.key`` and ``name.crt`` signed by ``ca.crt`` in ``pki``."""
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text(extensions, encoding="utf-8")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", str(days), "-sha256",
        "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """Create the CA, apiserver serving cert, client certs and SA key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.crt", "-days", "365", "-subj", "/CN=smi2mesh-envtest-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=pki,
    )  # fmt: skip
    sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _signed_cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n",
    )
    client_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n"
    )
    # Group system:masters is bound to cluster-admin by RBAC bootstrap policy.
    _signed_cert(pki, "admin", f"/O=system:masters/CN={ADMIN_USER}", client_ext)
    # This user name is what the bootstrap ClusterRole
    # system:kube-controller-manager is bound to.
    _signed_cert(pki, "controller-manager", "/CN=system:kube-controller-manager", client_ext)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for leftover in pki.glob("*.csr"):
        leftover.unlink()


def write_kubeconfig(path: Path, server: str, pki: Path, client: str, user: str) -> None:
    """Write a kubeconfig that authenticates with ``pki/client.{crt,key}``.

    JSON is valid YAML, so no YAML library is needed.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "envtest",
                "cluster": {
                    "server": server,
                    "certificate-authority": str(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{client}.crt"),
                    "client-key": str(pki / f"{client}.key"),
                },
            }
        ],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
        "current-context": "envtest",
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


# --------------------------------------------------------------------------
# HTTP client for the apiserver (stdlib, client-certificate auth)
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Response:
    """An apiserver response: status, every ``Warning`` header and the body."""

    status: int
    warnings: list[str]
    body: bytes

    def json(self) -> Any:
        """Body decoded as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


_WARNING_RE = re.compile(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"')


def parse_warning(header: str) -> str:
    """Text of an RFC 7234 ``Warning`` header (``299 - "text"``)."""
    match = _WARNING_RE.match(header)
    if match is None:
        return header.strip()
    return re.sub(r"\\(.)", r"\1", match.group(1))


class KubeHTTP:
    """Minimal HTTPS client for one apiserver.

    The Python ``kubernetes`` package exposes neither response headers (the
    ``Warning`` headers dry-run validation reports) nor apply patches in a
    way that is stable across its releases, so raw requests are simpler.
    """

    def __init__(
        self,
        server: str,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        token: str | None = None,
        verify: bool = True,
    ) -> None:
        self.server = server.rstrip("/")
        context = ssl.create_default_context(cafile=ca_file)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
        self._context = context
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = token if " " in token else f"Bearer {token}"

    @classmethod
    def from_kubeconfig_dir(cls, directory: Path) -> KubeHTTP:
        """Admin client for an environment started by :func:`start`."""
        state = read_state(directory)
        if state is None:
            raise EnvtestError(f"no envtest running in {directory}")
        pki = directory / "pki"
        return cls(
            f"https://127.0.0.1:{state['ports']['apiserver']}",
            ca_file=str(pki / "ca.crt"),
            cert_file=str(pki / "admin.crt"),
            key_file=str(pki / "admin.key"),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Response:
        """Send one request; non-2xx statuses are returned, not raised."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        for key, value in {**self._headers, **(headers or {})}.items():
            request.add_header(key, value)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=timeout) as resp:
                return Response(
                    resp.status,
                    [parse_warning(w) for w in resp.headers.get_all("Warning") or []],
                    resp.read(),
                )
        except urllib.error.HTTPError as error:
            with error:
                return Response(
                    error.code,
                    [parse_warning(w) for w in error.headers.get_all("Warning") or []],
                    error.read(),
                )


# --------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1.

    There is a window between closing the probe socket and the server binding
    it; controller-runtime's envtest accepts the same race.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_state(directory: Path) -> dict[str, Any] | None:
    """The state recorded by :func:`start`, or None when nothing was started."""
    try:
        state: dict[str, Any] = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return state


def _start_time(pid: int) -> int | None:
    """Start time of a live process (clock ticks since boot); None if gone or a zombie.

    A pid plus its start time names one process for good: a recycled pid has
    a later start time, and exec (wrapper scripts) does not change it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Fields after the parenthesised command name start at field 3 (state);
    # starttime is field 22.  A zombie has exited and only awaits reaping.
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _alive(pid: int, started: int) -> bool:
    """True while the process recorded as (``pid``, ``started``) runs."""
    return _start_time(pid) == started


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass
class _Proc:
    name: str
    pid: int
    started: int
    log: Path


def _spawn(name: str, argv: list[str], directory: Path) -> _Proc:
    log_path = directory / f"{name}.log"
    with log_path.open("ab") as log:
        # start_new_session detaches the server from the terminal and the
        # caller's process group, so it survives the command returning and a
        # Ctrl-C in the shell that started it.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
            close_fds=True,
        )
    (directory / f"{name}.pid").write_text(f"{process.pid}\n", encoding="utf-8")
    # A child that already died is a zombie here and gets -1, which the
    # readiness wait then reports as "exited" together with its log.
    started = _start_time(process.pid)
    # The Popen object is dropped on purpose; stop() finds the pid in the
    # state file.  Mark it reaped-by-someone-else so Python does not warn.
    process.returncode = 0
    return _Proc(name, process.pid, started if started is not None else -1, log_path)


def _wait_until(what: str, check: Any, procs: Sequence[_Proc], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        for proc in procs:
            if not _alive(proc.pid, proc.started):
                raise EnvtestError(
                    f"{proc.name} exited while waiting for {what}; "
                    f"last lines of {proc.log}:\n{_tail(proc.log)}"
                )
        try:
            if check():
                return
        except (OSError, ValueError) as error:
            last_error = str(error)
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.log}:\n{_tail(p.log, 15)}" for p in procs)
            raise EnvtestError(f"timed out after {timeout:.0f}s waiting for {what} {last_error}\n{logs}")
        time.sleep(interval)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as error:
        error.close()
        return False


@dataclasses.dataclass(frozen=True)
class Environment:
    """A running control plane."""

    dir: Path
    kubeconfig: Path
    server: str

    def http(self) -> KubeHTTP:
        """Admin HTTP client."""
        return KubeHTTP.from_kubeconfig_dir(self.dir)


def start(
    directory: Path,
    binaries: Binaries | None = None,
    timeout: float = 180.0,
    log: Any = None,
) -> Environment:
    """Start etcd, kube-apiserver and kube-controller-manager under ``directory``.

    Returns once ``/readyz`` of the apiserver and ``/healthz`` of the
    controller manager answer ok.  Every start is a fresh cluster: data,
    certificates and kubeconfigs from an earlier run in ``directory`` are
    replaced.
    """
    log = sys.stderr if log is None else log
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    # Two starts racing in one folder would both pass the running() check and
    # overwrite each other's state, leaving servers no stop() can find.
    with _lock(directory / ".lock"):
        return _start_locked(directory, binaries, timeout, log)


def _start_locked(directory: Path, binaries: Binaries | None, timeout: float, log: Any) -> Environment:
    if running(directory):
        raise EnvtestError(f"envtest already running in {directory}; stop it first")
    binaries = binaries or ensure_binaries(log)
    for stale in ("etcd", "pki", "controller-manager-certs"):
        shutil.rmtree(directory / stale, ignore_errors=True)
    for stale_log in directory.glob("*.log"):
        stale_log.unlink()
    pki = directory / "pki"
    make_pki(pki)

    ports = {
        "etcd": free_port(),
        "etcd_peer": free_port(),
        "apiserver": free_port(),
        "controller_manager": free_port(),
    }
    server = f"https://127.0.0.1:{ports['apiserver']}"
    kubeconfig = directory / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki, "admin", ADMIN_USER)
    kcm_kubeconfig = directory / "controller-manager.kubeconfig"
    write_kubeconfig(kcm_kubeconfig, server, pki, "controller-manager", "system:kube-controller-manager")

    procs: list[_Proc] = []
    state: dict[str, Any] = {
        "ports": ports,
        "processes": [],
        "binaries": {name: str(binaries.path(name)) for name in BINARIES},
    }

    def record(proc: _Proc) -> None:
        procs.append(proc)
        state["processes"].append({"name": proc.name, "pid": proc.pid, "started": proc.started})
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    try:
        record(
            _spawn(
                ETCD,
                [
                    str(binaries.etcd),
                    "--name=envtest",
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=envtest={peer_url}",
                    # A throwaway test store: durability only costs time.
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                directory,
            )
        )
        _wait_until("etcd /health", lambda: _http_ok(f"{etcd_url}/health"), procs, timeout)

        record(
            _spawn(
                APISERVER,
                [
                    str(binaries.kube_apiserver),
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={ports['apiserver']}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    f"--service-account-issuer={server}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    # Real RBAC, so impersonated ServiceAccounts get 403s.
                    "--authorization-mode=RBAC",
                    "--allow-privileged=true",
                    # No serviceaccount controller runs, so namespaces have no
                    # `default` ServiceAccount and this plugin would reject
                    # every Pod; controller-runtime's envtest disables it too.
                    # PodSecurity and the other defaults stay on.
                    "--disable-admission-plugins=ServiceAccount",
                    # 127.0.0.1 is not a valid Endpoints address, so the
                    # `kubernetes` Service endpoint reconciler would only log
                    # errors; nothing here runs inside the cluster network.
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={directory / 'apiserver-certs'}",
                ],
                directory,
            )
        )
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        _wait_until("kube-apiserver /readyz", lambda: _http_ok(f"{server}/readyz", ctx), procs, timeout)

        record(
            _spawn(
                CONTROLLER_MANAGER,
                [
                    str(binaries.kube_controller_manager),
                    f"--kubeconfig={kcm_kubeconfig}",
                    f"--authentication-kubeconfig={kcm_kubeconfig}",
                    f"--authorization-kubeconfig={kcm_kubeconfig}",
                    # The apiserver has no front-proxy (requestheader) CA, so
                    # looking it up would only log retries forever; healthz
                    # is an always-allowed path anyway.
                    "--authentication-skip-lookup=true",
                    # Just enough for real ownerReference cascades and
                    # namespace deletion; no pods or nodes exist to manage.
                    "--controllers=garbage-collector-controller,namespace-controller",
                    # Each controller runs as its own ServiceAccount with its
                    # bootstrap RBAC role, as in real clusters; the tokens come
                    # from the TokenRequest API, so the token controller is not
                    # needed.
                    "--use-service-account-credentials=true",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['controller_manager']}",
                    f"--cert-dir={directory / 'controller-manager-certs'}",
                ],
                directory,
            )
        )
        # Self-signed serving cert made by the controller manager itself.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        kcm_url = f"https://127.0.0.1:{ports['controller_manager']}/healthz"
        _wait_until(
            "kube-controller-manager /healthz",
            lambda: _http_ok(kcm_url, insecure),
            procs,
            timeout,
        )
    except BaseException:
        _stop_locked(directory, 20.0, log)
        raise
    return Environment(directory, kubeconfig, server)


def running(directory: Path) -> bool:
    """True when any recorded server process in ``directory`` is alive."""
    state = read_state(directory)
    if state is None:
        return False
    return any(_alive(int(p["pid"]), int(p["started"])) for p in state.get("processes", []))


def stop(directory: Path, timeout: float = 20.0, log: Any = None) -> list[str]:
    """Stop the servers recorded in ``directory``; harmless when none run.

    Returns the names of the processes that were signalled.
    """
    log = sys.stderr if log is None else log
    directory = directory.resolve()
    if not directory.is_dir():
        return []
    with _lock(directory / ".lock"):
        return _stop_locked(directory, timeout, log)


def _stop_locked(directory: Path, timeout: float, log: Any) -> list[str]:
    state = read_state(directory)
    if state is None:
        return []
    stopped: list[str] = []
    for proc in reversed(state.get("processes", [])):
        pid, started = int(proc["pid"]), int(proc["started"])
        if not _alive(pid, started):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        stopped.append(proc["name"])
        deadline = time.monotonic() + timeout
        while _alive(pid, started) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid, started):
            print(f"envtest: {proc['name']} ignored SIGTERM; killing it", file=log)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid, started):
                time.sleep(0.05)
        _reap(pid)
    (directory / STATE_FILE).unlink(missing_ok=True)
    for name in BINARIES:
        (directory / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (pytest run)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/envtest``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="envtest",
        description="Run a local etcd + kube-apiserver + kube-controller-manager for tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build or locate the binaries and print their folder")
    for name, text in (("start", "start the servers"), ("stop", "stop the servers")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state folder (default: ./.envtest)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for folder in ensure_binaries().folders():
                print(folder)
        elif args.command == "start":
            started = time.monotonic()
            env = start(args.dir)
            print(
                f"envtest: ready in {time.monotonic() - started:.1f}s; logs in {env.dir}",
                file=sys.stderr,
            )
            print(f"export KUBECONFIG={env.kubeconfig}")
        else:
            stopped = stop(args.dir)
            print(f"envtest: stopped {', '.join(stopped) or 'nothing'}", file=sys.stderr)
    except EnvtestError as error:
        print(f"envtest: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
