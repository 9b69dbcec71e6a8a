"""The measurements behind RSM's defaults (README, "Choices"), reproducible.

``loss``: RSM on two circles, full batch (3,000 points), RBF graph, for the paper's literal loss
(cut of Z + lambda ||Z^T Z / B - I||^2) and for the whitened cut, at several lambda and step
counts. ``graph``: the exact ratio-cut embedding (the k smallest eigenvectors of L = D - S, then
k-means) of an RBF graph at several bandwidths and of the symmetrised kNN graph, on digits and
on the first 4,000 Fashion-MNIST and MNIST training images, with a global bandwidth or local
scaling -- what any network trained on that cut can at best find.

  python benchmarks/rsm_choices.py loss
  python benchmarks/rsm_choices.py graph
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.cluster import KMeans

LOSS_RUNS = [  # (whiten_cut, penalty_weight, steps)
    (False, 1.0, 300), (False, 0.01, 400), (False, 0.01, 800),
    (True, 0.0, 400), (True, 0.01, 400), (True, 1.0, 400),
]


def loss_variants(seed: int, runs=None) -> None:
    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report
    from pydeepclust.models import RSM

    ds = load_dataset("circles")
    print("| cut | lambda | full-batch steps | NMI | fit (s) |\n|---|---|---|---|---|")
    for whiten_cut, lam, steps in (LOSS_RUNS if runs is None else [LOSS_RUNS[i] for i in runs]):
        start = time.perf_counter()
        model = RSM(2, hidden=(128, 128), kernel="rbf", whiten_cut=whiten_cut,
                    penalty_weight=lam, epochs=steps, batch_size=len(ds), lr=3e-3,
                    random_state=seed).fit(ds.X)
        nmi = cluster_report(ds.y, model.labels_)["nmi"]
        print(f"| {'whitened' if whiten_cut else 'literal'} | {lam:g} | {steps} | {nmi:.2f} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)


def spectral_nmi(S: np.ndarray, y: np.ndarray, k: int, normalized: bool, seed: int) -> float:
    from scipy.linalg import eigh

    from pydeepclust.metrics import cluster_report

    degree = S.sum(1)
    if normalized:  # Ncut: D^-1/2 S D^-1/2, rows of the top eigenvectors scaled back by D^-1/2
        inv_root = 1 / np.sqrt(degree)
        _, vecs = eigh(inv_root[:, None] * S * inv_root[None, :], subset_by_index=[len(S) - k, len(S) - 1])
        vecs = vecs * inv_root[:, None]
    else:  # ratio cut: the k smallest eigenvectors of L = D - S
        _, vecs = eigh(np.diag(degree) - S, subset_by_index=[0, k - 1])
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(vecs)
    return cluster_report(y, labels)["nmi"]


LOCAL_M = 7
LOCAL_FACTORS = (0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2)


def graph_variants(seed: int, names) -> None:
    import pydeepclust.ops as ops
    from pydeepclust.data import load_dataset

    sets = [load_dataset(name) for name in ("digits", "circles") if name in names]
    for name in (n for n in ("fashion-mnist", "mnist") if n in names):
        try:
            train = load_dataset(name, split="train")
            sets.append(train.subset(np.arange(4000), name=f"{name}[:4000]"))
        except FileNotFoundError as err:
            print(f"({name} skipped: {err})")
    print("| data | graph | cut | NMI |\n|---|---|---|---|")
    for ds in sets:
        X = torch.as_tensor(ds.X, dtype=torch.float64)
        k = len(np.unique(ds.y))
        knn_scale = float(ops.sample_bandwidths(X, 1.0, 1.0, scale="knn"))
        for factor in (1, 2, 3, 6):
            S = ops.rbf_affinity(X, factor * knn_scale).numpy()
            for normalized in (False, True):
                nmi = spectral_nmi(S, ds.y, k, normalized, seed)
                print(f"| {ds.name} | RBF, sigma = {factor} x kNN scale | "
                      f"{'Ncut' if normalized else 'ratio cut'} | {nmi:.2f} |", flush=True)
        dist = torch.cdist(X, X)
        dist.fill_diagonal_(float("inf"))
        # local scaling (Zelnik-Manor & Perona 2004): sigma_i sigma_j, sigma_i the distance to
        # the m-th neighbour, times RSM's random factor t
        local = dist.topk(LOCAL_M, largest=False).values[:, -1]
        for t in LOCAL_FACTORS:
            S = torch.exp(-dist.square() / (2 * t * local[:, None] * local[None, :])).numpy()
            for normalized in (False, True):
                nmi = spectral_nmi(S, ds.y, k, normalized, seed)
                print(f"| {ds.name} | RBF, local scaling (m = {LOCAL_M}) x {t} | "
                      f"{'Ncut' if normalized else 'ratio cut'} | {nmi:.2f} |", flush=True)
        for m in (5, 10, 20):
            idx = dist.topk(m, largest=False).indices
            A = torch.zeros_like(dist).scatter_(1, idx, 1.0)
            S = torch.maximum(A, A.T).numpy()
            print(f"| {ds.name} | kNN, m = {m} | ratio cut | "
                  f"{spectral_nmi(S, ds.y, k, False, seed):.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("loss", "graph"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sets", nargs="+", default=["digits", "circles", "fashion-mnist", "mnist"],
                   help="graph: the data sets (default: all four)")
    p.add_argument("--runs", type=int, nargs="+", default=None,
                   help="loss: indices into LOSS_RUNS (default: all)")
    args = p.parse_args()
    if args.what == "loss":
        loss_variants(args.seed, args.runs)
    else:
        graph_variants(args.seed, args.sets)


if __name__ == "__main__":
    main()
