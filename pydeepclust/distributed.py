"""Data-parallel training with torch.distributed: collectives with gradients, rank helpers.

The rule (DESIGN §6): every rank computes the *same* global loss from local partial sums
passed through :func:`all_reduce_sum` and :func:`all_gather`, whose backward passes are their
adjoints (all-reduce-sum, and all-reduce-sum then the rank's slice: a reduce-scatter). Rank
r's backward then yields the part of ``d(sum over ranks of L)/d theta`` that flows through its
own samples; the ranks' parts sum to ``W dL/dtheta``, and :func:`average_gradients` (the
mean DDP takes) leaves every rank holding exactly ``dL/dtheta`` of the loss on the
concatenated global batch.

Without an initialised process group (or with one rank) every function here is the identity
or a no-op, so the models have one code path. torch.distributed is the engine: gloo on the
CPU, NCCL on CUDA; :func:`init_from_env` sets it up under ``torchrun``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import os
import zlib

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather", "all_reduce_sum", "average_gradients", "broadcast_", "broadcast_object",
           "check_in_sync", "check_same_data", "gather_objects", "gather_rows", "global_count", "global_mean",
           "init_from_env", "is_distributed", "is_main_process", "process_group_active", "rank",
           "rank_rows", "raise_together", "use_process_group", "world_size"]

# Set to 1 to compare a checksum of every parameter updated outside autograd across ranks
# after each step (a debug check: it adds one small collective per check).
CHECK_SYNC_ENV = "PYDEEPCLUST_CHECK_SYNC"


# Off inside ``use_process_group(False)``: an estimator told to train alone in a process group.
_ENABLED = contextvars.ContextVar("pydeepclust_distributed", default=True)


def process_group_active() -> bool:
    """An initialised default process group of more than one rank exists."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_distributed() -> bool:
    """True where pydeepclust trains data-parallel: inside an initialised process group of
    more than one rank, unless switched off by :func:`use_process_group`."""
    return _ENABLED.get() and process_group_active()


@contextlib.contextmanager
def use_process_group(enabled: bool):
    """Inside the block every function here uses the process group (``enabled``) or acts as
    on a single process (the identity, no collectives)."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 of the process group (or no group): the one rank that writes files and
    prints, also where an estimator trains alone on every rank."""
    return not process_group_active() or dist.get_rank() == 0


def rank_rows(n: int) -> slice:
    """This rank's contiguous share of ``n`` rows (as ``torch.tensor_split`` splits them: the
    shares differ by at most one row); all of them without a process group."""
    world, r = world_size(), rank()
    size, extra = divmod(n, world)
    start = r * size + min(r, extra)
    return slice(start, start + size + (r < extra))


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor, sizes: list[int]) -> Tensor:
        # gloo gathers equal shapes only: pad every share to the largest, then trim
        longest = max(sizes)
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, dist.get_rank()  # backward may run on another thread
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over the ranks, on every rank; differentiable (the backward
    all-reduces the gradients). ``tensor`` itself without a process group."""
    return _AllReduceSum.apply(tensor) if is_distributed() else tensor


def all_gather(tensor: Tensor) -> Tensor:
    """The ranks' ``tensor`` concatenated along dim 0 in rank order, on every rank;
    differentiable (the backward sums the gradients over the ranks and returns this rank's
    rows). Shares may differ in length. ``tensor`` itself without a process group."""
    return gather_rows(tensor)[0]


def gather_rows(tensor: Tensor) -> tuple[Tensor, list[int]]:
    """:func:`all_gather` and every rank's number of rows in it (rank r's rows start at
    ``sum(sizes[:r])``)."""
    if not is_distributed():
        return tensor, [len(tensor)]
    sizes = broadcast_sizes(len(tensor), tensor.device)
    return _AllGather.apply(tensor, sizes), sizes


def global_mean(local_mean: Tensor, n_local: int, n_total: int) -> Tensor:
    """The mean over the global batch of a term given as this rank's mean over its
    ``n_local`` rows, on every rank, differentiable. A rank without rows (a last batch
    shorter than the world) adds 0 but still joins the collective, forward and backward."""
    if not is_distributed():
        return local_mean
    if n_local == 0:  # the mean of no rows is NaN; keep the graph, drop the value
        return all_reduce_sum(local_mean.nan_to_num(0.0) * 0.0)
    return all_reduce_sum(local_mean * (n_local / n_total))


def global_count(n_local: int, device: torch.device | str = "cpu") -> int:
    """The number of rows of the global batch (the sum of the ranks' ``n_local``)."""
    if not is_distributed():
        return n_local
    return int(all_reduce_sum(torch.tensor(n_local, dtype=torch.int64, device=device)))


def broadcast_sizes(size: int, device: torch.device) -> list[int]:
    """Every rank's ``size``, in rank order."""
    mine = torch.tensor([size], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(sizes, mine)
    return [int(s) for s in sizes]


def average_gradients(parameters) -> None:
    """Replace every gradient by its mean over the ranks (what DDP does after backward), in
    one all-reduce of the flattened gradients; a parameter without a gradient counts as
    zero on that rank (so the ranks always call the same collective)."""
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s (no-op without a process group)."""
    if is_distributed():
        with torch.no_grad():
            buf = tensor.detach().contiguous()
            dist.broadcast(buf, src)
            if buf.data_ptr() != tensor.data_ptr():
                tensor.detach().copy_(buf)
    return tensor


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s picklable ``obj`` on every rank (``obj`` itself without a group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def check_in_sync(tensors: dict[str, Tensor], what: str, force: bool = False) -> None:
    """Raise ``RuntimeError`` on every rank if a tensor differs between ranks (compared by a
    CRC of its bytes). Runs when ``force`` or the environment variable
    ``PYDEEPCLUST_CHECK_SYNC=1`` is set: for parameters updated outside autograd
    (retractions, centroids, rotations), which nothing else keeps equal."""
    if not is_distributed() or not (force or os.environ.get(CHECK_SYNC_ENV) == "1"):
        return
    names = sorted(tensors)
    mine = torch.tensor([zlib.crc32(tensors[n].detach().cpu().contiguous().numpy().tobytes())
                         for n in names], dtype=torch.int64)
    every = gather_objects(mine)
    differ = [n for i, n in enumerate(names) if len({int(c[i]) for c in every}) > 1]
    if differ:
        raise RuntimeError(f"pydeepclust.distributed: {what}: {', '.join(differ)} differ "
                           f"between the {world_size()} ranks (rank {rank()} checked); the "
                           "ranks have drifted apart")


def gather_objects(obj) -> list:
    """Every rank's picklable ``obj``, in rank order."""
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def raise_together(what: str):
    """Run the block on every rank; if it raised on any rank, raise on every rank (the
    rank's own exception, or a ``RuntimeError`` naming the rank that failed and why), so that
    no rank goes on into a collective its peers will never join. For the checks before
    training (bad input, bad parameters, data that differ between ranks)."""
    error = None
    try:
        yield
    except Exception as err:  # noqa: BLE001 - shared with the peers, then raised again
        error = err
    if is_distributed():
        reports = gather_objects(None if error is None else f"{type(error).__name__}: {error}")
        if error is None:
            failed = [(r, report) for r, report in enumerate(reports) if report is not None]
            if failed:
                r, report = failed[0]
                raise RuntimeError(f"{what}: rank {r} of {world_size()} failed: {report}")
    if error is not None:
        raise error


def check_same_data(X: Tensor, owner: str) -> None:
    """Every rank must hold the same training data (each takes its share of every global
    batch from it): compared by size and a CRC of the bytes; a ``ValueError`` on every rank
    otherwise."""
    if not is_distributed():
        return
    mine = (tuple(X.shape), zlib.crc32(X.detach().cpu().contiguous().numpy().tobytes()))
    every = gather_objects(mine)
    if len(set(every)) > 1:
        raise ValueError(f"{owner}: X differs between the {world_size()} ranks (shape, CRC per "
                         f"rank: {every}); under torch.distributed every rank passes the same "
                         "whole data set and takes its share of each global batch")


def init_from_env(device: str | None = None, timeout_s: float = 600.0) -> bool:
    """Initialise the default process group from ``torchrun``'s environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL when training on CUDA
    (each rank on ``cuda:LOCAL_RANK``), gloo on the CPU. Returns whether a group of more than
    one rank is up; does nothing outside torchrun or when a group exists. ``timeout_s``
    bounds how long a rank waits in a collective for a peer that has died."""
    if dist.is_initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    on_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if on_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = datetime.timedelta(seconds=timeout_s)
    store, rank_, world = next(dist.rendezvous("env://", timeout=timeout))
    # A group restarted by torchrun (--max-restarts) meets in the same store: without a
    # prefix per attempt, a rank can read a dead peer's address from the attempt before
    # (measured here: gloo's connectFullMesh refused, the restart failed).
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("nccl" if on_cuda else "gloo", timeout=timeout, rank=rank_,
                            world_size=world,
                            store=dist.PrefixStore(f"pydeepclust/attempt-{attempt}", store))
    return is_distributed()
