"""The ACe/DeC paper's Table 1 on this machine: NMI of ACe/DeC, DCN (lambda 0.1, 1, 10),
AE + k-means, k-means and Sub-K-Means, mean +- sd over seeds, with wall times.

Per seed one autoencoder is pretrained and handed to every AE-based method (as the paper
does); with ``--autoencoders DIR`` it is kept there and reused by later runs of the same
data, seed and pretraining settings (so a new clustering setting costs no pretraining; such
rows say ``"pretrain_cached": true`` and repeat the original pretraining time). Every
finished run is appended to ``--out`` (JSON lines), so a cut-off run keeps what it measured;
``--report`` prints the markdown table from that file.

  python benchmarks/acedec_table.py --data synth25 --seeds 0 1 2 --out runs/table1.jsonl
  python benchmarks/acedec_table.py --report runs/table1.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections import defaultdict

import numpy as np

from results_file import add_results_options, append_row, read_rows

# Per data set: the autoencoder (the paper: linear d = D for SYNTH-25, D-500-500-2000-10 else)
SETTINGS = {
    "synth25": dict(latent_dim=27, hidden=(), pretrain_epochs=20, epochs=20),
    "digits": dict(latent_dim=10, hidden=(500, 500, 2000), pretrain_epochs=100, epochs=50),
    "fashion-mnist": dict(latent_dim=10, hidden=(500, 500, 2000), pretrain_epochs=10, epochs=5),
}
ALL_METHODS = ("acedec", "dcn0.1", "dcn1", "dcn10", "ae-kmeans", "kmeans", "subkmeans")


def load_or_pretrain_autoencoder(X, seed: int, cfg: dict, cache_path: str | None):
    """(autoencoder, pretraining seconds, whether it was read from ``cache_path``)."""
    import torch

    from pydeepclust.models import Autoencoder, pretrain_autoencoder
    from pydeepclust.models.base import atomic_save

    ae_args = dict(latent_dim=cfg["latent_dim"], hidden=cfg["hidden"])
    if cache_path and os.path.exists(cache_path):
        saved = torch.load(cache_path, map_location="cpu", weights_only=True)
        ae = Autoencoder(tuple(X.shape[1:]), **ae_args)
        ae.load_state_dict(saved["state_dict"])
        return ae.eval(), saved["pretrain_s"], True
    start = time.perf_counter()
    ae = pretrain_autoencoder(X, epochs=cfg["pretrain_epochs"], random_state=seed,
                              standardize=cfg.get("standardize", False),
                              augmentation_invariance=cfg.get("augmentation_invariance", False),
                              **ae_args)
    pretrain_s = round(time.perf_counter() - start, 1)
    if cache_path:
        atomic_save({"state_dict": ae.state_dict(), "pretrain_s": pretrain_s}, cache_path)
    return ae, pretrain_s, False


# Bump when pretraining itself changes (network init, optimiser, batching): older files in an
# --autoencoders folder are then left unused instead of standing in for the new networks.
PRETRAINING_VERSION = 1


def cache_name(data: str, split: str, seed: int, cfg: dict, X) -> str:
    """One file per data set (and its content), split, seed and the settings pretraining
    depends on; batch size and learning rate are pretrain_autoencoder's defaults here."""
    keys = ("latent_dim", "hidden", "pretrain_epochs", "standardize", "augmentation_invariance")
    key = [PRETRAINING_VERSION, list(X.shape), [cfg.get(k) for k in keys]]
    digest = hashlib.sha1(json.dumps(key).encode())
    digest.update(memoryview(np.ascontiguousarray(X)))  # no copy of the data
    return f"{data}_{split}_s{seed}_{digest.hexdigest()[:10]}.pt"


def run(data: str, seeds, methods, out: str, overrides: dict, split: str = "all",
        autoencoder_dir: str | None = None) -> None:
    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report
    from pydeepclust.models import DCN, ACeDeC, AEKMeans, KMeansBaseline, SubKMeans

    cfg = {**SETTINGS[data], **overrides}
    for seed in seeds:
        ds = load_dataset(data, split=split, random_state=seed)
        augment = cfg.get("augmentation_invariance", False)
        X, y, k = ds.X, ds.y, ds.n_classes
        X_deep = ds.images() if augment else X  # augmentation needs the images' shape
        ae_args = dict(latent_dim=cfg["latent_dim"], hidden=cfg["hidden"])
        ae, pretrain_s, cached = None, 0.0, False
        if any(m not in ("kmeans", "subkmeans") for m in methods):
            cache_path = None
            if autoencoder_dir:
                os.makedirs(autoencoder_dir, exist_ok=True)
                cache_path = os.path.join(autoencoder_dir,
                                          cache_name(data, split, seed, cfg, X_deep))
            ae, pretrain_s, cached = load_or_pretrain_autoencoder(X_deep, seed, cfg, cache_path)
        for method in methods:
            joint = dict(autoencoder=ae, epochs=cfg["epochs"], random_state=seed,
                         final_recluster=cfg.get("final_recluster", False),
                         augmentation_invariance=augment, **ae_args)
            model = {
                "acedec": lambda: ACeDeC(k, **joint),
                "ae-kmeans": lambda: AEKMeans(k, autoencoder=ae, random_state=seed, **ae_args),
                "kmeans": lambda: KMeansBaseline(k, random_state=seed),
                "subkmeans": lambda: SubKMeans(k, random_state=seed),
            }.get(method) or (lambda: DCN(k, lam=float(method[3:]), **joint))
            start = time.perf_counter()
            est = model().fit(X if method in ("kmeans", "subkmeans") else X_deep)
            wall = time.perf_counter() - start
            row = {"data": ds.name, "method": method, "seed": seed, "fit_s": round(wall, 1),
                   "pretrain_s": round(pretrain_s, 1) if ae is not None and method not in
                   ("kmeans", "subkmeans") else 0.0, "pretrain_cached": cached,
                   **cluster_report(y, est.labels_),
                   "settings": {k_: v for k_, v in cfg.items()}}
            if method == "acedec":
                row["n_cluster_dims"] = len(est.cluster_dims_)
                row["init"] = est.init
            append_row(out, row)


def report(path: str) -> None:
    rows = read_rows(path)
    by = defaultdict(list)
    for r in rows:  # a column per data set and schedule: runs of other settings stay apart
        cfg = r["settings"]
        r["column"] = (f"{r['data']} ({cfg['pretrain_epochs']}+{cfg['epochs']} epochs"
                       f"{', standardized' if cfg.get('standardize') else ''}"
                       f"{', reclustered' if cfg.get('final_recluster') else ''}"
                       f"{', augmented' if cfg.get('augmentation_invariance') else ''})")
        by[(r["method"], r["column"])].append(r)
    datas = list(dict.fromkeys(r["column"] for r in rows))
    print("| method | " + " | ".join(datas) + " |")
    print("|---" * (len(datas) + 1) + "|")
    for method in ALL_METHODS:
        cells = []
        for data in datas:
            rs = by.get((method, data))
            if not rs:
                cells.append("—")
                continue
            nmi = np.array([r["nmi"] for r in rs])
            wall = np.mean([r["fit_s"] + r["pretrain_s"] for r in rs])
            cells.append(f"{nmi.mean():.2f} ± {nmi.std(ddof=1) if len(rs) > 1 else 0:.2f} "
                         f"(n={len(rs)}, {wall:.0f} s)")
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=sorted(SETTINGS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    p.add_argument("--split", default="all", choices=("all", "train", "test"),
                   help="e.g. test: the 10,000 Fashion-MNIST test images only")
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--standardize", action="store_true",
                   help="z-score the autoencoders' input (pretrain_autoencoder(standardize=True))")
    p.add_argument("--final-recluster", action="store_true",
                   help="ACe/DeC and DCN labels from k-means on the final embedding")
    p.add_argument("--augment", action="store_true",
                   help="augmentation invariance (the paper's +Aug rows): augmented pretraining, "
                        "and ACe/DeC and DCN pull augmented images to their originals' centroids")
    p.add_argument("--autoencoders", metavar="DIR",
                   help="keep each pretrained autoencoder in DIR and reuse it when present")
    add_results_options(p, "runs/acedec_table.jsonl")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    overrides = {k: v for k, v in (("pretrain_epochs", args.pretrain_epochs),
                                   ("epochs", args.epochs)) if v is not None}
    for flag, key in (("standardize", "standardize"), ("final_recluster", "final_recluster"),
                      ("augment", "augmentation_invariance")):
        if getattr(args, flag):
            overrides[key] = True
    run(args.data, args.seeds, args.methods, args.out, overrides, args.split, args.autoencoders)


if __name__ == "__main__":
    main()
