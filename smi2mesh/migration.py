"""The migration workflow's command line: ``report``, ``plan`` and ``translate --from-cluster``.

Platform teams moving namespaces between meshes ask three things before they
relabel anything: which mesh can hold our policy (``report``), what would
the operator do (``plan``), and what does the cluster's SMI become
(``translate --from-cluster``). Every one of them translates with the same
:func:`smi2mesh.translate.translate` and the same translation options as
``translate`` (they are copied from its parser, so an option added there is
accepted here too). Nothing here writes to a cluster.

The Kubernetes client is imported only when a command reads a cluster, so
the offline commands stay as fast to start as ``translate``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from smi2mesh import cli, progress, report, yamlio
from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.translators import TRANSLATORS
from smi2mesh.translators.base import Options

if TYPE_CHECKING:
    from smi2mesh import cluster

COMMANDS = frozenset(("report", "plan"))
# The meshes a report covers by default: those the operator can run (smi
# re-emits SMI; ask for it with --mesh smi).
REPORT_MESHES = tuple(m for m in TRANSLATORS if m != "smi")
# translate's own flags that report or plan define differently or not at all.
_NOT_SHARED = frozenset(("help", "mesh", "output"))
# Cluster flags are kubectl's (-n, -A, --context, --kubeconfig).
_CLUSTER_DESTS = frozenset(("from_cluster", "context", "kubeconfig", "namespace", "all_namespaces"))


class ClusterError(Exception):
    """The cluster cannot be read: unreachable, forbidden, or the SMI CRDs are missing.

    The message is one line naming what is missing. A connection, kubeconfig
    or permission problem is a usage error (exit 2: how or where the command
    runs must change); missing SMI CRDs are an input error (exit 1).
    """

    def __init__(self, message: str, *, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage

    @property
    def exit_code(self) -> int:
        return cli.EXIT_USAGE if self.usage else cli.EXIT_INPUT


def add_cluster_arguments(parser: argparse.ArgumentParser, *, optional: bool = True) -> None:
    """kubectl's connection flags; with *optional*, ``--from-cluster`` turns them on."""
    if optional:
        parser.add_argument("--from-cluster", action="store_true",
                            help="also read SMI objects and their context (Services, workloads, "
                                 "ServiceAccounts) from the current cluster, read-only; -f files "
                                 "win for SMI objects")
    parser.add_argument("--context", metavar="C", help="kubeconfig context (default: the current one)")
    parser.add_argument("--kubeconfig", metavar="F", help="kubeconfig file (default: $KUBECONFIG, "
                                                          "else ~/.kube/config)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="read this namespace; repeatable (default: the context's namespace)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="read every namespace")


def _share(src: argparse.ArgumentParser, dst: argparse.ArgumentParser, skip: Collection[str]) -> None:
    """Give *dst* every option of *src* except those whose dest is in *skip*.

    The Action objects are shared, as ``argparse``'s own ``parents=`` shares
    them, and mutually exclusive groups are kept.
    """
    grouped = {id(a): g for g in src._mutually_exclusive_groups for a in g._group_actions}
    copies: dict[int, argparse._MutuallyExclusiveGroup] = {}
    for action in src._actions:
        if action.dest in skip:
            continue
        group = grouped.get(id(action))
        if group is None:
            dst._add_action(action)
            continue
        if id(group) not in copies:
            copies[id(group)] = dst.add_mutually_exclusive_group(required=group.required)
        copies[id(group)]._add_action(action)


def add_commands(sub: argparse._SubParsersAction[Any],
                 translate: argparse.ArgumentParser) -> None:
    """Add ``--from-cluster`` and ``--progress`` to *translate*, then ``report`` and ``plan``."""
    add_cluster_arguments(translate)
    translate.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                           help="show progress (objects read per kind and per second, what is "
                                "being translated) on stderr; default: only when stderr is a terminal")
    rep = sub.add_parser(
        "report", help="which mesh can hold this SMI: one table per mesh, ranked",
        description="Translate the SMI for every mesh and report, per mesh, the objects carried "
                    "exactly, findings by reason, access rules failed closed or widened and the "
                    "prerequisites; a summary ranks the meshes. Markdown or JSON on stdout.")
    rep.add_argument("--mesh", action="append", default=[], choices=list(TRANSLATORS), metavar="MESH",
                     help=f"a mesh to report on; repeatable (default: {', '.join(REPORT_MESHES)})")
    rep.add_argument("-o", "--output", choices=list(report.RENDERERS), default="markdown",
                     help="markdown (default) or json")
    _share(translate, rep, _NOT_SHARED | {"strict"})
    from smi2mesh.operator.config import OPERATOR_MESHES  # noqa: PLC0415 (no kopf: config is plain)

    plan = sub.add_parser(
        "plan", help="what the operator would do in a live cluster for a mesh; writes nothing",
        description="Read the cluster and show what `smi2mesh run` would create, update (a "
                    "server-side dry-run diff), delete, and what conflicts, if the namespaces "
                    "used --mesh; with every finding. Nothing is written.")
    plan.add_argument("--mesh", required=True, choices=list(OPERATOR_MESHES), metavar="MESH",
                      help=f"the mesh the namespaces would use: {', '.join(OPERATOR_MESHES)}")
    plan.add_argument("-o", "--output", choices=["text", "json"], default="text",
                      help="text (default) or json")
    _share(translate, plan, _NOT_SHARED | {"filename", "paths", "from_cluster"})


def _versions(args: argparse.Namespace, mesh: str) -> dict[str, str]:
    """``--smi-profile``/``--smi-versions`` for the smi target, {} for the others (as translate)."""
    if mesh != "smi":
        return {}
    return cli.smi_versions(argparse.Namespace(**{**vars(args), "mesh": mesh}), cli.build_parser())


def options_for(args: argparse.Namespace, mesh: str) -> Options:
    """The Options ``translate --mesh <mesh>`` would use with the same flags."""
    as_translate = argparse.Namespace(**{**vars(args), "mesh": mesh})
    return dataclasses.replace(cli.translation_options(as_translate, _versions(args, mesh)),
                               profile=cli.profile(as_translate, cli.build_parser()))


def connection(args: argparse.Namespace,
               shown: progress.Progress | None = None) -> cluster.Connection:
    """The cluster named by the kubectl flags (imports the Kubernetes client); lists report to *shown*."""
    from smi2mesh import cluster  # noqa: PLC0415 (the offline path never loads the client)

    conn = cluster.connect(args.kubeconfig, args.context, tuple(args.namespace), args.all_namespaces)
    if shown is not None:
        conn.progress = shown
    return conn


def documents(args: argparse.Namespace, stdin: TextIO,
              shown: progress.Progress | None = None) -> list[tuple[str, object]]:
    """The documents a translating command reads: files, the cluster, or both.

    Files win for SMI objects (the same kind, namespace and name); the
    cluster fills in the rest, context included. Without ``--from-cluster``
    and without files, stdin is read, as ``translate`` always did.
    """
    paths = [*args.filename, *getattr(args, "paths", [])]
    if not getattr(args, "from_cluster", False):
        if args.context or args.kubeconfig or args.namespace or args.all_namespaces:
            raise ClusterError("--context, --kubeconfig, -n and -A read a cluster: add --from-cluster")
        return yamlio.read_sources(paths or ["-"], stdin)
    files = yamlio.read_sources(paths, stdin) if paths else []
    conn = connection(args, shown)
    from smi2mesh import cluster  # noqa: PLC0415 (see connection)

    # With files, the cluster may only fill in context (its SMI CRDs may be gone already).
    return cluster.merge(files, conn.read_documents(_file_namespaces(files), smi_required=not files))


def _file_namespaces(docs: Sequence[tuple[str, object]]) -> set[str]:
    """Namespaces the files' objects live in (the cluster context they need)."""
    out: set[str] = set()
    for _, doc in docs:
        for item in ([doc] if not isinstance(doc, dict) or doc.get("kind") != "List"
                     else doc.get("items") or []):
            if isinstance(item, dict):
                out.add(str((item.get("metadata") or {}).get("namespace") or "default"))
    return out


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Run ``report`` or ``plan``; return the exit code."""
    try:
        if args.command == "report":
            return run_report(args, stdin, stdout, stderr)
        from smi2mesh import plan  # noqa: PLC0415 (loads the Kubernetes client)

        return plan.run(args, connection(args, progress.for_flag(args.progress, stderr)),
                        stdout, stderr)
    except ClusterError as exc:
        stderr.write(f"error: {exc}\n")
        return exc.exit_code


def run_report(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """``smi2mesh report``: parse once, translate per mesh, render."""
    meshes = list(dict.fromkeys(args.mesh)) or list(REPORT_MESHES)
    if (args.smi_profile or args.smi_versions) and "smi" not in meshes:
        cli.build_parser().error("--smi-profile and --smi-versions apply only to --mesh smi")
    shown = progress.for_flag(args.progress, stderr)
    try:
        inputs = parse_documents(documents(args, stdin, shown))
    except FileNotFoundError as exc:
        stderr.write(f"error: {exc.args[0]}: no such file or directory\n")
        return cli.EXIT_USAGE
    except InputError as exc:
        for problem in exc.problems:
            stderr.write(f"error: {problem.render()}\n")
        return cli.EXIT_INPUT
    built = report.build(inputs, meshes, lambda m: options_for(args, m), shown)
    stdout.write(report.RENDERERS[args.output](built))
    return cli.EXIT_OK


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kubectl-smi2mesh``: ``kubectl smi2mesh plan ...`` as a kubectl plugin.

    kubectl users put ``-n``, ``-A``, ``--context`` and ``--kubeconfig`` before
    or after the subcommand; those before it are moved after it. ``translate``
    and ``report`` read the cluster (``--from-cluster``) unless given files.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    leading: list[str] = []
    takes_value = {"-n", "--namespace", "--context", "--kubeconfig"}
    while args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
        flag = args.pop(0)
        leading.append(flag)
        if flag in takes_value and args:
            leading.append(args.pop(0))
    if args:
        command, rest = args[0], args[1:]
        files = any(a in ("-f", "--filename") or a.startswith(("--filename=", "-f")) for a in rest)
        implied = ["--from-cluster"] if command in ("translate", "report") and not files \
            and "--from-cluster" not in rest else []
        args = [command, *leading, *implied, *rest]
    else:
        args = leading
    return cli.main(args)
