"""ACe/DeC training time and NMI against ClustPy's ACeDeC, measured side by side.

The data is any of pydeepclust's data sets (``--data``, default scikit-learn's digits; e.g.
``mnist:test`` for the ACe/DeC paper's MNIST-Test), as [0, 1] pixels, the same array for both.

Both: the paper's D-500-500-2000-10 autoencoder, batch 256, 20 pretraining + 20 clustering
epochs (``--pretrain-epochs``/``--epochs``), each library's default initialisation, timed over
the whole ``fit`` in a fresh child process with a fixed number of threads. ``--impl clustpy``
runs one library alone and ``--seeds`` picks the seeds, so seeds can run side by side. ClustPy is not a dependency: install it (and the
torchvision and pandas it imports) somewhere and pass that folder, e.g.

  pip install --no-deps --no-build-isolation --target /tmp/cp_site clustpy
  pip install --no-deps --target /tmp/cp_site torchvision==0.29.1   # matching your torch
  pip install --target /tmp/cp_site pandas
  python benchmarks/acedec_vs_clustpy.py --clustpy-path /tmp/cp_site --threads 1 2 --repeats 3
  python benchmarks/acedec_vs_clustpy.py --clustpy-path /tmp/cp_site --data mnist:test \
      --pretrain-epochs 100 --epochs 50 --impl clustpy --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from pydeepclust.data import parse_dataset_name

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from sklearn.metrics import normalized_mutual_info_score as nmi
from pydeepclust.data import load_dataset
data = load_dataset(sys.argv[6])
X, y = data.X, data.y
seed, pretrain_epochs, epochs = map(int, sys.argv[3:6])
if sys.argv[1] == "pydeepclust":
    from pydeepclust.models import ACeDeC
    model = ACeDeC(data.n_classes, latent_dim=10, pretrain_epochs=pretrain_epochs, epochs=epochs,
                   batch_size=256, random_state=seed, device="cpu")
else:
    from clustpy.deep import ACeDeC
    model = ACeDeC(data.n_classes, batch_size=256, pretrain_epochs=pretrain_epochs, clustering_epochs=epochs,
                   embedding_size=10, device="cpu", random_state=seed)
start = time.perf_counter()
model.fit(X)
print(json.dumps({"seconds": time.perf_counter() - start, "nmi": nmi(y, model.labels_)}))
"""


def run_child(impl: str, threads: int, seed: int, clustpy_path: str | None,
              pretrain_epochs: int, epochs: int, data: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if impl == "clustpy":
        # ClustPy's folder first; pydeepclust (for the data) stays importable after it
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [clustpy_path,
                                                          os.environ.get("PYTHONPATH")]))
    argv = [impl, threads, seed, pretrain_epochs, epochs, data]
    out = subprocess.run([sys.executable, "-c", CHILD, *map(str, argv)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clustpy-path", help="folder holding clustpy and its imports")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=3, help="runs per implementation (seeds 0..)")
    p.add_argument("--seeds", type=int, nargs="+", help="these seeds instead of 0..repeats-1")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=20, help="clustering epochs")
    p.add_argument("--data", default="digits", help="a pydeepclust data set (default: digits)")
    p.add_argument("--impl", choices=("both", "pydeepclust", "clustpy"), default="both")
    args = p.parse_args()
    impls = ("pydeepclust", "clustpy") if args.impl == "both" else (args.impl,)
    if "clustpy" in impls and not args.clustpy_path:
        p.error("--clustpy-path is needed to run ClustPy (or pass --impl pydeepclust)")
    try:  # here, not in a child whose error would only show as a failed process
        parse_dataset_name(args.data)
    except ValueError as err:
        p.error(f"--data: {err}")
    seeds = args.seeds if args.seeds else range(args.repeats)
    names = {"pydeepclust": "pydeepclust", "clustpy": "ClustPy"}
    print(f"{args.data}, {args.pretrain_epochs} + {args.epochs} epochs; NMI per seed\n")
    print("| threads | " + " | ".join(f"{names[i]} median (s)" for i in impls)
          + (" | ratio" if len(impls) == 2 else "")
          + "".join(f" | NMI {names[i]}" for i in impls) + " |")
    print("|---" * (1 + 2 * len(impls) + (len(impls) == 2)) + "|")
    for threads in args.threads:
        runs = {impl: [] for impl in impls}
        for seed in seeds:  # interleaved, so load changes hit both alike
            for impl in runs:
                runs[impl].append(run_child(impl, threads, seed, args.clustpy_path,
                                            args.pretrain_epochs, args.epochs, args.data))
                print(f"# {impl} seed {seed}: {json.dumps(runs[impl][-1])}", file=sys.stderr,
                      flush=True)
        t = {impl: statistics.median(r["seconds"] for r in rs) for impl, rs in runs.items()}
        nmis = {impl: " / ".join(f"{r['nmi']:.3f}" for r in rs) for impl, rs in runs.items()}
        ratio = (f" | {t['clustpy'] / t['pydeepclust']:.1f}x" if len(impls) == 2 else "")
        print(f"| {threads} | " + " | ".join(f"{t[i]:.1f}" for i in impls) + ratio
              + "".join(f" | {nmis[i]}" for i in impls) + " |", flush=True)


if __name__ == "__main__":
    main()
