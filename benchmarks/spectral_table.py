"""The RSM / KSC issue's results table: RSM, classic KSC, spectral clustering and k-means on
two circles, blobs, digits and Fashion-MNIST, mean +- sd of NMI / ARI / ACC over seeds, with
wall times. Every row is a run of the command line (``python -m pydeepclust fit ...``), so the
README's commands are exactly what was measured; each finished run is appended to ``--out``
(JSON lines) and ``--report`` prints the markdown table.

  python benchmarks/spectral_table.py --only rsm:circles ksc --seeds 0 1 2
  python benchmarks/spectral_table.py --report runs/spectral_table.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict

import numpy as np

from results_file import add_results_options, append_row, read_rows

# (model, data) -> extra command-line options
RUNS = {
    ("rsm", "circles"): "--hidden 128,128 --batch-size 4096 --epochs 400 --lr 3e-3",
    ("rsm", "digits"): "--hidden 256,256 --batch-size 2048 --epochs 300",
    ("rsm", "fashion-mnist"): "--test --hidden 512,512,256 --batch-size 16384 --epochs 80",
    ("ksc", "blobs"): "",
    ("ksc", "circles"): "",
    ("ksc", "digits"): "",
    ("spectral", "circles"): "",
    ("spectral", "digits"): "",
    ("kmeans", "circles"): "--n-init 10",
    ("kmeans", "digits"): "--n-init 10",
    ("kmeans", "fashion-mnist"): "--test --n-init 10",
}


def command(model: str, data: str, seed: int, out_dir: str, device: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "pydeepclust", "fit", model, "--data", data, "--seed", str(seed),
           "--quiet", "--no-pictures", "--out", out_dir, *RUNS[(model, data)].split()]
    return cmd + (["--device", device] if device else [])


def run(selected, seeds, out: str, device: str | None, label: str | None) -> None:
    for (model, data) in selected:
        for seed in seeds:
            out_dir = os.path.join("runs", "spectral_table", f"{model}-{data}-{seed}")
            cmd = command(model, data, seed, out_dir, device)
            print(" ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True)
            with open(os.path.join(out_dir, "metrics.json")) as f:
                metrics = json.load(f)
            row = {"model": model, "data": data, "seed": seed,
                   "device": label or device or "default",
                   "fit_s": metrics["fit_seconds"], "train": metrics["train"],
                   "test": metrics.get("test"), "options": RUNS[(model, data)]}
            append_row(out, row)


def _cell(values) -> str:
    values = np.asarray(values)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {sd:.3f}"


def report(path: str) -> None:
    by = defaultdict(list)
    for r in read_rows(path):
        by[(r["model"], r["data"], r["device"], r["options"])].append(r)
    option_sets = defaultdict(set)  # (model, data) -> the option strings it was run with
    for model, data, _, options in by:
        option_sets[(model, data)].add(options)
    print("| model | data | seeds | NMI | ARI | ACC | test NMI | fit time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, data, device, options), rows in by.items():
        notes = [] if device == "default" else [device]
        if len(option_sets[(model, data)]) > 1 and "--epochs" in options.split():
            words = options.split()
            notes.append(f"{words[words.index('--epochs') + 1]} epochs")
        where = f" ({', '.join(notes)})" if notes else ""
        test = [r["test"]["nmi"] for r in rows if r.get("test")]
        print(f"| {model}{where} | {data} | {len(rows)} | "
              + " | ".join(_cell([r["train"][m] for r in rows]) for m in ("nmi", "ari", "acc"))
              + f" | {_cell(test) if test else '—'} | {np.median([r['fit_s'] for r in rows]):.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", default=None,
                   help="models or model:data pairs to run (default: every row)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default=None, help="--device of the runs (default: the CLI's)")
    p.add_argument("--label", default=None,
                   help="device label in the table (e.g. 'cuda, H100'; default: --device)")
    add_results_options(p, "runs/spectral_table.jsonl")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    selected = [key for key in RUNS if args.only is None
                or key[0] in args.only or f"{key[0]}:{key[1]}" in args.only]
    if not selected:
        p.error(f"--only {args.only} matches none of {[':'.join(k) for k in RUNS]}")
    run(selected, args.seeds, args.out, args.device, args.label)


if __name__ == "__main__":
    main()
