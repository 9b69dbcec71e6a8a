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


# ---------------------------------------------------------------- RBF affinity, ratio cut (§3c)


def _sq_dists(A: Tensor) -> Tensor:
    """``||a_i - a_j||^2`` for all row pairs of ``A`` (..., n, m), by the Gram form."""
    sq = A.square().sum(-1)
    return (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * (A @ A.transpose(-1, -2))).clamp_min(0)


def rbf_affinity(X: Tensor, sigma: Tensor, zero_diagonal: bool) -> Tensor:
    """``S_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, shape (..., n, n); sigma (B,) or ().

    The diagonal is exactly 0 (``zero_diagonal``) or 1.
    """
    c = (1 / (2 * sigma.square())).reshape(sigma.shape + (1, 1))
    S = torch.exp(-c * _sq_dists(X))
    eye = torch.eye(X.shape[-2], dtype=torch.bool, device=X.device)
    return torch.where(eye, torch.zeros_like(S) if zero_diagonal else torch.ones_like(S), S)


def rbf_ratio_cut(X: Tensor, Z: Tensor, sigma: Tensor, zero_diagonal: bool):
    """Dense ratio cut: ``(sum_ij S_ij ||z_i - z_j||^2, degrees, S Z)``, per batch element."""
    S = rbf_affinity(X, sigma, zero_diagonal)
    cut = (S * _sq_dists(Z)).sum((-1, -2))
    return cut, S.sum(-1), S @ Z
