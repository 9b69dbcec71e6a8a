"""How the autoencoder's pretraining decides AE + k-means, DCN and ACe/DeC (README, ACe/DeC).

The ACe/DeC paper's AE + k-means gets 0.59 NMI on Fashion-MNIST; a plain D-500-500-2000-10
autoencoder trained end to end gets less here. Each variant pretrains one autoencoder (seeded)
and clusters its embedding with k-means, then trains ACe/DeC and DCN (lambda 0.1) from it.
Variants change one thing at a time: the input scaling ([0, 1] pixels or z-scored by the global mean and std), denoising
(``corruption``, DEC's stacked denoising AE), the number of pretraining epochs.

One JSON line per finished stage goes to ``--out``, so a cut-off run keeps what it measured.

  python benchmarks/ae_choices.py --data fashion-mnist --variant base --seed 0
  python benchmarks/ae_choices.py --report runs/ae_choices.jsonl
"""

from __future__ import annotations

import argparse
import time

from results_file import add_results_options, append_row, read_rows

VARIANTS = {
    "base": dict(),
    "zscore": dict(zscore=True),
    "dae": dict(corruption=0.2),
    "zscore-dae": dict(zscore=True, corruption=0.2),
    "long": dict(pretrain_epochs=200),
}
DEFAULTS = dict(zscore=False, corruption=0.0, pretrain_epochs=100,
                epochs=50, lr=1e-3, batch_size=256)


def run(data: str, variant: str, seed: int, out: str, overrides: dict, methods,
        split: str = "all") -> None:
    import torch

    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report
    from pydeepclust.models import DCN, ACeDeC, AEKMeans, Autoencoder
    from pydeepclust.models.autoencoder import train_autoencoder

    cfg = {**DEFAULTS, **VARIANTS[variant], **overrides}
    ds = load_dataset(data, split=split)
    X = torch.as_tensor(ds.X, dtype=torch.float32)
    if cfg["zscore"]:
        X = (X - X.mean()) / X.std()
    k = ds.n_classes
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def emit(method, labels, seconds, **extra):
        row = {"data": ds.name, "variant": variant, "method": method, "seed": seed,
               "seconds": round(seconds, 1), **cluster_report(ds.y, labels), **extra,
               "config": cfg}
        append_row(out, row)

    torch.manual_seed(seed)
    ae = Autoencoder(tuple(X.shape[1:]), 10, "mlp", (500, 500, 2000))
    start = time.perf_counter()
    train_autoencoder(ae, X, cfg["pretrain_epochs"], cfg["batch_size"], cfg["lr"],
                      torch.Generator().manual_seed(seed), device, corruption=cfg["corruption"])
    pretrain_s = time.perf_counter() - start
    common = dict(autoencoder=ae.cpu(), random_state=seed, device=str(device))
    start = time.perf_counter()
    emit("ae-kmeans", AEKMeans(k, **common).fit(X).labels_, time.perf_counter() - start,
         pretrain_s=round(pretrain_s, 1))
    for method in methods:
        start = time.perf_counter()
        model = (ACeDeC(k, epochs=cfg["epochs"], **common) if method == "acedec"
                 else DCN(k, lam=float(method[3:]), epochs=cfg["epochs"], **common))
        model.fit(X)
        extra = {"n_cluster_dims": len(model.cluster_dims_)} if method == "acedec" else {}
        emit(method, model.labels_, time.perf_counter() - start, **extra)
        # the same fit with final_recluster=True: k-means on its final embedding
        with torch.no_grad():
            Z = model._embed(model._check_X(X))
            model._recluster(Z)
            emit(method + "+recluster", model._assign(Z).cpu().numpy(),
                 time.perf_counter() - start, **extra)


def report(path: str) -> None:
    import numpy as np

    # a run repeated with the same seed is deterministic: count it once (the last line)
    rows = {(r["data"], r["variant"], r["method"], r["seed"]): r
            for r in read_rows(path)}
    groups: dict[tuple, list] = {}
    for r in rows.values():
        groups.setdefault((r["data"], r["variant"], r["method"]), []).append(r)
    print("| data | variant | method | NMI | seeds | seconds |\n|---|---|---|---|---|---|")
    for (data, variant, method), rs in groups.items():
        nmi = np.array([r["nmi"] for r in rs])
        sd = nmi.std(ddof=1) if len(nmi) > 1 else 0.0
        print(f"| {data} | {variant} | {method} | {nmi.mean():.3f} ± {sd:.3f} | "
              f"{len(rs)} | {np.median([r['seconds'] for r in rs]):.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--split", default="all", choices=["all", "train", "test"])
    p.add_argument("--variant", choices=sorted(VARIANTS), default="base")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument("--epochs", type=int, help="clustering epochs of ACe/DeC and DCN")
    p.add_argument("--methods", nargs="*", default=["acedec", "dcn0.1"],
                   help="after AE + k-means: acedec and/or dcn<lambda>")
    add_results_options(p, "runs/ae_choices.jsonl")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    overrides = {key: value for key, value in (("pretrain_epochs", args.pretrain_epochs),
                                               ("epochs", args.epochs)) if value is not None}
    run(args.data, args.variant, args.seed, args.out, overrides, args.methods, args.split)


if __name__ == "__main__":
    main()
