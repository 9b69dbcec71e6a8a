"""Argument validation shared by the public op wrappers: errors that name the argument."""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_tensor(t, name: str, fn: str, min_dim: int = 0, ndim: tuple[int, ...] | None = None):
    """A float32/float64 tensor with an allowed number of dimensions."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be float32 or float64 (or float16 / bfloat16, "
                        f"computed in float32), got {t.dtype}")
    if ndim is not None and t.dim() not in ndim:
        raise ValueError(f"{fn}: {name} must have {' or '.join(map(str, ndim))} dimensions, "
                         f"got shape {tuple(t.shape)}")
    if t.dim() < min_dim:
        raise ValueError(
            f"{fn}: {name} must have at least {min_dim} dimension(s), got shape {tuple(t.shape)}"
        )


class Deferred:
    """Value checks of one op call, read back with a single host synchronisation.

    Each check adds a 0-d bool tensor (True: failed) and the function that raises its error;
    :meth:`run` reads the OR of all flags (one host sync) and, only if it is set, raises the
    first failed check's error, in the order added. Under ``torch.compile`` nothing is recorded
    (a data-dependent branch would break the graph).
    """

    def __init__(self):
        self._flags: list[Tensor] = []
        self._raisers: list[Callable[[], None]] = []

    def add(self, failed: Tensor, raiser: Callable[[], None]) -> None:
        if torch.compiler.is_compiling():
            return
        self._flags.append(failed)
        self._raisers.append(raiser)

    def bad_rows(self, bad: Tensor, name: str, fn: str) -> None:
        """Fail when any of ``bad`` (rows of ``name`` holding NaN or inf) is set."""
        if bad.numel():
            self.add(bad.any(), lambda: raise_on_bad_rows(bad, name, fn))

    def non_finite_rows(self, t: Tensor, name: str, fn: str) -> None:
        """As :func:`raise_on_non_finite_rows`, deferred."""
        if t.numel():
            self.bad_rows(~torch.isfinite(t).all(-1), name, fn)

    def run(self) -> None:
        """One sync on the OR of all flags; only when one failed, each is read to raise."""
        flags, raisers = self._flags, self._raisers
        self._flags, self._raisers = [], []
        if not flags:
            return
        failed = flags[0]
        for flag in flags[1:]:
            failed = failed | flag
        if not bool(failed):
            return
        for flag, raiser in zip(flags, raisers):
            if bool(flag):
                raiser()


SKIP = Deferred()  # passed as ``checks``: the value checks are not wanted (check_finite=False)


def raise_on_bad_rows(bad: Tensor, name: str, fn: str) -> None:
    """Raise ``ValueError`` naming the rows flagged in ``bad`` (NaN/inf input rows).

    Skipped while ``torch.compile`` traces (a data-dependent branch would break
    the graph); the op's outputs still mark those rows.
    """
    if torch.compiler.is_compiling() or bad.numel() == 0 or not bool(bad.any()):
        return
    flat = bad.reshape(-1).nonzero().squeeze(1)
    raise ValueError(
        f"{fn}: {name} has NaN or inf in {flat.numel()} row(s) (first flat row index: "
        f"{int(flat[0])}); clean or drop them first"
    )


def raise_on_non_finite_rows(t: Tensor, name: str, fn: str) -> None:
    """Name the rows of ``t`` (features along the last dimension) holding NaN or inf.

    For the kernel ops whose arithmetic would hide them: an RBF affinity to a point at
    infinity underflows to a plausible 0 instead of propagating NaN. One O(numel) pass,
    against the ops' O(n^2 d); skipped under ``torch.compile``.
    """
    if torch.compiler.is_compiling() or t.numel() == 0:
        return
    raise_on_bad_rows(~torch.isfinite(t).all(-1), name, fn)


def check_bandwidth(sigma, X: Tensor, shapes: list[tuple[int, ...]], fn: str,
                    checks: Deferred | None = None) -> float | Tensor:
    """An RBF bandwidth: a positive finite number (returned as a float), or a floating tensor of
    one of ``shapes`` on X's device holding positive finite values (returned detached, in X's
    dtype; the value check is skipped under ``torch.compile``, and left to ``checks`` when
    given: no host synchronisation here then; ``checks=SKIP``: no value check at all)."""
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        if not 0 < sigma < math.inf:
            raise ValueError(f"{fn}: sigma must be > 0 and finite, got {sigma!r}")
        return float(sigma)
    if not isinstance(sigma, Tensor) or not sigma.dtype.is_floating_point:
        raise TypeError(f"{fn}: sigma must be a positive number or a floating tensor, got "
                        f"{getattr(sigma, 'dtype', type(sigma).__name__)}")
    if tuple(sigma.shape) not in shapes:
        raise ValueError(f"{fn}: sigma must hold one bandwidth per batch element, shape "
                         f"{' or '.join(map(str, shapes))}, got {tuple(sigma.shape)}")
    if sigma.device != X.device:
        raise ValueError(f"{fn}: sigma must be on X's device {X.device}, got {sigma.device}")
    if checks is SKIP:
        pass
    elif checks is not None:
        def fail(sigma=sigma):
            raise ValueError(f"{fn}: sigma must be > 0 and finite, got {sigma}")
        checks.add(~((sigma > 0) & sigma.isfinite()).all(), fail)
    elif not torch.compiler.is_compiling() and not bool(((sigma > 0) & sigma.isfinite()).all()):
        raise ValueError(f"{fn}: sigma must be > 0 and finite, got {sigma}")
    return sigma.detach().to(X.dtype)
