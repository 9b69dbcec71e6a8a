"""Pure-torch references of every pydeepclust op.

These are the readable definitions: the native kernels are tested against
them, and they serve whenever the extension is absent or has no kernel for a
device. They run on any device and are differentiable through torch autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _cosines(E: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
    """cos(e_i, s_c) for every row and code, and the row norms (..., 1).

    A zero row has cosine 0 to every code (and, through ``where``, zero gradient).
    """
    norm = torch.linalg.vector_norm(E, dim=-1, keepdim=True)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    cos = (E @ codes.T) / (safe * torch.linalg.vector_norm(codes, dim=-1))
    return torch.where(norm > 0, cos, torch.zeros_like(cos)), norm


def cosine_simplex_assign(E: Tensor, codes: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Nearest code by cosine: ``scale * (1 - max_c cos(e_i, s_c))`` and its argmax.

    Rows with NaN/inf get label -1 and a NaN distance.
    """
    cos, norm = _cosines(E, codes)
    best, label = cos.max(dim=-1)
    finite = torch.isfinite(norm.squeeze(-1))
    dist = torch.where(finite, scale * (1 - best), torch.full_like(best, float("nan")))
    return dist, torch.where(finite, label, torch.full_like(label, -1))


def soft_memberships(E: Tensor, codes: Tensor) -> Tensor:
    """Soft KSC memberships (Langone, Mall & Suykens 2013), shape (..., k).

    ``m_ic = prod_{j != c} d_ij / sum_l prod_{j != l} d_ij`` with ``d_ic = 1 - cos``,
    evaluated as ``(d_min / d_ic) / sum_l (d_min / d_il)``; rows exactly on a code
    (``d_min = 0``) split the membership among the codes at distance 0.
    """
    cos, _ = _cosines(E, codes)
    d = 1 - cos
    dmin = d.min(dim=-1, keepdim=True).values
    on_code = (d <= 0).to(d.dtype)
    ratio = torch.where(dmin > 0, dmin / torch.where(d > 0, d, torch.ones_like(d)), on_code)
    return ratio / ratio.sum(dim=-1, keepdim=True)


# ---------------------------------------------------------------- Cayley retraction (DESIGN §3d)


def cayley_retraction(X: Tensor, G: Tensor, tau) -> Tensor:
    """Low-rank Cayley step on the Stiefel manifold (Wen & Yin 2013), plain torch.

    ``X``, ``G``: (n, p) or (B, n, p); ``tau``: a number, 0-d tensor or (B,) tensor.
    ``Ghat = G - X (X^T G) / 2``, ``U = [Ghat, X]``, ``V = [X, -Ghat]`` and
    ``Y = X - tau U (I_2p + tau/2 V^T U)^-1 V^T X``, which equals
    ``(I + tau/2 W)^-1 (I - tau/2 W) X`` for ``W = Ghat X^T - X Ghat^T``: orthonormal
    whenever ``X`` is, and a descent curve for a Euclidean gradient ``G``.
    """
    tau = torch.as_tensor(tau, dtype=X.dtype, device=X.device)
    tau = tau.reshape(-1, 1, 1) if tau.dim() == 1 else tau
    Xt = X.transpose(-2, -1)
    G_hat = G - 0.5 * X @ (Xt @ G)
    U = torch.cat([G_hat, X], dim=-1)
    V = torch.cat([X, -G_hat], dim=-1)
    Vt = V.transpose(-2, -1)
    eye = torch.eye(U.shape[-1], dtype=X.dtype, device=X.device)
    Z = torch.linalg.solve(eye + 0.5 * tau * (Vt @ U), Vt @ X)
    return X - tau * (U @ Z)


def cayley_fixed_point(X: Tensor, G: Tensor, tau, iterations: int) -> Tensor:
    """For benchmarks only: the fixed-point Cayley loop of Li, Li & Todorovic (ICLR 2020).

    Forms the n x n skew matrix ``W = Ghat X^T - X Ghat^T`` and iterates
    ``Y <- X - tau/2 W (X + Y)`` from ``Y = X - tau W X`` (their code: 5 iterations,
    the paper: 2). Only approximately orthonormal; converges for ``tau ||W|| < 1``.
    """
    tau = torch.as_tensor(tau, dtype=X.dtype, device=X.device)
    tau = tau.reshape(-1, 1, 1) if tau.dim() == 1 else tau
    G_hat = G - 0.5 * X @ (X.transpose(-2, -1) @ G)
    W = G_hat @ X.transpose(-2, -1) - X @ G_hat.transpose(-2, -1)
    Y = X - tau * (W @ X)
    for _ in range(iterations):
        Y = X - 0.5 * tau * (W @ (X + Y))
    return Y
