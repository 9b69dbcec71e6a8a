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

    A zero row has cosine 0 to every code (and, through ``where``, zero gradient); a row with
    NaN or inf has NaN cosines.
    """
    norm = torch.linalg.vector_norm(E, dim=-1, keepdim=True)
    zero = norm == 0
    safe = torch.where(zero, torch.ones_like(norm), norm)
    cos = (E @ codes.T) / (safe * torch.linalg.vector_norm(codes, dim=-1))
    return torch.where(zero, torch.zeros_like(cos), cos), norm


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


# ---------------------------------------------------------------- degree-weighted kernels (DESIGN §3b)
# X (B, n, d), Y (B, m, d), sigma (B,): K_ij = x_i.y_j (linear) or
# exp(-||x_i - y_j||^2 / (2 sigma^2)) (rbf), with ||x - y||^2 in the Gram form
# ||x||^2 + ||y||^2 - 2 x.y clamped at 0, as the kernels compute it.


def kernel_matrix(X: Tensor, Y: Tensor, kernel: str, sigma: Tensor) -> Tensor:
    """The (B, n, m) kernel matrix between the rows of X and of Y."""
    gram = X @ Y.transpose(-1, -2)
    if kernel == "linear":
        return gram
    sq = (X * X).sum(-1).unsqueeze(-1) + (Y * Y).sum(-1).unsqueeze(-2) - 2 * gram
    return torch.exp(-sq.clamp_min(0) / (2 * sigma.view(-1, 1, 1) ** 2))


def inverse_degrees(degrees: Tensor, clamp_eps: float) -> Tensor:
    """1 / max(d, clamp_eps) when clamp_eps > 0 (NaN stays NaN); else 1 / d, and NaN where
    d <= 0."""
    if clamp_eps > 0:
        return 1 / torch.where(degrees <= clamp_eps, torch.full_like(degrees, clamp_eps), degrees)
    positive = degrees > 0
    inv = 1 / torch.where(positive, degrees, torch.ones_like(degrees))
    return torch.where(positive, inv, torch.full_like(inv, float("nan")))


def degree_weighted_kernel(
    X: Tensor, sigma: Tensor, kernel: str, clamp_eps: float, return_kernel: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """``(D^-1 K, degrees, K)`` for X (B, n, d); K is empty unless ``return_kernel``.

    The RBF diagonal is exactly 1; the degrees are the raw row sums of K.
    """
    K = kernel_matrix(X, X, kernel, sigma)
    if kernel == "rbf":
        eye = torch.eye(X.shape[1], dtype=torch.bool, device=X.device)
        K = torch.where(eye, torch.ones_like(K), K)
    degrees = K.sum(-1)
    P = K * inverse_degrees(degrees, clamp_eps).unsqueeze(-1)
    return P, degrees, K if return_kernel else X.new_empty(0)


def rbf_row_sums(X: Tensor, Y: Tensor, weights: Tensor, sigma: Tensor) -> Tensor:
    """``s_i = sum_j w_j K(x_i, y_j)``, shape (B, n) (dense: forms the (B, n, m) matrix)."""
    return (kernel_matrix(X, Y, "rbf", sigma) * weights.unsqueeze(-2)).sum(-1)


def rbf_row_moments(X: Tensor, Y: Tensor, weights: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """``s_i`` as :func:`rbf_row_sums` and ``M_i = sum_j w_j K(x_i, y_j) y_j`` (B, n, d)."""
    S = kernel_matrix(X, Y, "rbf", sigma) * weights.unsqueeze(-2)
    return S.sum(-1), S @ Y

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


def rbf_affinity_rows(X: Tensor, X_cols: Tensor, sigma: Tensor, row_offset: int,
                      zero_diagonal: bool) -> Tensor:
    """Rectangular ``S_ij = exp(-||x_i - y_j||^2 / (2 sigma^2))``, shape (..., n, m), in the
    Gram form the kernels use; with ``zero_diagonal`` the self pairs (i, row_offset + i) are 0."""
    c = (1 / (2 * sigma.square())).reshape(sigma.shape + (1, 1))
    sq = (X.square().sum(-1).unsqueeze(-1) + X_cols.square().sum(-1).unsqueeze(-2)
          - 2 * (X @ X_cols.transpose(-1, -2))).clamp_min(0)
    S = torch.exp(-c * sq)
    if zero_diagonal:
        n, m = X.shape[-2], X_cols.shape[-2]
        rows = torch.arange(n, device=X.device)
        self_pair = rows.unsqueeze(-1) + row_offset == torch.arange(m, device=X.device)
        S = torch.where(self_pair, torch.zeros_like(S), S)
    return S


def rbf_ratio_cut_rows(X: Tensor, Z: Tensor, X_cols: Tensor, Z_cols: Tensor, sigma: Tensor,
                       row_offset: int, zero_diagonal: bool):
    """Dense rectangular ratio cut: ``(sum_ij S_ij ||z_i - w_j||^2, row degrees, S W,
    d cut / dW = 2 (diag(S^T 1) W - S^T Z))`` of the rows (X, Z) against the columns
    (X_cols, Z_cols = W), per batch element."""
    S = rbf_affinity_rows(X, X_cols, sigma, row_offset, zero_diagonal)
    r = (Z.square().sum(-1).unsqueeze(-1) + Z_cols.square().sum(-1).unsqueeze(-2)
         - 2 * (Z @ Z_cols.transpose(-1, -2))).clamp_min(0)
    St = S.transpose(-1, -2)
    cut_grad_cols = 2 * (St.sum(-1, keepdim=True) * Z_cols - St @ Z)
    return (S * r).sum((-1, -2)), S.sum(-1), S @ Z_cols, cut_grad_cols

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
