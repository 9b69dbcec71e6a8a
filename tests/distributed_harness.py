"""Run a function on W gloo ranks (spawned processes, one thread each, a ``file://``
rendezvous in a temporary folder) and collect what each rank returns."""

from __future__ import annotations

import os
import pickle

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, folder: str, fn, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world)
    try:
        result = fn(*args)
        with open(os.path.join(folder, f"result-{rank}.pkl"), "wb") as f:
            pickle.dump(result, f)
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world: int, folder, *args) -> list:
    """``fn(*args)`` on ``world`` ranks; the list of their return values, in rank order.
    ``fn`` must be importable (a module-level function) and return picklable values. An
    exception on any rank is raised here (``torch.multiprocessing`` ends the others)."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    mp.spawn(_worker, args=(world, folder, fn, args), nprocs=world, join=True)
    out = []
    for r in range(world):
        with open(os.path.join(folder, f"result-{r}.pkl"), "rb") as f:
            out.append(pickle.load(f))
    return out
