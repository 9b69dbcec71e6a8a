"""SYNTH-25 through linear autoencoders of growing distortion: where does ACe/DeC beat DCN?

The paper's SYNTH-25 row (ACe/DeC 0.99, DCN and AE + k-means low) depends on the linear
autoencoder (d = D = 27) handing the clusterers a distorted embedding. This runs AE + k-means,
ACe/DeC's start alone (Sub-K-Means on the embedding, optimal beta: ``epochs=0``), DCN
(lambda 0.1 and 1) and ACe/DeC on networks that reconstruct perfectly but scale the data's
directions unequally: encoder ``U diag(s) W^T`` with random orthogonal U, W and singular values
s log-spaced over ``[c^-1/2, c^1/2]`` (condition number c; the decoder is its inverse; c = 1 is
our default isometric start), and on the paper's condition, a linear AE from torch's default
init pretrained 20 epochs ("default"). With ``--clustpy-path`` the authors' library (ClustPy's
ACeDeC, DCN and AE + k-means) runs in that condition too, on its own linear network made the
same way (``FeedforwardAutoencoder([27, 27])``, default init, 20 epochs).

  python benchmarks/synth25_conditioning.py --seeds 0 1 2 --out runs/synth25_conditioning.jsonl
  python benchmarks/synth25_conditioning.py --report runs/synth25_conditioning.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np

from results_file import add_results_options, append_row, read_rows

CONDITIONS = ("1", "1.25", "1.5", "2", "3", "default")
METHODS = ("ae-kmeans", "acedec-start", "dcn0.1", "dcn1", "acedec")
EPOCHS = 20  # the paper's SYNTH-25 schedule: 20 pretraining + 20 clustering epochs


def linear_layers(ae):
    """(encoder, decoder) of a single-linear-layer autoencoder."""
    from torch import nn
    return tuple(m for m in ae.modules() if isinstance(m, nn.Linear))


def linear_autoencoder(X, condition: str, seed: int):
    """A linear d = D autoencoder of the given condition number, or "default" (see above)."""
    import torch

    from pydeepclust.models import Autoencoder, pretrain_autoencoder
    from pydeepclust.models.autoencoder import train_autoencoder

    D = X.shape[1]
    if condition == "default":
        ae = Autoencoder((D,), D, hidden=())
        torch.manual_seed(seed)
        for layer in linear_layers(ae):
            layer.reset_parameters()
        generator = torch.Generator().manual_seed(seed)
        return train_autoencoder(ae, torch.as_tensor(X), EPOCHS, 256, 1e-3, generator,
                                 torch.device("cpu")).eval()
    c = float(condition)
    gen = torch.Generator().manual_seed(1000 + seed)
    U, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    W, _ = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))
    s = torch.logspace(-0.5, 0.5, D, base=c, dtype=torch.float64)
    ae = pretrain_autoencoder(X, latent_dim=D, hidden=(), epochs=0, random_state=seed)
    encoder, decoder = linear_layers(ae)
    with torch.no_grad():
        encoder.weight.copy_(U @ torch.diag(s) @ W.T)
        decoder.weight.copy_(W @ torch.diag(1 / s) @ U.T)
    return ae.eval()


def encoder_condition(ae) -> float:
    encoder, _ = linear_layers(ae)
    return float(np.linalg.cond(encoder.weight.detach().double().numpy()))


CLUSTPY_CHILD = r"""
import copy, json, sys, torch
torch.set_num_threads(1)
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score as nmi
from clustpy.deep import ACeDeC, DCN
from clustpy.deep.neural_networks import FeedforwardAutoencoder
from clustpy.deep._train_utils import get_trained_network
from pydeepclust.data import load_dataset
seed = int(sys.argv[1]); epochs = int(sys.argv[2])
ds = load_dataset("synth25", random_state=seed)
X, y, k = ds.X.astype("float32"), ds.y, ds.n_classes
D, cpu = X.shape[1], torch.device("cpu")
ae = get_trained_network(data=X, n_epochs=epochs, batch_size=256, embedding_size=D, device=cpu,
                         neural_network=FeedforwardAutoencoder([D, D], random_state=seed),
                         random_state=seed)
with torch.no_grad():
    Z = ae.encode(torch.from_numpy(X)).numpy()
rows = {"ae-kmeans": nmi(y, KMeans(k, n_init=10, random_state=seed).fit_predict(Z))}
common = dict(batch_size=256, pretrain_epochs=epochs, clustering_epochs=epochs, embedding_size=D,
              device=cpu, random_state=seed)
for name, cls in (("acedec", ACeDeC), ("dcn", DCN)):
    rows[name] = nmi(y, cls(k, neural_network=copy.deepcopy(ae), **common).fit(X).labels_)
print(json.dumps(rows))
"""


def run_clustpy(seed: int, clustpy_path: str) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([clustpy_path, here]), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CLUSTPY_CHILD, str(seed), str(EPOCHS)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(seeds, conditions, methods, out: str, clustpy_path: str | None) -> None:
    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report
    from pydeepclust.models import DCN, ACeDeC, AEKMeans

    for seed in seeds:
        ds = load_dataset("synth25", random_state=seed)
        X, y, k = ds.X, ds.y, ds.n_classes
        for condition in conditions:
            ae = linear_autoencoder(X, condition, seed)
            D = X.shape[1]
            args = dict(autoencoder=ae, latent_dim=D, hidden=(), random_state=seed)
            models = {"ae-kmeans": lambda: AEKMeans(k, **args),
                      "acedec-start": lambda: ACeDeC(k, epochs=0, **args),
                      "dcn0.1": lambda: DCN(k, lam=0.1, epochs=EPOCHS, **args),
                      "dcn1": lambda: DCN(k, lam=1.0, epochs=EPOCHS, **args),
                      "acedec": lambda: ACeDeC(k, epochs=EPOCHS, **args)}
            for method in methods:
                start = time.perf_counter()
                est = models[method]().fit(X)
                append_row(out, {"library": "pydeepclust", "condition": condition,
                                 "method": method, "seed": seed,
                                 "encoder_cond": round(encoder_condition(ae), 3),
                                 "fit_s": round(time.perf_counter() - start, 1),
                                 **cluster_report(y, est.labels_)})
        if clustpy_path and "default" in conditions:
            for method, value in run_clustpy(seed, clustpy_path).items():
                append_row(out, {"library": "clustpy", "condition": "default",
                                 "method": method, "seed": seed, "nmi": value})


def report(path: str) -> None:
    rows = read_rows(path)
    by = defaultdict(list)
    for r in rows:
        by[(r["library"], r["method"], r["condition"])].append(r["nmi"])
    conditions = [c for c in CONDITIONS if any(r["condition"] == c for r in rows)]
    print("| library | method | " + " | ".join(f"c = {c}" if c != "default" else
                                               "torch default init" for c in conditions) + " |")
    print("|---" * (len(conditions) + 2) + "|")
    order = {m: i for i, m in enumerate((*METHODS, "dcn"))}
    for library, method in sorted(dict.fromkeys((r["library"], r["method"]) for r in rows),
                                  key=lambda lm: (lm[0] != "pydeepclust", order[lm[1]])):
        cells = []
        for c in conditions:
            v = np.array(by.get((library, method, c), []))
            cells.append("—" if not len(v) else
                         f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f} (n={len(v)})")
        print(f"| {library} | {method} | " + " | ".join(cells) + " |")
    conds = defaultdict(list)
    for r in rows:
        if "encoder_cond" in r:
            conds[r["condition"]].append(r["encoder_cond"])
    print("\nencoder condition numbers: " + ", ".join(
        f"{c}: {np.mean(conds[c]):.2f}" for c in conditions if conds[c]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--clustpy-path", help="folder holding clustpy (see acedec_vs_clustpy.py)")
    add_results_options(p, "runs/synth25_conditioning.jsonl")
    args = p.parse_args()
    if args.report:
        report(args.report)
    else:
        run(args.seeds, args.conditions, args.methods, args.out, args.clustpy_path)


if __name__ == "__main__":
    main()
