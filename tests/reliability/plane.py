"""Faults on a dedicated envtest control plane: kill and restart its servers, cut connections.

The plane is started by :func:`tests.envtest.envtest.start` in a folder of its
own, so nothing here can touch the session-wide ``envtest`` fixture's
processes. Restarting a server re-runs it with the exact command line it was
started with (read back from ``/proc``), optionally with flags replaced, and
records the new process in the plane's ``state.json`` so
:func:`~tests.envtest.envtest.stop` still finds and stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.envtest import envtest as lib

READY_TIMEOUT = 180.0


@dataclass
class Plane:
    """A running dedicated control plane and the fault operations on it."""

    env: lib.Environment

    @property
    def dir(self) -> Path:
        return self.env.dir

    def _state(self) -> dict[str, Any]:
        state = lib.read_state(self.dir)
        if state is None:
            raise lib.EnvtestError(f"no control plane recorded in {self.dir}")
        return state

    def _proc(self, name: str) -> dict[str, Any]:
        for p in self._state()["processes"]:
            if p["name"] == name:
                return dict(p)
        raise lib.EnvtestError(f"{name} is not recorded in {self.dir}")

    def argv(self, name: str) -> list[str]:
        """The command line *name* runs with now."""
        pid = int(self._proc(name)["pid"])
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [a.decode() for a in raw.split(b"\0") if a]

    def alive(self, name: str) -> bool:
        p = self._proc(name)
        return lib._alive(int(p["pid"]), int(p["started"]))

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 60.0) -> None:
        """Send *sig* to one server of this plane (its recorded pid only) and wait for it to exit."""
        p = self._proc(name)
        pid, started = int(p["pid"]), int(p["started"])
        if lib._alive(pid, started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while lib._alive(pid, started):
            if time.monotonic() > deadline:
                raise lib.EnvtestError(f"{name} (pid {pid}) did not exit after {sig.name}")
            time.sleep(0.05)
        lib._reap(pid)

    def spawn(self, name: str, argv: list[str], attempts: int = 15) -> None:
        """Start *name* again with *argv* and record it in place of the old process.

        Its loopback port is in the ephemeral range, and clients retrying against
        the dead server can briefly hold it (a TCP self-connect): then try again.
        """
        for attempt in range(attempts):
            try:
                self._spawn_once(name, argv)
                return
            except lib.EnvtestError as exc:
                if "address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(2.0)

    def _spawn_once(self, name: str, argv: list[str]) -> None:
        with lib._lock(self.dir / ".lock"):
            proc = lib._spawn(name, argv, self.dir)
            state = self._state()
            state["processes"] = [
                {"name": proc.name, "pid": proc.pid, "started": proc.started} if p["name"] == name else p
                for p in state["processes"]]
            (self.dir / lib.STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        self._wait_ready(name, proc)

    def _wait_ready(self, name: str, proc: Any) -> None:
        if name == lib.ETCD:
            url = f"http://127.0.0.1:{self._state()['ports']['etcd']}/health"
            lib._wait_until("etcd /health", lambda: lib._http_ok(url), [proc], READY_TIMEOUT)
        elif name == lib.APISERVER:
            self.wait_apiserver([proc])

    def wait_apiserver(self, procs: list[Any] | None = None) -> None:
        """Until the apiserver answers /readyz (which includes its etcd check)."""
        pki = self.dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        url = f"{self.env.server}/readyz"
        lib._wait_until("kube-apiserver /readyz", lambda: lib._http_ok(url, ctx), procs or [],
                        READY_TIMEOUT, interval=0.1)

    def restart(self, name: str, sig: signal.Signals = signal.SIGKILL,
                flags: Mapping[str, str] | None = None, down_for: float = 0.0) -> float:
        """Kill *name* with *sig*, keep it down *down_for* seconds, start it with the same
        command line (``flags`` replace or add ``--flag=value``). Returns when it is ready,
        with the monotonic time it became ready."""
        argv = with_flags(self.argv(name), flags or {})
        self.kill(name, sig)
        if down_for:
            time.sleep(down_for)
        self.spawn(name, argv)
        return time.monotonic()


def with_flags(argv: list[str], flags: Mapping[str, str]) -> list[str]:
    """*argv* with ``--name=value`` flags replaced or appended."""
    out = [a for a in argv if a.split("=", 1)[0] not in flags]
    return out + [f"{k}={v}" for k, v in flags.items()]


# ---- a TCP proxy whose connections can be cut --------------------------------------


@dataclass
class Proxy:
    """Forwards 127.0.0.1:port to the apiserver; :meth:`cut` drops every connection.

    TLS passes through untouched (the serving certificate names 127.0.0.1), so a
    client pointed at the proxy sees the real server, and a cut is exactly what a
    load balancer restart or a network blip does to long-running watches.
    """

    target: tuple[str, int]
    blocked: threading.Event = field(default_factory=threading.Event)
    cuts: int = 0
    _pairs: list[tuple[socket.socket, socket.socket]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.blocked.is_set():
                client.close()  # as if the server were unreachable
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> int:
        """Drop every open connection; returns how many were open."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        self.cuts += len(pairs)
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


def kubeconfig_via(kubeconfig: Path, port: int, dest: Path) -> Path:
    """A copy of *kubeconfig* that connects through 127.0.0.1:*port*."""
    config = json.loads(kubeconfig.read_text(encoding="utf-8"))  # envtest writes JSON
    for c in config["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dest.write_text(json.dumps(config), encoding="utf-8")
    dest.chmod(0o600)
    return dest


# ---- the operator as a process (for SIGKILL) ---------------------------------------


@dataclass
class OperatorProcess:
    """``smi2mesh run`` in a child process, logging JSON lines to a file."""

    args: list[str]
    kubeconfig: Path
    log: Path
    health_port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        exe = Path(sys.executable).with_name("smi2mesh")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([str(exe), "run", *self.args], stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def ready(self) -> bool:
        try:
            return lib._http_ok(f"http://127.0.0.1:{self.health_port}/readyz")
        except OSError:
            return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, mid-request."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def reconcile_lines(self) -> list[dict[str, Any]]:
        """The operator's per-namespace ``reconciled`` and ``statuses written`` log lines."""
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("msg") in ("reconciled", "statuses written"):
                    out.append(rec)
        return out

    def errors(self) -> list[str]:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if '"level": "error"' in line or "Traceback" in line]
