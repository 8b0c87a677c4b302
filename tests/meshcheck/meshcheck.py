"""Build and locate the mesh-native checkers of the meshcheck tier.

Each mesh whose own code the Go module proxy serves (Istio, Cilium) has a Go
tools module of ours under ``tests/meshcheck/<mesh>/``.  Its binaries run the
mesh's admission code and config generation on what smi2mesh emits.  This
module is the one registry of those binaries: ``scripts/meshcheck`` (command
line) and the pytest fixtures in ``tests/meshcheck/fixtures.py`` both build
through :func:`build`.

Binaries are cached under ``~/.cache/smi2mesh/meshcheck/<hash>/`` where the
hash covers the module's go.mod, go.sum, every source file and the build
command, so any change rebuilds and an unchanged tree never does.  A build
that fails raises :class:`MeshcheckError` naming the module and carrying Go's
output (a module the proxy no longer serves shows up there); callers turn it
into a test failure, never a skip.

Standard library only, so the script works before the project is installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, TextIO

MESHCHECK_DIR = Path(__file__).resolve().parent
REPO_ROOT = MESHCHECK_DIR.parent.parent

# "binary": `go build` of a main package; "test": `go test -c` of a package
# whose tests are the tool (istiod's config generator test helpers only exist
# in _test-free packages but need the testing package, so a test binary is
# the natural way to run them).
BuildKind = Literal["binary", "test"]


class MeshcheckError(RuntimeError):
    """Raised when a checker cannot be built or run."""


@dataclasses.dataclass(frozen=True)
class Tool:
    """One checker binary: which Go module folder and package it is built from."""

    mesh: str
    # Folder of the tool's go.mod, relative to tests/meshcheck/.
    module: str
    # Package path relative to the module folder, e.g. ``./cmd/validate``.
    package: str
    kind: BuildKind
    # Extra `go build` / `go test -c` flags (tags, ldflags).
    flags: tuple[str, ...] = ()

    @property
    def module_dir(self) -> Path:
        """Absolute folder of the tool's go.mod."""
        return MESHCHECK_DIR / self.module


# The registry: tool name -> how to build it.  Names are prefixed by their
# mesh so ``scripts/meshcheck build <mesh>`` can select them.
TOOLS: dict[str, Tool] = {
    "istio-validate": Tool(mesh="istio", module="istio", package="./cmd/validate", kind="binary"),
    "istio-configgen": Tool(mesh="istio", module="istio", package="./configgen", kind="test"),
    # Cilium agent's CNP/CEC parsers and policy repository (admit, flows).
    "cilium-check": Tool(mesh="cilium", module="cilium", package=".", kind="binary"),
}


def meshes() -> list[str]:
    """Meshes that have at least one tool, sorted."""
    return sorted({tool.mesh for tool in TOOLS.values()})


def tools_of(mesh: str) -> list[str]:
    """Tool names of ``mesh`` (``all`` selects every tool, a tool name just that tool)."""
    names = [name for name, tool in TOOLS.items() if mesh in ("all", tool.mesh, name)]
    if not names:
        raise MeshcheckError(f"no meshcheck tool for {mesh!r}; known meshes: {', '.join(meshes())}")
    return names


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/smi2mesh/meshcheck``, defaulting to ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smi2mesh" / "meshcheck"


def find_go() -> str:
    """Locate the ``go`` command: ``$GO``, then ``PATH``, then /usr/local/go."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MeshcheckError("the Go toolchain was not found: install Go ≥ 1.26 or set $GO")


def _source_files(module_dir: Path) -> list[Path]:
    """Files whose content decides the build: go.mod, go.sum, Go sources and test data."""
    if not (module_dir / "go.mod").is_file():
        raise MeshcheckError(f"{module_dir}/go.mod is missing")
    files = [module_dir / "go.mod", module_dir / "go.sum"]
    for path in sorted(module_dir.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".yaml", ".json") and path not in files:
            files.append(path)
    return [path for path in files if path.is_file()]


def build_command(name: str, out: Path) -> list[str]:
    """The Go command that writes tool ``name`` to the file ``out``."""
    tool = TOOLS[name]
    verb = ["build"] if tool.kind == "binary" else ["test", "-c"]
    return [find_go(), *verb, "-trimpath", *tool.flags, "-o", str(out), tool.package]


def fingerprint(name: str) -> str:
    """Hash of everything that decides tool ``name``'s binary."""
    tool = TOOLS[name]
    digest = hashlib.sha256()
    digest.update(name.encode())
    # The go path is machine-specific; the rest of the command is not.
    digest.update(shlex.join(build_command(name, Path("OUT"))[1:]).encode())
    for path in _source_files(tool.module_dir):
        digest.update(str(path.relative_to(tool.module_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_path(name: str) -> Path:
    """Where tool ``name`` is (or will be) cached."""
    return cache_root() / fingerprint(name) / name


def _build_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    # A go.work further up the tree must not pull in other modules.
    env["GOWORK"] = "off"
    # The pinned go.sum is the truth: never edit it during a build.
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=readonly").strip()
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


def build(name: str, log: TextIO | None = None) -> Path:
    """Return tool ``name``'s binary, building it first when it is not cached.

    Raises :class:`MeshcheckError` naming the Go module when the build fails.
    """
    if name not in TOOLS:
        raise MeshcheckError(f"unknown meshcheck tool {name!r}; known: {', '.join(sorted(TOOLS))}")
    log = sys.stderr if log is None else log
    tool = TOOLS[name]
    dest = binary_path(name)
    if dest.is_file():
        return dest
    with _lock(cache_root() / ".build.lock"):
        if dest.is_file():  # another process built it while we waited
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A scratch file beside ``dest`` keeps a half-written binary from
        # ever being taken for a cached one.
        with tempfile.TemporaryDirectory(prefix=".build-", dir=dest.parent) as scratch:
            out = Path(scratch) / name
            command = build_command(name, out)
            print(f"meshcheck: building {name} ({tool.module_dir}) ...", file=log, flush=True)
            started = time.monotonic()
            result = subprocess.run(
                command,
                cwd=tool.module_dir,
                env=_build_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            if result.returncode != 0 or not out.is_file():
                raise MeshcheckError(
                    f"meshcheck: building {name} failed (exit {result.returncode}) in Go module "
                    f"{_module_path(tool.module_dir)} ({tool.module_dir})\n"
                    f"command: {shlex.join(command)}\n{result.stdout}"
                )
            os.replace(out, dest)
            _prune(name, keep=dest.parent)
            elapsed = time.monotonic() - started
            print(f"meshcheck: built {name} in {elapsed:.0f}s into {dest}", file=log, flush=True)
    return dest


def _prune(name: str, keep: Path) -> None:
    """Delete older builds of tool ``name`` (folders holding nothing else): each is 100+ MB."""
    for folder in cache_root().iterdir():
        if folder == keep or not folder.is_dir() or folder.name.startswith("."):
            continue
        if [p.name for p in folder.iterdir()] == [name]:
            shutil.rmtree(folder, ignore_errors=True)


def _module_path(module_dir: Path) -> str:
    for line in (module_dir / "go.mod").read_text(encoding="utf-8").splitlines():
        if line.startswith("module "):
            return line.split()[1]
    return str(module_dir)


def run(name: str, args: Sequence[str], stdin: str, timeout: float = 900) -> str:
    """Run tool ``name`` (built if needed) with ``args`` and ``stdin``; return its stdout.

    A non-zero exit raises :class:`MeshcheckError` with the tool's stderr.
    """
    binary = build(name)
    result = subprocess.run(
        [str(binary), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=TOOLS[name].module_dir,
    )
    if result.returncode != 0:
        raise MeshcheckError(
            f"meshcheck: {name} {shlex.join(args)} exited {result.returncode}\n{result.stderr[-20000:]}"
        )
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/meshcheck build [MESH|all]``: build (or locate) the tools, print their paths."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("build", "path") or len(args) > 2:
        print(f"usage: scripts/meshcheck build|path [{'|'.join([*meshes(), 'all'])}|TOOL]", file=sys.stderr)
        return 2
    try:
        names = tools_of(args[1] if len(args) == 2 else "all")
        for name in names:
            path = build(name) if args[0] == "build" else binary_path(name)
            print(f"{name}\t{path}")
    except MeshcheckError as error:
        print(error, file=sys.stderr)
        return 1
    return 0
