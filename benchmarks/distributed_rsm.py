"""Peak memory and time of one data-parallel RSM step with the RBF graph (issue 15, part 6).

One training step of RSM (``kernel="rbf"``: the streaming ratio cut, rectangular under
torch.distributed) on a global batch of MNIST images (d = 784), per rank: the resident set
before the step (data, network, optimizer) and at its peak, and the step's wall time. Run it
alone for one rank and under torchrun for several, with the same number of cores in all::

    OMP_NUM_THREADS=2 python benchmarks/distributed_rsm.py --batch 65536
    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node=2 benchmarks/distributed_rsm.py \
        --batch 65536

Each rank prints one JSON line; ``--out FILE`` appends them (rank 0 collects the ranks' lines,
so one writer). The dense torch form of the same loss would hold B x B affinities: 16 GiB per
copy at B = 65,536 in float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import torch

from pydeepclust import distributed as pdist
from pydeepclust.data import load_dataset
from pydeepclust.models import RSM


def rss_mib() -> float:
    """Peak resident set of this process so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=65536, help="global batch")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--out", default=None, help="append the JSON lines here (rank 0)")
    args = p.parse_args()
    pdist.init_from_env("cpu")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    X = torch.as_tensor(load_dataset("mnist").X[: args.batch])
    model = RSM(10, kernel="rbf", batch_size=args.batch, random_state=0, device="cpu")
    model._build(tuple(X.shape[1:]))
    optimizer = torch.optim.Adam(model.network_.parameters(), lr=1e-3)
    draws = torch.Generator().manual_seed(0)
    rows = pdist.rank_rows(len(X))
    x = X[rows].contiguous()
    before = current_rss_mib()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        parts = model._batch_loss(x, x, draws)
        loss = parts["cut"] + parts["penalty"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        pdist.average_gradients(model.network_.parameters())
        optimizer.step()
        times.append(time.perf_counter() - start)
    row = {"ranks": pdist.world_size(), "rank": pdist.rank(), "global_batch": args.batch,
           "rows_per_rank": len(x), "d": X.shape[1], "threads": torch.get_num_threads(),
           "rss_before_step_mib": round(before, 1), "peak_rss_mib": round(rss_mib(), 1),
           "step_seconds": [round(t, 2) for t in times], "loss": round(float(loss.detach()), 6),
           "host": platform.node(), "torch": torch.__version__}
    every = pdist.gather_objects(row) if pdist.is_distributed() else [row]
    if pdist.is_main_process():
        for line in every:
            print(json.dumps(line))
        if args.out:
            with open(args.out, "a") as f:
                f.writelines(json.dumps(line) + "\n" for line in every)
    if pdist.is_distributed():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
