"""float16 and bfloat16 inputs, and ``torch.autocast``: every op computes in float32.

The kernels and references accumulate long sums (degrees over a batch, Grams over 784
features, ratio cuts over n^2 pairs) whose float16/bfloat16 rounding would swamp the result
(bfloat16 keeps 8 bits of mantissa: a sum of 4,096 terms is off by percents). So
:func:`computes_in_float32` wraps each public op: half-precision tensor arguments are cast to
float32 on the way in (differentiably: gradients come back in their dtype), and

* outside autocast, floating results are cast back to the dtype of the op's first tensor
  argument when that is half precision (else to the half dtype of the others), so a bfloat16
  input gives a bfloat16 output computed as accurately as float32 can, rounded once;
* under ``torch.autocast`` results stay float32, as for the losses and reductions on autocast's
  own float32 list (a loss handed to the optimizer in bfloat16 would lose its small changes).

The raw ops (``torch.ops.pydeepclust.*``) get the same rule under autocast through
``torch.library.register_autocast`` (inputs cast to float32 on CPU and CUDA); called directly
outside autocast they take float32 and float64 only.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


def _map_tensors(value, fn):
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


def _tensors(args, kwargs) -> list[Tensor]:
    found: list[Tensor] = []
    for value in (*args, *kwargs.values()):
        _map_tensors(value, lambda t: found.append(t) or t)
    return found


def _autocast_on(tensors: list[Tensor]) -> bool:
    return any(torch.is_autocast_enabled(t.device.type) for t in tensors
               if t.device.type in ("cpu", "cuda"))


def computes_in_float32(fn):
    """Let ``fn`` take float16/bfloat16 tensors: computed in float32, returned as described in
    the module docstring. Calls without half-precision tensors (and not under autocast) pass
    straight through."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tensors = _tensors(args, kwargs)
        halves = [t.dtype for t in tensors if t.dtype in HALF_DTYPES]
        autocast = _autocast_on(tensors)
        if not halves and not autocast:
            return fn(*args, **kwargs)
        up = functools.partial(_map_tensors, fn=lambda t: t.float() if t.dtype in HALF_DTYPES
                               else t)
        with contextlib.ExitStack() as stack:  # float32 inside, also the references' matmuls
            for device in sorted({t.device.type for t in tensors} & {"cpu", "cuda"}):
                stack.enter_context(torch.autocast(device, enabled=False))
            out = fn(*up(args), **{k: up(v) for k, v in kwargs.items()})
        if autocast or not halves:
            return out
        first = next(t.dtype for t in tensors if t.is_floating_point())
        target = first if first in HALF_DTYPES else halves[0]
        return _map_tensors(out, lambda t: t.to(target) if t.dtype == torch.float32 else t)

    return wrapper


# Every op csrc/ops.cpp declares (tests/test_precision.py checks the list against the registry).
NATIVE_OPS = (
    "cosine_simplex_assign", "cosine_simplex_assign_backward", "soft_memberships",
    "degree_weighted_kernel", "degree_weighted_kernel_backward", "rbf_row_sums",
    "rbf_row_moments", "rbf_affinity", "rbf_ratio_cut", "rbf_ratio_cut_backward_x",
    "rbf_ratio_cut_rows", "rbf_ratio_cut_rows_backward", "cayley_retraction",
)


def register_autocast_rules() -> None:
    """Under autocast the raw ops ``pydeepclust::<op>`` get float32 inputs (CPU and CUDA)."""
    for op in NATIVE_OPS:
        for device in ("cpu", "cuda"):
            torch.library.register_autocast(f"pydeepclust::{op}", device, torch.float32)
