"""ACe/DeC's centroid update: Sculley's mini-batch k-means (ours) against ClustPy's rule.

Our centroids are running means over every point they were given (Sculley 2010: step
1/count, the counts starting at the cluster sizes of the start), so on a large data set they
hardly move after the first epoch. The authors' library (ClustPy's ENRC module) keeps an
exponential average of the batch counts (``center_lr = 0.5``), steps by 1/(1 + that
average), so its centroids follow the moving embedding, and moves the one-cluster shared
centre halfway to each batch mean. This script runs one row of a runner table with each rule
(the same cached autoencoder, the same seed) and prints both NMIs:

  python benchmarks/acedec_centroid_rule.py --table acedec-mnist --row acedec/mnist-test --seed 0

Each rule's result is appended to ``--out-dir/<rule>.jsonl`` (a runner results file: a rule
already there is not run again).
"""

from __future__ import annotations

import argparse
import os

import torch

import pydeepclust.models.acedec as acedec
from pydeepclust import experiments

SCULLEY = acedec.minibatch_kmeans_update


@torch.no_grad()
def clustpy_update(centroids, counts, z, labels, center_lr: float = 0.5) -> None:
    """ClustPy ENRC's ``update_center``, in place (``counts`` holds the averaged counts)."""
    if len(centroids) == 1:
        centroids.mul_(0.5).add_(0.5 * z.mean(dim=0).to(centroids.dtype))
        return
    batch_counts = torch.bincount(labels, minlength=len(centroids)).to(counts.dtype)
    sums = torch.zeros_like(centroids).index_add_(0, labels, z.to(centroids.dtype))
    present = batch_counts > 0
    counts[present] = center_lr * batch_counts[present] + (1 - center_lr) * counts[present]
    step = 1.0 / (1 + counts[present, None])
    centroids[present] = ((1 - step) * centroids[present]
                          + step * sums[present] / batch_counts[present, None])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="acedec-mnist")
    p.add_argument("--row", default="acedec/mnist-test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", default="runs/centroid_rule")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    table = experiments.TABLES.get(args.table)
    if table is None:
        p.error(f"--table: unknown table {args.table!r}; known: {sorted(experiments.TABLES)}")
    row = next((r for r in table.rows if r.name == args.row), None)
    if row is None:
        p.error(f"table {args.table!r} has no row {args.row!r}")
    os.makedirs(args.out_dir, exist_ok=True)
    for rule, update in (("sculley", SCULLEY), ("clustpy", clustpy_update)):
        acedec.minibatch_kmeans_update = update  # the module's callers look it up at run time
        out = os.path.join(args.out_dir, f"{rule}.jsonl")
        experiments.run_table(table, rows=[row], seeds=[args.seed], out=out)
        result = [r for r in experiments.read_rows(out)
                  if r["row"] == row.name and r["seed"] == args.seed][-1]
        print(f"{rule}: NMI {result['train']['nmi']:.3f} ({result['fit_s']:.0f} s)", flush=True)
    acedec.minibatch_kmeans_update = SCULLEY


if __name__ == "__main__":
    main()
