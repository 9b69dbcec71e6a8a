"""Each estimator with its defaults (only n_clusters and random_state given) on the canonical
small cases, over seeds; prints a markdown table (seed x data set x NMI x wall time).

    OMP_NUM_THREADS=1 python benchmarks/defaults_check.py                 # every case, seeds 0-4
    OMP_NUM_THREADS=1 python benchmarks/defaults_check.py --cases rsm:circles rsm:digits --seeds 0 1 2

Cases (data as ``python -m pydeepclust fit`` gives it to the model: image sets as (n, H, W)):
RSM on two circles (3,000 points, noise 0.05, factor 0.5) and on scikit-learn's digits; GenKSC
on the KSC blobs and on digits 0/1/2; ACe/DeC on SYNTH-25 and on digits. ``--set key=value``
overrides a constructor argument (a Python literal), e.g. to time a paper setting.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time

import numpy as np

CASES = {
    "rsm:circles": ("RSM", "circles"),
    "rsm:digits": ("RSM", "digits"),
    "genksc:blobs": ("GenKSC", "blobs"),
    "genksc:digits012": ("GenKSC", "digits012"),
    "acedec:synth25": ("ACeDeC", "synth25"),
    "acedec:digits": ("ACeDeC", "digits"),
}


def run(case: str, seed: int, overrides: dict) -> dict:
    import torch

    from pydeepclust import models
    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    name, data = CASES[case]
    ds = load_dataset(data)
    X = ds.images() if ds.image_shape is not None else ds.X  # as the CLI's model_input
    params = dict(n_clusters=ds.n_classes, random_state=seed, **overrides)
    if "verbose" in models.__dict__[name]().get_params():
        params.setdefault("verbose", False)  # a progress bar only; no effect on the result
    model = getattr(models, name)(**params)
    start = time.perf_counter()
    model.fit(X)
    wall = time.perf_counter() - start
    report = cluster_report(ds.y, model.labels_)
    return {"case": case, "seed": seed, "n": len(ds), "nmi": report["nmi"], "wall_s": wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="constructor overrides (Python literals), for every case")
    args = p.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = ast.literal_eval(value)
    print("| model | data | n | seed | NMI | wall (s) |")
    print("|---|---|---|---|---|---|")
    rows = []
    for case in args.cases:
        for seed in args.seeds:
            r = run(case, seed, overrides)
            rows.append(r)
            model, data = case.split(":")
            print(f"| {model} | {data} | {r['n']} | {seed} | {r['nmi']:.3f} | {r['wall_s']:.1f} |",
                  flush=True)
    print()
    print("| model | data | seeds | NMI mean ± sd (min) | median wall (s) |")
    print("|---|---|---|---|---|")
    for case in args.cases:
        sel = [r for r in rows if r["case"] == case]
        nmis = np.array([r["nmi"] for r in sel])
        model, data = case.split(":")
        print(f"| {model} | {data} | {len(sel)} | {nmis.mean():.3f} ± {nmis.std():.3f} "
              f"({nmis.min():.3f}) | {np.median([r['wall_s'] for r in sel]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
