"""Cayley Adam (Li, Li & Todorovic, ICLR 2020) with the exact low-rank Cayley retraction."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor
from torch.optim import Optimizer

from pydeepclust.ops.cayley import (
    cayley_retraction,
    default_orthonormality_tol,
    orthonormality_error,
)

# Columns of W handled per chunk in stiefel_one_norm: bounds its temporary to
# about this many entries.
_ONE_NORM_CHUNK_ENTRIES = 1 << 22


def stiefel_one_norm(X: Tensor, D: Tensor) -> Tensor:
    """Matrix 1-norm (largest absolute column sum) of ``W = Dhat X^T - X Dhat^T``.

    ``Dhat = D - X (X^T D) / 2``; ``X``, ``D`` are (n, p) or (B, n, p); returns shape
    () or (B,). ``W`` is n x n, so this costs O(n^2 p); it is formed a block of
    columns at a time (about 4M entries), never whole.
    """
    D_hat = D - 0.5 * X @ (X.transpose(-2, -1) @ D)
    n = X.shape[-2]
    batch = X[..., 0, 0].numel()
    chunk = max(1, _ONE_NORM_CHUNK_ENTRIES // max(1, batch * n))
    norm = None
    for start in range(0, n, chunk):
        cols = slice(start, start + chunk)
        block = D_hat @ X[..., cols, :].transpose(-2, -1) - X @ D_hat[..., cols, :].transpose(-2, -1)
        block_max = block.abs().sum(dim=-2).amax(dim=-1)
        norm = block_max if norm is None else torch.maximum(norm, block_max)
    return norm if norm is not None else X.new_zeros(X.shape[:-2])


class CayleyAdam(Optimizer):
    """Adam on the Stiefel manifold {X : X^T X = I} for parameters with orthonormal columns.

    After Cayley Adam (Li, Li & Todorovic, ICLR 2020, Algorithm 2): for each matrix X
    (shape (n, p) or a batch (B, n, p), one set of moments per matrix) and gradient G,

        M <- b1 M + (1 - b1) G,           v <- b2 v + (1 - b2) ||G||_F^2   (one scalar)
        r  = (1 - b1^t) sqrt(v / (1 - b2^t) + eps)
        W  = Mhat X^T - X Mhat^T with Mhat = (M - X X^T M / 2) / r
        alpha = min(lr, 1 / (||W||_1 + 1e-8))                (their step-size rule)
        X <- Cayley(X, M / r, alpha),     M <- r W X = M - X sym(X^T M)

    The Cayley step is :func:`pydeepclust.ops.cayley_retraction`, the exact low-rank
    form: no fixed-point iterations and no periodic QR re-orthonormalisation are needed.
    Because an exact Cayley step keeps X^T X as it was, float32 rounding (~1e-7 per
    step) would still add up over many thousands of steps; each step therefore ends with
    one Newton-Schulz correction X (3I - X^T X) / 2 (O(n p^2)), which keeps ||X^T X - I||
    at rounding level (tested: below 1e-5 after 10,000 float32 steps).
    ``||W||_1`` (matrix 1-norm) costs O(n^2 p) per step: see :func:`stiefel_one_norm`.

    Param groups: ``stiefel=True`` (default) groups hold Stiefel matrices, ``p <= n``,
    whose columns must be orthonormal at the first step (``ValueError`` otherwise:
    initialise with ``torch.nn.init.orthogonal_`` or ``torch.linalg.qr(X).Q``).
    ``stiefel=False`` groups are Euclidean and get plain Adam with the same
    ``lr``, ``betas``, ``eps``, so one optimiser can train a whole model::

        opt = CayleyAdam([{"params": [model.U]},
                          {"params": model.net.parameters(), "stiefel": False, "lr": 1e-3}],
                         lr=1e-4)
    """

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8,
                 stiefel: bool = True):
        _check_hyperparameters(lr, betas, eps, "")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, stiefel=bool(stiefel)))

    def add_param_group(self, param_group: dict) -> None:
        """Every group, the first ones included, comes through here (Optimizer.__init__):
        its own lr / betas / eps and its Stiefel shapes are checked."""
        # checked before the group joins: a refused group must not stay in param_groups
        settings = {**self.defaults, **param_group}
        where = f" of param group {len(self.param_groups)}"
        _check_hyperparameters(settings["lr"], settings["betas"], settings["eps"], where)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["stiefel"]:
            for index, param in enumerate(group["params"]):
                _check_stiefel_param(param, index)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_gradients()
        for group in self.param_groups:
            for index, param in enumerate(group["params"]):
                if param.grad is None:
                    continue
                if group["stiefel"]:
                    self._stiefel_step(param, group, index)
                else:
                    self._adam_step(param, group)
        return loss

    def _check_gradients(self) -> None:
        """Refuse the whole step, before any parameter moves, when a gradient holds NaN or inf
        (one would turn a Stiefel matrix into NaN for good). One synchronisation per step;
        skipped while torch.compile traces the step."""
        grads = [(g, i, p.grad) for g, group in enumerate(self.param_groups)
                 for i, p in enumerate(group["params"]) if p.grad is not None]
        for _, _, grad in grads:
            if grad.is_sparse:
                raise RuntimeError("CayleyAdam does not support sparse gradients")
        if not grads or torch.compiler.is_compiling():
            return
        finite = torch.stack([torch.isfinite(grad).all().to(grads[0][2].device)
                              for _, _, grad in grads])
        if not bool(finite.all()):
            g, i, _ = grads[int((~finite).nonzero()[0])]
            raise FloatingPointError(
                f"CayleyAdam: the gradient of parameter {i} of param group {g} has NaN or inf; "
                "no parameter was changed by this step")

    def _stiefel_step(self, X: Tensor, group: dict, index: int) -> None:
        state = self.state[X]
        G = X.grad
        if not state:
            err = orthonormality_error(X)
            tol = default_orthonormality_tol(X.dtype)
            if err.numel() and not bool((err <= tol).all()):  # NaN fails too
                raise ValueError(
                    f"CayleyAdam: Stiefel parameter {index} of shape {tuple(X.shape)} must have "
                    f"orthonormal columns at the first step: max |X^T X - I| = "
                    f"{err.max().item():.3g} > {tol:g}. Initialise it with "
                    "torch.nn.init.orthogonal_ or torch.linalg.qr(X).Q, or put it in a group "
                    "with stiefel=False"
                )
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(X)
            state["exp_avg_sq"] = X.new_zeros(X.shape[:-2])  # one scalar per matrix
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        M, v = state["exp_avg"], state["exp_avg_sq"]
        M.mul_(beta1).add_(G, alpha=1 - beta1)
        v.mul_(beta2).add_(G.square().sum(dim=(-2, -1)), alpha=1 - beta2)
        r = (1 - beta1**t) * torch.sqrt(v / (1 - beta2**t) + group["eps"])
        direction = M / r[..., None, None]
        alpha = torch.clamp(1 / (stiefel_one_norm(X, direction) + 1e-8), max=group["lr"])
        Y = cayley_retraction(X, direction, alpha)
        # Keep the moment in the tangent space at the old point: M <- r W X_old.
        XtM = X.transpose(-2, -1) @ M
        M.sub_(X @ (0.5 * (XtM + XtM.transpose(-2, -1))))
        # The Cayley step preserves Y^T Y = X^T X exactly, so its rounding (~1e-7 per
        # float32 step) would add up over thousands of steps. One Newton-Schulz (polar)
        # step Y (3I - Y^T Y) / 2 squares that error instead: O(n p^2), no QR.
        E = Y.transpose(-2, -1) @ Y
        E.diagonal(dim1=-2, dim2=-1).sub_(1)
        X.copy_(Y - 0.5 * (Y @ E))

    def _adam_step(self, param: Tensor, group: dict) -> None:
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(param.grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
        denom = (v / (1 - beta2**t)).sqrt_().add_(group["eps"])
        param.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1**t))


def _check_hyperparameters(lr, betas, eps, where: str) -> None:
    def real(value) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    # a 0-d tensor lr, as torch.optim allows (a compiled step then needs no recompiles)
    lr_value = float(lr) if isinstance(lr, Tensor) and lr.dim() == 0 and \
        lr.dtype.is_floating_point else lr
    if not real(lr_value):
        raise ValueError(f"CayleyAdam: lr{where} must be a number or a 0-d float tensor, "
                         f"got {lr!r}")
    if not 0 < lr_value < math.inf:
        raise ValueError(f"CayleyAdam: lr{where} must be > 0 and finite, got {lr!r}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2
            and all(real(b) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"CayleyAdam: betas{where} must be two numbers in [0, 1), got {betas!r}")
    if not (real(eps) and 0 < eps < math.inf):
        # eps = 0 would divide a zero gradient's zero moment by zero
        raise ValueError(f"CayleyAdam: eps{where} must be > 0 and finite, got {eps!r}")


def _check_stiefel_param(param: Tensor, index: int) -> None:
    where = f"CayleyAdam: Stiefel parameter {index}"
    if param.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{where} must be float32 or float64, got {param.dtype}")
    if param.dim() not in (2, 3) or not 1 <= param.shape[-1] <= param.shape[-2]:
        raise ValueError(
            f"{where} must have shape (n, p) or (B, n, p) with 1 <= p <= n (orthonormal columns), "
            f"got {tuple(param.shape)}; put other parameters in a group with stiefel=False"
        )
