"""Translation cost: in-process throughput and the CLI against a YAML baseline.

Run ``python benchmarks/translate.py [--rounds N] [--scale F]``. It prints a
table and writes ``benchmarks/results/translate.json``. Figures are medians
over interleaved rounds (baseline, then each target, repeated), with the
spread (min-max), so a noisy machine shows up as spread, not as a wrong
median. The goals: in-process >= 20,000 SMI objects/s per target on one
core, and the CLI within 1.5x of a PyYAML+libyaml load-and-dump round trip
of the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.corpus import corpus, smi_count
from smi2mesh import yamlio
from smi2mesh.inputs import parse_documents
from smi2mesh.translate import translate
from smi2mesh.translators import TRANSLATORS

BASELINE = (
    "import sys, yaml\n"
    "docs = list(yaml.load_all(open(sys.argv[1]), Loader=yaml.CSafeLoader))\n"
    "sys.stdout.write(yaml.dump_all(docs, Dumper=yaml.CSafeDumper, sort_keys=False))\n"
)


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={**os.environ, "PYTHONHASHSEED": "0"})
    return time.perf_counter() - start


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1 = 10k+10k)")
    parser.add_argument("--meshes", default=",".join(TRANSLATORS))
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    meshes = args.meshes.split(",")
    n = int(10_000 * args.scale)
    docs = corpus(n, n)
    count = smi_count(docs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.yaml"
        path.write_text(yamlio.dump_yaml(docs))
        inputs = parse_documents((f"corpus:{i}", d) for i, d in enumerate(docs))
        results: dict[str, dict[str, list[float]]] = {m: {"inproc": [], "cli": []} for m in meshes}
        baseline: list[float] = []
        for _ in range(args.rounds):
            if not args.skip_cli:
                baseline.append(_run([sys.executable, "-c", BASELINE, str(path)]))
            for mesh in meshes:
                start = time.perf_counter()
                translate(inputs, mesh)
                results[mesh]["inproc"].append(count / (time.perf_counter() - start))
                if not args.skip_cli:
                    results[mesh]["cli"].append(_run([sys.executable, "-m", "smi2mesh.cli", "translate",
                                                      "--mesh", mesh, "-f", str(path)]))
    print(f"corpus: {len(docs)} documents, {count} SMI objects; {args.rounds} rounds, median (spread)")
    if baseline:
        print(f"baseline PyYAML+libyaml load+dump: {statistics.median(baseline):.2f} s ({_spread(baseline)})")
    print(f"{'mesh':8} {'in-process SMI obj/s':>24} {'CLI s':>16} {'CLI/baseline':>14}")
    report: dict[str, object] = {"documents": len(docs), "smi_objects": count, "rounds": args.rounds,
                                 "baseline_s": baseline, "meshes": {}}
    for mesh in meshes:
        inproc = results[mesh]["inproc"]
        cli = results[mesh]["cli"]
        ratios = [c / b for c, b in zip(cli, baseline, strict=True)] if cli else []
        line = f"{mesh:8} {statistics.median(inproc):>12,.0f} ({min(inproc):,.0f}-{max(inproc):,.0f})"
        if cli:
            line += f" {statistics.median(cli):>7.2f} ({_spread(cli)}) {statistics.median(ratios):>6.2f}x"
            line += f" ({_spread(ratios)})"
        print(line)
        report["meshes"][mesh] = {"inproc_obj_per_s": inproc, "cli_s": cli, "cli_ratio": ratios}  # type: ignore[index]
    out = Path(__file__).resolve().parent / "results" / "translate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
