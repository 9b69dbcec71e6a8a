"""Peak memory and time of one data-parallel RSM step with the RBF graph (issue 15, part 6).

One training step of RSM (``kernel="rbf"``: the streaming ratio cut; under torch.distributed
each rank's own block by the square op and half of each block it shares with another rank by the
rectangular one) on a global batch of MNIST images (d = 784), per rank: the resident set before
the step (data, network, optimizer) and its peak during the step, and the step's wall time. Run it
alone for one rank and under torchrun for several, with the same number of cores in all::

    OMP_NUM_THREADS=2 python benchmarks/distributed_rsm.py --batch 65536
    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node=2 benchmarks/distributed_rsm.py \
        --batch 65536

Each rank prints one JSON line; ``--out FILE`` appends them (rank 0 collects the ranks' lines,
so one writer). ``--device cuda`` runs on the GPUs (NCCL under torchrun, one GPU per rank) and
reports the peak of torch's CUDA allocator instead of the resident set
(``benchmarks/gpu_distributed.sh``). The dense torch form of the same loss would hold B x B affinities: 16 GiB per
copy at B = 65,536 in float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from pydeepclust import distributed as pdist
from pydeepclust.data import load_dataset
from pydeepclust.models import RSM


def status_mib(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: resident now, VmHWM: its peak), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux >= 4.0), so that the peak is the step's, not the loading's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=65536, help="global batch")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--out", default=None, help="append the JSON lines here (rank 0)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args()
    pdist.init_from_env(args.device)
    device = torch.device(args.device)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    X = torch.as_tensor(load_dataset("mnist").X)
    X = X.repeat(-(-args.batch // len(X)), 1)[: args.batch]  # MNIST again past its 70,000
    model = RSM(10, kernel="rbf", batch_size=args.batch, random_state=0, device=args.device)
    model._build(tuple(X.shape[1:]))
    optimizer = torch.optim.Adam(model.network_.parameters(), lr=1e-3)
    draws = torch.Generator().manual_seed(0)
    rows = pdist.rank_rows(len(X))
    x = X[rows].contiguous().to(device)
    before = status_mib("VmRSS")
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        parts = model._batch_loss(x, x, draws)
        loss = parts["cut"] + parts["penalty"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        pdist.average_gradients(model.network_.parameters())
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    row = {"ranks": pdist.world_size(), "rank": pdist.rank(), "global_batch": args.batch,
           "rows_per_rank": len(x), "d": X.shape[1], "threads": torch.get_num_threads(),
           "device": str(device), "rss_before_step_mib": round(before, 1),
           "peak_rss_mib": round(status_mib("VmHWM"), 1),
           "peak_cuda_mib": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                             if device.type == "cuda" else None),
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
