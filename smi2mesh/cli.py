"""The ``smi2mesh`` command line.

``smi2mesh translate`` is the offline path for GitOps pipelines: SMI
manifests in, mesh manifests out, with no cluster. It calls the same
:func:`smi2mesh.translate.translate` as the operator.

Exit codes: 0 success; 1 invalid input (nothing on stdout); 2 usage error;
3 findings under ``--strict`` (output still written); 70 internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn, TextIO

from smi2mesh import __version__, migration, progress, yamlio
from smi2mesh.errors import InputError
from smi2mesh.inputs import parse_documents
from smi2mesh.operator.config import ConfigError, add_run_arguments, from_args
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS, profiles, smi_native
from smi2mesh.translators.base import ConsulNamespaces, Options

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_FINDINGS, EXIT_INTERNAL = 0, 1, 2, 3, 70


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 and names the bad value, never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog="smi2mesh", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"smi2mesh {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    tr = sub.add_parser(
        "translate", help="translate SMI manifests into mesh manifests, offline",
        description="Read SMI objects (and the Services and workloads they refer to) and "
                    "print the target mesh's objects. Findings go to stderr.")
    tr.add_argument("--mesh", required=True, choices=list(TRANSLATORS), metavar="MESH",
                    help=f"target: {', '.join(TRANSLATORS)} (smi re-emits SMI at other versions)")
    tr.add_argument("-f", "--filename", action="append", default=[], metavar="PATH",
                    help="a file, a directory (read recursively) or - for stdin; repeatable "
                         "(default: stdin)")
    tr.add_argument("paths", nargs="*", metavar="PATH",
                    help="more files or directories, as with -f (for pre-commit hooks)")
    tr.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml",
                    help="output format: a YAML stream or a JSON list (default: yaml)")
    tr.add_argument("--strict", action="store_true",
                    help="exit with code 3 if there is any finding")
    tr.add_argument("--trust-domain", default="cluster.local", metavar="D",
                    help="mesh trust domain used in identities (default: cluster.local)")
    tr.add_argument("--cluster-domain", default="cluster.local", metavar="D",
                    help="Kubernetes cluster domain used in Service FQDNs, and the one split hosts "
                         "name.ns.svc.<domain> must name (default: cluster.local)")
    tr.add_argument("--consul-namespaces", choices=[m.value for m in ConsulNamespaces],
                    default=ConsulNamespaces.OFF.value,
                    help="with --mesh consul: off (Consul CE, the default: sources carry no "
                         "namespace) or mirror (Enterprise namespaces mirroring Kubernetes ones)")
    tr.add_argument("--widen-l7-to-l4", action="store_true",
                    help="migration aid: grant an HTTP rule the mesh cannot enforce (Kuma; Consul "
                         "for a non-HTTP service) at L4 instead of failing closed; broader than "
                         "SMI, each one a Widened finding")
    tr.add_argument("--mesh-version", metavar="V",
                    help="the target mesh's release to write for, e.g. 1.21 (Istio v1beta1 APIs) or "
                         "2.20; default: the newest supported (see README, Mesh versions)")
    tr.add_argument("--gateway-api-version", metavar="V",
                    help="the Gateway API release installed, for linkerd, cilium and gamma routes "
                         "(e.g. 1.5.1: TCPRoute v1alpha2); default: the newest the mesh version supports")
    run = sub.add_parser(
        "run", help="run the operator: reconcile SMI objects into the chosen mesh",
        description="Watch SMI objects and reconcile them into mesh objects with server-side "
                    "apply. Uses in-cluster configuration, or KUBECONFIG outside a cluster.")
    add_run_arguments(run)
    versions = tr.add_mutually_exclusive_group()
    versions.add_argument("--smi-profile", choices=list(smi_native.PROFILES), metavar="PROFILE",
                          help="with --mesh smi: the SMI versions a mesh serves: "
                               f"{', '.join(smi_native.PROFILES)} (default: latest)")
    versions.add_argument("--smi-versions", metavar="split=V,access=V,specs=V",
                          help="with --mesh smi: explicit SMI versions per API group")
    # Last: report and plan take every translation option translate has, whoever added it.
    migration.add_commands(sub, tr)
    return parser


def smi_versions(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, str]:
    """The SMI versions requested for ``--mesh smi``; a usage error otherwise."""
    if args.mesh != "smi":
        if args.smi_profile or args.smi_versions:
            parser.error("--smi-profile and --smi-versions apply only to --mesh smi")
        return {}
    if args.smi_versions:
        try:
            return smi_native.parse_versions(args.smi_versions)
        except ValueError as exc:
            parser.error(f"argument --smi-versions: {exc}")
    return dict(smi_native.PROFILES[args.smi_profile or "latest"])


def profile(args: argparse.Namespace, parser: argparse.ArgumentParser) -> profiles.Profile:
    """The profile ``--mesh-version`` and ``--gateway-api-version`` choose (usage error if unsupported)."""
    try:
        return profiles.resolve(args.mesh, args.mesh_version, args.gateway_api_version)
    except profiles.ProfileError as exc:
        parser.error(str(exc))


def translation_options(args: argparse.Namespace, versions: dict[str, str]) -> Options:
    """The translation knobs of ``translate``; report and plan build theirs here too."""
    return Options(trust_domain=args.trust_domain, cluster_domain=args.cluster_domain,
                   smi_versions=versions,
                   consul_namespaces=ConsulNamespaces(args.consul_namespaces),
                   widen_l7_to_l4=args.widen_l7_to_l4)


def run_translate(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Run ``translate``; write the result or the errors; return the exit code."""
    versions = smi_versions(args, build_parser())
    chosen = profile(args, build_parser())
    # A short-lived batch process: loading builds hundreds of thousands of small
    # objects that the cyclic collector would scan over and over; reference
    # counting frees what matters, and the process exits right after.
    gc.disable()
    shown = progress.for_flag(args.progress, stderr)
    try:
        docs = migration.documents(args, stdin, shown)
        inputs = parse_documents(docs)
    except FileNotFoundError as exc:
        stderr.write(f"error: {exc.args[0]}: no such file or directory\n")
        return EXIT_USAGE
    except migration.ClusterError as exc:
        stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except InputError as exc:
        for problem in exc.problems:
            stderr.write(f"error: {problem.render()}\n")
        return EXIT_INPUT
    options = dataclasses.replace(translation_options(args, versions), profile=chosen)
    shown.start(f"translating for {args.mesh}")
    result = translate(inputs, args.mesh, options)
    for obj in (*inputs.splits, *inputs.targets, *inputs.http_route_groups, *inputs.port_routes):
        shown.add(obj.kind, 1)
    shown.finish()
    text = (yamlio.dump_json if args.output == "json" else yamlio.dump_yaml)(result.objects)
    stdout.write(text)
    for finding in result.findings:
        stderr.write(f"warning: {finding.render()} [{finding.reason.value}]\n")
    if args.strict and result.findings:
        stderr.write(f"error: {len(result.findings)} finding(s) with --strict\n")
        return EXIT_FINDINGS
    return EXIT_OK


def run_operator(args: argparse.Namespace) -> int:
    """Run ``run``: validate the configuration, then hand over to the operator runtime."""
    try:
        config = from_args(args)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    # Imported here: the offline CLI must not pay for kopf and the Kubernetes client.
    from smi2mesh.operator import runtime  # noqa: PLC0415

    return runtime.run(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smi2mesh`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "translate":
            return run_translate(args, sys.stdin, sys.stdout, sys.stderr)
        if args.command == "run":
            return run_operator(args)
        if args.command in migration.COMMANDS:
            return migration.run(args, sys.stdin, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing useful is left to say.
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # the CLI promises no traceback, whatever went wrong
        if os.environ.get("SMI2MESH_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} "
                         "(set SMI2MESH_DEBUG=1 for a traceback, and please report it)\n")
        return EXIT_INTERNAL
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
