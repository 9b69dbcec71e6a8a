"""ACe/DeC training time against ClustPy's ACeDeC, measured side by side on scikit-learn's digits.

Both: the paper's D-500-500-2000-10 autoencoder, batch 256, 20 pretraining + 20 clustering
epochs (``--pretrain-epochs``/``--epochs``), each library's default initialisation, timed over the whole ``fit`` in a fresh child
process with a fixed number of threads. ClustPy is not a dependency: install it (and the
torchvision and pandas it imports) somewhere and pass that folder, e.g.

  pip install --no-deps --no-build-isolation --target /tmp/cp_site clustpy
  pip install --no-deps --target /tmp/cp_site torchvision==0.29.1   # matching your torch
  pip install --target /tmp/cp_site pandas
  python benchmarks/acedec_vs_clustpy.py --clustpy-path /tmp/cp_site --threads 1 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score as nmi
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
seed, pretrain_epochs, epochs = map(int, sys.argv[3:6])
if sys.argv[1] == "pydeepclust":
    from pydeepclust.models import ACeDeC
    model = ACeDeC(10, latent_dim=10, pretrain_epochs=pretrain_epochs, epochs=epochs,
                   batch_size=256, random_state=seed, device="cpu")
else:
    from clustpy.deep import ACeDeC
    model = ACeDeC(10, batch_size=256, pretrain_epochs=pretrain_epochs, clustering_epochs=epochs,
                   embedding_size=10, device="cpu", random_state=seed)
start = time.perf_counter()
model.fit(X)
print(json.dumps({"seconds": time.perf_counter() - start, "nmi": nmi(y, model.labels_)}))
"""


def run_child(impl: str, threads: int, seed: int, clustpy_path: str | None,
              pretrain_epochs: int, epochs: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if impl == "clustpy":
        env["PYTHONPATH"] = clustpy_path
    argv = [impl, threads, seed, pretrain_epochs, epochs]
    out = subprocess.run([sys.executable, "-c", CHILD, *map(str, argv)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clustpy-path", required=True, help="folder holding clustpy and its imports")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=3, help="runs per implementation (seeds 0..)")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=20, help="clustering epochs")
    args = p.parse_args()
    print(f"{args.pretrain_epochs} + {args.epochs} epochs; NMI per seed\n")
    print("| threads | pydeepclust median (s) | ClustPy median (s) | ratio | NMI pydeepclust | NMI ClustPy |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        runs = {impl: [] for impl in ("pydeepclust", "clustpy")}
        for seed in range(args.repeats):  # interleaved, so load changes hit both alike
            for impl in runs:
                runs[impl].append(run_child(impl, threads, seed, args.clustpy_path,
                                            args.pretrain_epochs, args.epochs))
        t = {impl: statistics.median(r["seconds"] for r in rs) for impl, rs in runs.items()}
        nmis = {impl: " / ".join(f"{r['nmi']:.3f}" for r in rs) for impl, rs in runs.items()}
        print(f"| {threads} | {t['pydeepclust']:.1f} | {t['clustpy']:.1f} | "
              f"{t['clustpy'] / t['pydeepclust']:.1f}x | {nmis['pydeepclust']} | "
              f"{nmis['clustpy']} |", flush=True)


if __name__ == "__main__":
    main()
