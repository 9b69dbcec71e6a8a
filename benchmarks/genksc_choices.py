"""GenKSC's settings against its clustering quality (README, GenKSC results).

Each variant fits GenKSC once (seeded) and reports the NMI of its labels (nearest simplex code
by cosine, the method's own assignment) and, as a diagnosis, of k-means on its scores (the first
code_width(k) and all s): when k-means on the scores beats the codes, the cluster loss has not
aligned the clusters with the codes; when both are low, the features themselves do not separate
the classes. ``final_loss`` holds the terms of eq. (3) after training on (up to) the first 2,048
training samples, to see whether the objective, like AMS, could pick the better of several runs.

One JSON line per run goes to ``--out``; ``--report`` prints the table.

  python benchmarks/genksc_choices.py --data fashion-mnist --variant paper --epochs 60 --warmup 20
  python benchmarks/genksc_choices.py --data digits012 --variant noalign --seed 1
  python benchmarks/genksc_choices.py --report runs/genksc_choices.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

from results_file import add_results_options, append_row, read_rows

VARIANTS = {  # on top of the CLI preset of the data set (pydeepclust.models.genksc.CLI_PRESETS)
    "paper": dict(),
    "rec0.01": dict(eta_rec=0.01),
    "cl0.08": dict(eta_cl=0.08),
    "lr3e-4": dict(lr=3e-4, lr_stiefel=3e-4),
    "noalign": dict(align_codes=False),
}


def run(data: str, variant: str, seed: int, out: str, overrides: dict, split: str,
        label: str | None = None) -> None:
    import numpy as np
    import torch
    from sklearn.cluster import KMeans

    import pydeepclust.ops as ops
    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report
    from pydeepclust.models import GenKSC
    from pydeepclust.models.genksc import CLI_PRESETS

    ds = load_dataset(data, split=split)
    X = ds.images() if ds.image_shape else ds.X
    k = ds.n_classes
    preset = "image28" if ds.image_shape == (28, 28) else "small"
    cfg = {**CLI_PRESETS[preset], **VARIANTS[variant], **overrides}
    s = cfg.pop("n_components", 40 if preset == "image28" and k == 10 else max(10, ops.code_width(k)))
    start = time.perf_counter()
    model = GenKSC(n_clusters=k, n_components=s, random_state=seed, verbose=False, **cfg).fit(X)
    seconds = time.perf_counter() - start
    scores = np.asarray(model.transform(X))
    model.encoder_.eval()
    model.decoder_.eval()
    with torch.no_grad():
        final_loss = {name: float(value) for name, value in
                      model.losses(torch.as_tensor(X[:2048]).to(model._device())).items()}
    m = ops.code_width(k)
    row = {"data": ds.name, "variant": label or variant, "seed": seed, "seconds": round(seconds, 1),
           **cluster_report(ds.y, model.labels_),
           "ams": model.average_membership_strength(X), "final_loss": final_loss,
           "config": {**cfg, "n_components": s}}
    for name, cols in (("kmeans_codes_nmi", scores[:, :m]), ("kmeans_scores_nmi", scores)):
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(cols)
        row[name] = cluster_report(ds.y, labels)["nmi"]
    append_row(out, row)


def report(path: str) -> None:
    import numpy as np

    rows = read_rows(path)
    groups: dict[tuple, list] = {}
    for r in rows:
        cfg = r["config"]
        groups.setdefault((r["data"], r["variant"], cfg["epochs"], cfg["warmup_epochs"]), []).append(r)
    print("| data | variant | epochs (warm-up) | NMI | k-means on codes / all scores | seeds | "
          "seconds |\n|---|---|---|---|---|---|---|")
    for (data, variant, epochs, warmup), rs in groups.items():
        nmi = np.array([r["nmi"] for r in rs])
        sd = nmi.std(ddof=1) if len(nmi) > 1 else 0.0
        km = np.mean([r["kmeans_codes_nmi"] for r in rs]), np.mean([r["kmeans_scores_nmi"] for r in rs])
        print(f"| {data} | {variant} | {epochs} ({warmup}) | {nmi.mean():.3f} ± {sd:.3f} | "
              f"{km[0]:.3f} / {km[1]:.3f} | {len(rs)} | "
              f"{np.median([r['seconds'] for r in rs]):.0f} |")
    selection(groups)


def selection(groups) -> None:
    """Could a run's own numbers pick the better of several seeds? Per group with final loss
    terms: Spearman correlation of each with NMI, and the NMI of the run it would pick (lowest
    loss, highest AMS)."""
    import numpy as np
    from scipy.stats import spearmanr

    lines = []
    for (data, variant, _, _), rs in groups.items():
        rs = [r for r in rs if "final_loss" in r]
        if len(rs) < 3:
            continue
        nmi = np.array([r["nmi"] for r in rs])
        criteria = {f"{term} loss": np.array([r["final_loss"][term] for r in rs])
                    for term in rs[0]["final_loss"]}
        criteria["-AMS"] = -np.array([r["ams"] for r in rs])
        cells = [f"{name}: ρ = {spearmanr(v, nmi)[0]:+.2f}, picks {nmi[v.argmin()]:.3f}"
                 for name, v in criteria.items()]
        lines.append(f"| {data} | {variant} | {len(rs)} | {nmi.max():.3f} | {'; '.join(cells)} |")
    if lines:
        print("\n| data | variant | seeds | best NMI | selection by the run's own numbers |\n"
              "|---|---|---|---|---|")
        print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits012")
    p.add_argument("--split", default="all", choices=["all", "train", "test"])
    p.add_argument("--variant", choices=sorted(VARIANTS), default="paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--set", nargs="*", default=[], metavar="PARAM=VALUE",
                   help="further GenKSC parameters, values as JSON (e.g. eta_cl=3 hidden=[512,512])")
    p.add_argument("--label", help="name of the run in the report (default: the variant)")
    add_results_options(p, "runs/genksc_choices.jsonl")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    overrides = {key: value for key, value in (("epochs", args.epochs),
                                               ("warmup_epochs", args.warmup)) if value is not None}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    run(args.data, args.variant, args.seed, args.out, overrides, args.split, args.label)


if __name__ == "__main__":
    main()
