"""Degree-weighted kernel matrices (classic KSC) and streaming kernel degrees (GenKSC).

Kernel spectral clustering (Alzate & Suykens 2010) works with a kernel matrix
K, its degrees ``d_i = sum_j K_ij`` and the random-walk matrix ``D^-1 K``; its
eigenproblem is ``D^-1 M_D K alpha = lambda alpha`` with the weighted centring
``M_D = I - 1 1^T D^-1 / (1^T D^-1 1)``. GenKSC needs only the degrees of a
linear kernel, ``d = Phi (Phi^T 1)``, and the weighted centre of the features.

Which function to call:

* :func:`degree_weighted_kernel` -- ``D^-1 K`` and the degrees (and K), batched.
* :func:`ksc_centered_kernel` -- ``D^-1 M_D K``, the matrix of the KSC eigenproblem.
* :func:`kernel_degrees` -- degrees without any n x n matrix; with ``Y``, the
  out-of-sample degrees of new points X against training points Y.
* :func:`inverse_degrees`, :func:`weighted_center` -- GenKSC's per-batch weights
  ``1/d_i`` and centre ``c = sum_i d_i^-1 phi_i / sum_i d_i^-1`` in O(nd).

Kernels: ``"linear"`` (``x_i . x_j``) and ``"rbf"``
(``exp(-||x_i - x_j||^2 / (2 sigma^2))``, one bandwidth per batch element).

Degrees <= 0 (a linear kernel on signed features; RBF out-of-sample degrees
that underflow) have no inverse. ``nonpositive="raise"`` (default) raises a
``ValueError`` naming how many rows and which; ``nonpositive="clamp"`` uses
``max(d_i, eps)`` in every inverse (``D^-1 K`` rows, weights, centre), whose
gradient with respect to ``d_i`` is then zero. Inside ``torch.compile`` the
check cannot raise: such rows come out NaN (never inf), so compile with
``"clamp"`` when degrees may be <= 0. Gradients flow to ``X`` (and ``Y``);
``sigma`` is a constant.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pydeepclust.ops import reference
from pydeepclust.ops._backend import call, extension_available
from pydeepclust.ops._checks import Deferred, check_bandwidth, check_tensor

KERNELS = ("linear", "rbf")
NONPOSITIVE = ("raise", "clamp")


def degree_weighted_kernel(
    X: Tensor,
    kernel: str = "rbf",
    sigma: float | Tensor | None = None,
    nonpositive: str = "raise",
    eps: float = 1e-6,
    return_kernel: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """``D^-1 K`` and the degrees of the kernel matrix of the rows of ``X``.

    Args:
        X: (B, n, d) or (n, d), float32 or float64.
        kernel: ``"rbf"`` or ``"linear"``.
        sigma: RBF bandwidth: a positive float, or a (B,) tensor (one per batch
            element; a 0-d tensor for 2-D ``X``). Required for ``"rbf"``.
        nonpositive: ``"raise"`` or ``"clamp"`` for degrees <= 0 (see the module doc).
        eps: the clamp floor for ``nonpositive="clamp"``.
        return_kernel: also return K.

    Returns:
        ``(P, degrees)`` or ``(P, degrees, K)``: ``P = D^-1 K`` and K of shape
        (B, n, n) (or (n, n)), ``degrees = K 1`` (B, n) (the raw row sums, before any
        clamp). Rows of P sum to 1 where the degree is used unclamped. Differentiable
        with respect to ``X``.
    """
    return _degree_weighted_kernel(X, kernel, sigma, nonpositive, eps, return_kernel,
                                   "degree_weighted_kernel")


def _degree_weighted_kernel(X, kernel, sigma, nonpositive, eps, return_kernel, fn: str):
    """:func:`degree_weighted_kernel`, its errors naming the public op ``fn``."""
    checks = Deferred()
    X3, sig, unbatched = _prepare(X, kernel, sigma, fn, checks=checks)
    clamp_eps = _clamp_eps(nonpositive, eps, fn)
    B, n, d = X3.shape
    P, degrees, K = call(
        "degree_weighted_kernel", _native_dwk, reference.degree_weighted_kernel,
        (X3, sig, kernel, clamp_eps, bool(return_kernel)), device=X3.device, dtype=X3.dtype,
        grad_inputs=(X3,), sizes=(B, n, d), variant=kernel,
        dense_bytes=4 * X3.element_size() * B * n * n)
    out = (P, degrees, K) if return_kernel else (P, degrees)
    if unbatched:
        out = tuple(t.squeeze(0) for t in out)
    if clamp_eps == 0:
        _defer_nonpositive(checks, out[1], fn)  # rows named in the caller's shape
    checks.run()  # rows of X, sigma, degrees: one host sync
    return out


def ksc_centered_kernel(
    X: Tensor,
    kernel: str = "rbf",
    sigma: float | Tensor | None = None,
    nonpositive: str = "raise",
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """``D^-1 M_D K`` of classic KSC (Alzate & Suykens 2010), and the degrees.

    ``M_D = I - 1 1^T D^-1 / (1^T D^-1 1)``, so with ``P = D^-1 K`` and ``v = 1/d``:
    ``D^-1 M_D K = P - v (1^T P) / (1^T v)``. Its eigenvectors ``alpha`` (of the
    non-symmetric problem ``D^-1 M_D K alpha = lambda alpha``, e.g. by
    ``torch.linalg.eig``) give the KSC score variables. Arguments as
    :func:`degree_weighted_kernel`; returns ``(A, degrees)`` of shapes (B, n, n), (B, n).
    """
    fn = "ksc_centered_kernel"
    P, degrees = _degree_weighted_kernel(X, kernel, sigma, nonpositive, eps, False, fn)
    v = reference.inverse_degrees(degrees, _clamp_eps(nonpositive, eps, fn))
    column_mass = P.sum(-2, keepdim=True)  # 1^T D^-1 K
    return P - v.unsqueeze(-1) * column_mass / v.sum(-1)[..., None, None], degrees


def kernel_degrees(
    X: Tensor,
    Y: Tensor | None = None,
    kernel: str = "rbf",
    sigma: float | Tensor | None = None,
    check_finite: bool = True,
) -> Tensor:
    """Degrees ``d_i = sum_j K(x_i, y_j)`` without forming a kernel matrix.

    ``Y=None`` means ``Y = X`` (the training degrees); otherwise the degrees of the
    rows of X against the points Y (KSC's out-of-sample extension). Linear kernel:
    ``X (Y^T 1)`` in O(nd). RBF: row x column tiles, O(tile^2) scratch per thread
    (CPU) or row tiles against all of Y through cuBLAS Gram products (CUDA).
    Differentiable with respect to X and Y.

    Args:
        X: (B, n, d) or (n, d). Y: (B, m, d) or (m, d), same batch, width, dtype, device.
        kernel, sigma: as :func:`degree_weighted_kernel`.
        check_finite: raise ``ValueError`` naming rows of X or Y with NaN or inf (one O(nd)
            pass, as costly as the linear kernel itself; False for callers that check their
            data, e.g. GenKSC's training step).

    Returns the raw degrees (B, n) or (n,); they may be <= 0 for the linear kernel,
    and underflow to 0 for RBF points far from every y_j: invert them with
    :func:`inverse_degrees`.
    """
    fn = "kernel_degrees"
    checks = Deferred()
    X3, sig, unbatched = _prepare(X, kernel, sigma, fn, check_finite, checks)
    if Y is None:
        Y3 = X3
    else:
        check_tensor(Y, "Y", fn, ndim=(X.dim(),))
        if check_finite:
            checks.non_finite_rows(Y, "Y", fn)
        Y3 = Y.unsqueeze(0) if unbatched else Y
        if Y3.device != X3.device or Y3.dtype != X3.dtype:
            raise ValueError(f"{fn}: X and Y must share device and dtype, got "
                             f"{X3.device}/{X3.dtype} and {Y3.device}/{Y3.dtype}")
        if Y3.shape[0] != X3.shape[0] or Y3.shape[2] != X3.shape[2]:
            raise ValueError(f"{fn}: Y must have shape (B, m, d) = ({X3.shape[0]}, m, "
                             f"{X3.shape[2]}) to match X {tuple(X.shape)}, got {tuple(Y.shape)}")
    if kernel == "linear":
        degrees = (X3 @ Y3.sum(-2).unsqueeze(-1)).squeeze(-1)
    else:
        weights = Y3.new_ones(Y3.shape[:2])
        B, n, d = X3.shape
        m = Y3.shape[1]
        degrees = call("rbf_row_sums", _native_row_sums, reference.rbf_row_sums,
                       (X3, Y3, weights, sig), device=X3.device, dtype=X3.dtype,
                       grad_inputs=(X3, Y3), sizes=(B, n, m, d),
                       dense_bytes=3 * X3.element_size() * B * n * m)
    checks.run()  # rows of X and Y, sigma: one host sync (none without check_finite)
    return degrees.squeeze(0) if unbatched else degrees


def _native_dwk(X, sigma, kernel, clamp_eps, return_kernel):
    return torch.ops.pydeepclust.degree_weighted_kernel(X, sigma, kernel, clamp_eps, return_kernel)


def _native_row_sums(X, Y, weights, sigma):
    return torch.ops.pydeepclust.rbf_row_sums(X, Y, weights, sigma)


def inverse_degrees(degrees: Tensor, nonpositive: str = "raise", eps: float = 1e-6) -> Tensor:
    """``1 / d_i`` under the policy for degrees <= 0 (see the module doc); same shape."""
    check_tensor(degrees, "degrees", "inverse_degrees", min_dim=1)
    return _inverse(degrees, nonpositive, eps, "inverse_degrees")


def weighted_center(
    Phi: Tensor, degrees: Tensor | None = None, nonpositive: str = "raise", eps: float = 1e-6,
    check_finite: bool = True,
) -> Tensor:
    """GenKSC's weighted centre ``c = sum_i d_i^-1 phi_i / sum_i d_i^-1``, in O(nd).

    Args:
        Phi: features (B, n, d) or (n, d).
        degrees: (B, n) or (n,); default: the linear-kernel degrees ``Phi (Phi^T 1)``.
        nonpositive, eps: the policy for degrees <= 0 (see the module doc).
        check_finite: as :func:`kernel_degrees`, for the rows of Phi.

    Returns c of shape (B, d) or (d,); ``Phi - c.unsqueeze(-2)`` is the centred
    feature map (``M_D`` applied to the features). Differentiable w.r.t. Phi.
    """
    fn = "weighted_center"
    check_tensor(Phi, "Phi", fn, ndim=(2, 3))
    checks = Deferred()
    if check_finite:
        checks.non_finite_rows(Phi, "Phi", fn)
    if Phi.shape[-2] == 0:
        raise ValueError(f"{fn}: Phi has no rows (shape {tuple(Phi.shape)}): a weighted mean "
                         "needs at least one")
    if degrees is None:
        degrees = kernel_degrees(Phi, kernel="linear", check_finite=False)  # Phi checked
    elif not isinstance(degrees, Tensor) or degrees.shape != Phi.shape[:-1]:
        raise ValueError(f"{fn}: degrees must have shape {tuple(Phi.shape[:-1])} (Phi without "
                         f"its last dimension), got {getattr(degrees, 'shape', type(degrees))}")
    v = _inverse(degrees, nonpositive, eps, fn, checks)
    checks.run()  # rows of Phi, degrees: one host sync
    return (v.unsqueeze(-1) * Phi).sum(-2) / v.sum(-1, keepdim=True)


def _prepare(X, kernel, sigma, fn, check_finite: bool = True,
             checks: Deferred | None = None) -> tuple[Tensor, Tensor, bool]:
    """Validate X, kernel and sigma; return X as (B, n, d), sigma as (B,), and unbatched.
    The value checks (rows of X, a sigma tensor) go to ``checks`` when given."""
    check_tensor(X, "X", fn, ndim=(2, 3))
    own = checks is None
    checks = Deferred() if own else checks
    if check_finite:
        checks.non_finite_rows(X, "X", fn)
    if kernel not in KERNELS:
        raise ValueError(f"{fn}: kernel must be one of {KERNELS}, got {kernel!r}")
    unbatched = X.dim() == 2
    X3 = X.unsqueeze(0) if unbatched else X
    B = X3.shape[0]
    if kernel == "linear":
        if sigma is not None:
            raise ValueError(f"{fn}: sigma is the RBF bandwidth; the linear kernel takes none")
        return X3, X3.new_ones(B), unbatched
    if sigma is None:
        raise ValueError(f"{fn}: the rbf kernel needs a bandwidth sigma (a float or a (B,) tensor)")
    sigma = check_bandwidth(sigma, X, [(), (1,)] if unbatched else [(B,)], fn, checks)
    if own:
        checks.run()
    sig = X3.new_full((B,), sigma) if isinstance(sigma, float) else sigma.reshape(-1).expand(B)
    return X3, sig.contiguous(), unbatched


def _inverse(degrees: Tensor, nonpositive: str, eps: float, fn: str,
             checks: Deferred | None = None) -> Tensor:
    clamp_eps = _clamp_eps(nonpositive, eps, fn)
    if clamp_eps == 0:
        if checks is None:
            _raise_on_nonpositive(degrees, fn)
        else:
            _defer_nonpositive(checks, degrees, fn)
    return reference.inverse_degrees(degrees, clamp_eps)


def _defer_nonpositive(checks: Deferred, degrees: Tensor, fn: str) -> None:
    if degrees.numel():
        checks.add((~(torch.isfinite(degrees) & (degrees > 0))).any(),
                   lambda: _raise_on_nonpositive(degrees, fn))


def _clamp_eps(nonpositive: str, eps: float, fn: str) -> float:
    if nonpositive not in NONPOSITIVE:
        raise ValueError(f"{fn}: nonpositive must be one of {NONPOSITIVE}, got {nonpositive!r}")
    if nonpositive == "raise":
        return 0.0
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"{fn}: eps must be a positive float for nonpositive='clamp', got {eps!r}")
    return float(eps)


def _raise_on_nonpositive(degrees: Tensor, fn: str) -> None:
    """Name the rows whose degree is <= 0 or not finite (skipped under torch.compile)."""
    if torch.compiler.is_compiling() or degrees.numel() == 0:
        return
    bad = ~(torch.isfinite(degrees) & (degrees > 0))
    if not bool(bad.any()):
        return
    rows = bad.nonzero().tolist()
    shown = ", ".join(str(tuple(r) if len(r) > 1 else r[0]) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    first = degrees[tuple(torch.tensor(rows[0]))].item()
    raise ValueError(
        f"{fn}: {len(rows)} degree(s) are <= 0 or not finite (rows {shown}{more}; first value "
        f"{first:.6g}); D^-1 is undefined there. A linear kernel on signed features can do "
        f"this: use nonpositive='clamp' (with eps) or non-negative features"
    )


# Fake kernels (for torch.compile) and the autograd formulas of the native ops.
if extension_available():

    @torch.library.register_fake("pydeepclust::degree_weighted_kernel")
    def _dwk_fake(X, sigma, kernel, clamp_eps, return_kernel):
        B, n, _ = X.shape
        K = X.new_empty((B, n, n)) if return_kernel else X.new_empty(0)
        return X.new_empty((B, n, n)), X.new_empty((B, n)), K

    @torch.library.register_fake("pydeepclust::degree_weighted_kernel_backward")
    def _dwk_backward_fake(grad_P, grad_degrees, grad_K, X, sigma, P, degrees, kernel, clamp_eps):
        return torch.empty_like(X, memory_format=torch.contiguous_format)

    @torch.library.register_fake("pydeepclust::rbf_row_sums")
    def _rbf_sums_fake(X, Y, weights, sigma):
        return X.new_empty(X.shape[:2])

    @torch.library.register_fake("pydeepclust::rbf_row_moments")
    def _rbf_moments_fake(X, Y, weights, sigma):
        return X.new_empty(X.shape[:2]), X.new_empty(X.shape)

    def _dwk_setup_context(ctx, inputs, output):
        X, sigma, kernel, clamp_eps, return_kernel = inputs
        P, degrees, _ = output
        ctx.save_for_backward(X, sigma, P, degrees)
        ctx.kernel, ctx.clamp_eps, ctx.return_kernel = kernel, clamp_eps, return_kernel

    def _dwk_backward(ctx, grad_P, grad_degrees, grad_K):
        X, sigma, P, degrees = ctx.saved_tensors
        grad_X = None
        if ctx.needs_input_grad[0]:
            grad_X = torch.ops.pydeepclust.degree_weighted_kernel_backward(
                grad_P, grad_degrees, grad_K if ctx.return_kernel else None,
                X, sigma, P, degrees, ctx.kernel, ctx.clamp_eps,
            )
        return grad_X, None, None, None, None

    torch.library.register_autograd(
        "pydeepclust::degree_weighted_kernel", _dwk_backward, setup_context=_dwk_setup_context
    )

    def _rbf_sums_setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _rbf_sums_backward(ctx, grad):
        # s_i = sum_j w_j K_ij, dK_ij/dx_i = -2 gamma K_ij (x_i - y_j), and symmetrically
        # for y_j: each gradient is one more streaming pass with moments.
        X, Y, weights, sigma = ctx.saved_tensors
        two_gamma = (1 / sigma**2).view(-1, 1, 1)
        grad_X = grad_Y = grad_w = None
        if ctx.needs_input_grad[0]:
            s, M = torch.ops.pydeepclust.rbf_row_moments(X, Y, weights, sigma)
            grad_X = -two_gamma * grad.unsqueeze(-1) * (s.unsqueeze(-1) * X - M)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            s_t, M_t = torch.ops.pydeepclust.rbf_row_moments(Y, X, grad.contiguous(), sigma)
            grad_Y = -two_gamma * weights.unsqueeze(-1) * (s_t.unsqueeze(-1) * Y - M_t)
            grad_w = s_t
        return grad_X, grad_Y, grad_w, None

    torch.library.register_autograd(
        "pydeepclust::rbf_row_sums", _rbf_sums_backward, setup_context=_rbf_sums_setup_context
    )


__all__ = [
    "KERNELS",
    "degree_weighted_kernel",
    "inverse_degrees",
    "kernel_degrees",
    "ksc_centered_kernel",
    "weighted_center",
]
