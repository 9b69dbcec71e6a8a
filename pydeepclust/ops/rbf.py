"""RBF affinities with random bandwidths and the streaming ratio cut of RSM (DESIGN §3c).

Typical RSM step, one call per batch::

    sigma = sample_bandwidths(x, low=0.5, high=2.0, generator=gen)   # relative to the median distance
    loss = rbf_ratio_cut(x, z, sigma) + lam * orthogonality_penalty(z)

:func:`rbf_ratio_cut` never forms the n x n affinity matrix (forward or backward),
so its memory is O(n (d + k)); :func:`rbf_affinity` materialises S when you need it.
:func:`rbf_ratio_cut_rows` is its rectangular form (a slice of rows against the whole
batch), whose sums over the slices of a batch give the square op's: data-parallel RSM.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from pydeepclust.ops import reference
from pydeepclust.ops._backend import call, extension_available
from pydeepclust.ops._checks import SKIP, Deferred, check_bandwidth, check_tensor

NORMALIZATIONS = ("degree", "batch", "sum")
DISTRIBUTIONS = ("uniform", "log-uniform")


def sample_bandwidths(
    X: Tensor,
    low: float = 0.5,
    high: float = 2.0,
    *,
    scale: str | float = "median",
    distribution: str = "uniform",
    generator: torch.Generator | None = None,
    max_points: int = 2048,
    n_neighbors: int = 7,
) -> Tensor:
    """One random RBF bandwidth per batch element: ``sigma_b = f_b * scale_b``.

    Args:
        X: (n, d) or (B, n, d) batch of inputs.
        low, high: range of the factor ``f``, ``0 < low <= high``.
        scale: ``"median"``: each batch element's median pairwise distance (estimated on
            at most ``max_points`` rows drawn without replacement, so the cost stays
            O(max_points^2) for big batches); ``"knn"``: the median distance from a row to
            its ``n_neighbors``-th nearest neighbour in the batch (at most ``max_points``
            query rows against all n, in chunks: O(256 n) memory) -- the local scale of
            SpectralNet, which keeps the graph of nested or elongated clusters (two
            circles) from bridging them; or a positive number (an absolute scale).
        distribution: ``"uniform"`` on [low, high] or ``"log-uniform"`` (uniform in log).
        generator: a seeded ``torch.Generator`` for reproducible draws (draws happen on its
            device; the default generator when ``None``).
        max_points: subsample size for the median (>= 2).
        n_neighbors: which neighbour sets the ``"knn"`` scale (1 <= n_neighbors < n).

    Returns:
        sigma, shape () for an unbatched X, (B,) otherwise, in X's dtype and device.
    """
    fn = "sample_bandwidths"
    check_tensor(X, "X", fn, ndim=(2, 3))
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and 0 < low <= high
            and math.isfinite(high)):
        raise ValueError(f"{fn}: need finite 0 < low <= high, got low={low!r}, high={high!r}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"{fn}: distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if isinstance(max_points, bool) or not isinstance(max_points, numbers.Integral) or \
            max_points < 2:
        raise ValueError(f"{fn}: max_points must be an integer >= 2, got {max_points!r}")
    batched = X.dim() == 3
    Xb = X if batched else X.unsqueeze(0)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(Xb.shape[0], generator=generator, dtype=torch.float64, device=draw_device)
    if distribution == "uniform":
        factor = low + (high - low) * u
    else:
        factor = torch.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
    if isinstance(scale, str):
        if scale == "median":
            base = _median_distances(Xb, max_points, generator, fn)
        elif scale == "knn":
            base = _knn_distances(Xb, n_neighbors, max_points, generator, fn)
        else:
            raise ValueError(f"{fn}: scale must be 'median', 'knn' or a positive number, got "
                             f"{scale!r}")
    elif isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale < math.inf:
        base = torch.full_like(factor, float(scale))
    else:
        raise ValueError(f"{fn}: scale must be 'median', 'knn' or a positive number, got "
                         f"{scale!r}")
    sigma = (factor.cpu() * base.cpu()).to(dtype=X.dtype, device=X.device)
    return sigma if batched else sigma.squeeze(0)


def _median_distances(Xb: Tensor, max_points: int, generator, fn: str) -> Tensor:
    """Median off-diagonal pairwise distance of each batch element (float64, CPU)."""
    B, n, _ = Xb.shape
    if n < 2:
        raise ValueError(f"{fn}: scale='median' needs at least 2 rows in X, got n = {n}")
    m = min(n, max_points)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    upper = torch.triu_indices(m, m, offset=1, device=Xb.device)
    out = torch.empty(B, dtype=torch.float64)
    for b in range(B):
        rows = torch.randperm(n, generator=generator, device=draw_device)[:m].to(Xb.device)
        sub = Xb[b, rows].double()
        out[b] = torch.cdist(sub, sub)[upper[0], upper[1]].median()
    return _checked_scale(out, fn)


def _checked_scale(out: Tensor, fn: str) -> Tensor:
    if not bool((out > 0).all() and torch.isfinite(out).all()):
        raise ValueError(
            f"{fn}: the data scale of X is {out.tolist()} (equal rows, or "
            "NaN/inf): pass an absolute scale=<float> instead"
        )
    return out


def _knn_distances(Xb: Tensor, n_neighbors, max_points: int, generator, fn: str) -> Tensor:
    """Median distance to the ``n_neighbors``-th nearest other row, per batch element."""
    B, n, _ = Xb.shape
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral) or \
            not 1 <= n_neighbors < n:
        raise ValueError(f"{fn}: scale='knn' needs an integer 1 <= n_neighbors < n = {n}, got "
                         f"n_neighbors={n_neighbors!r}")
    m = min(n, max_points)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    out = torch.empty(B, dtype=torch.float64)
    for b in range(B):
        rows = torch.randperm(n, generator=generator, device=draw_device)[:m].to(Xb.device)
        X = Xb[b]
        kth = []
        for chunk in rows.split(256):
            # in X's dtype, then float64: a float64 copy of a big batch (65,536 x 784: 392 MiB)
            # would be the largest allocation of an RSM step
            dist = torch.cdist(X[chunk], X).double()
            dist[torch.arange(len(chunk), device=Xb.device), chunk] = math.inf  # not itself
            kth.append(dist.kthvalue(n_neighbors, dim=1).values)
        out[b] = torch.cat(kth).median()
    return _checked_scale(out, fn)


def rbf_affinity(X: Tensor, sigma: Tensor | float, zero_diagonal: bool = True,
                 check_finite: bool = True) -> Tensor:
    """Materialised RBF affinities ``S_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``.

    Args:
        X: (n, d) or (B, n, d).
        sigma: a positive number, or a tensor with one bandwidth per batch element
            (shape () or (B,), e.g. from :func:`sample_bandwidths`). Not differentiated.
        zero_diagonal: S_ii = 0 (no self-loops) instead of 1.
        check_finite: raise ``ValueError`` naming rows of X with NaN or inf, and for a
            sigma tensor with values <= 0 or not finite (one host synchronisation for
            both); ``False`` for callers that check their data (no sync; a bad sigma then
            gives NaN or inf affinities instead of an error).

    Returns:
        S of shape (n, n) or (B, n, n), differentiable with respect to X.
        O(n^2) memory: for the RSM loss use :func:`rbf_ratio_cut`, which streams.
    """
    fn = "rbf_affinity"
    sigma = _check_rbf(X, None, sigma, fn, check_finite)
    B = X.shape[0] if X.dim() == 3 else 1
    n, d = X.shape[-2:]
    return call(fn, _native_affinity, reference.rbf_affinity, (X, sigma, bool(zero_diagonal)),
                device=X.device, dtype=X.dtype, grad_inputs=(X,), sizes=(B, n, d),
                dense_bytes=4 * X.element_size() * B * n * n)


def rbf_ratio_cut(
    X: Tensor,
    Z: Tensor,
    sigma: Tensor | float,
    normalization: str = "degree",
    zero_diagonal: bool = True,
    check_finite: bool = True,
    return_degrees: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """RSM's ratio cut ``sum_ij S_ij ||z_i - z_j||^2 = 2 tr(Z^T (D - S) Z)``, normalised.

    S is the RBF affinity of the inputs X (see :func:`rbf_affinity`); it is never
    materialised: forward and backward stream over tiles of rows, recomputing S,
    in O(n (d + k)) memory.

    Args:
        X: inputs, (n, d) or (B, n, d).
        Z: embeddings, (n, k) or (B, n, k), same batch and n as X.
        sigma: positive number or one bandwidth per batch element (not differentiated).
        normalization: how the raw cut is scaled, per batch element:
            ``"degree"`` (default): divided by ``sum_ij S_ij`` -- S rescaled so that the
            mean degree is 1, then divided by the batch size n. The loss is then the
            S-weighted mean of ``||z_i - z_j||^2``, independent of sigma's overall
            effect on the size of S and of n, so a fixed penalty weight (RSM's
            ``lambda ||Z^T Z - I||^2``) keeps its meaning across batches and bandwidths;
            without it the cut grows like n^2 and swamps the penalty (a prototype
            collapsed to rank 1). The normaliser is differentiated (it depends on X).
            ``"batch"``: divided by n. ``"sum"``: the raw cut.
        zero_diagonal: exclude self-loops (S_ii = 0). They add nothing to the cut but
            add 1 to every degree, so they matter for ``"degree"``.
        check_finite: as :func:`rbf_affinity` (rows of X, values of sigma; one sync).
        return_degrees: also return the degrees ``d_i = sum_j S_ij``, shape (n,) or (B, n)
            (differentiable with respect to X): e.g. to combine the raw cuts and degree sums
            of several blocks of a batch (data-parallel RSM).

    Returns:
        the loss, shape () for an unbatched X, (B,) otherwise; differentiable with
        respect to X and Z. A batch with zero normaliser (n = 0, or every affinity
        underflowed to 0) has loss 0. With ``return_degrees``: ``(loss, degrees)``.
    """
    fn = "rbf_ratio_cut"
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"{fn}: normalization must be one of {NORMALIZATIONS}, got "
                         f"{normalization!r}")
    sigma = _check_rbf(X, Z, sigma, fn, check_finite)
    B = X.shape[0] if X.dim() == 3 else 1
    n, d = X.shape[-2:]
    cut, degree, _ = call(fn, _native_ratio_cut, reference.rbf_ratio_cut,
                          (X, Z, sigma, bool(zero_diagonal)),
                          device=X.device, dtype=X.dtype, grad_inputs=(X, Z),
                          sizes=(B, n, d, Z.shape[-1]),
                          dense_bytes=8 * X.element_size() * B * n * n)
    if normalization == "batch":
        cut = cut / max(X.shape[-2], 1)
    elif normalization == "degree":
        total = degree.sum(-1)
        cut = cut / torch.where(total > 0, total, torch.ones_like(total))  # 0 where total = 0
    return (cut, degree) if return_degrees else cut


def rbf_ratio_cut_rows(
    X: Tensor,
    Z: Tensor,
    X_cols: Tensor,
    Z_cols: Tensor,
    sigma: Tensor | float,
    row_offset: int = 0,
    zero_diagonal: bool = True,
    check_finite: bool = True,
) -> tuple[Tensor, Tensor]:
    """Rectangular (row-slice) form of :func:`rbf_ratio_cut`, for data-parallel RSM.

    For rows ``(x_i, z_i)`` and columns ``(y_j, w_j)``, with
    ``S_ij = exp(-||x_i - y_j||^2 / (2 sigma^2))``::

        cut = sum_{i in rows} sum_{j in cols} S_ij ||z_i - w_j||^2
        d_i = sum_{j in cols} S_ij                       (row degrees)

    streamed over tiles like :func:`rbf_ratio_cut` (forward and backward recompute S tile
    by tile; no n x m matrix beyond a tile): O((n + m) (d + k)) memory.

    Under ``torch.distributed`` each rank holds a contiguous slice ``X[a:a+n]`` of the
    global batch (rows) and gathers the whole batch (columns), with a gather whose
    backward is the adjoint reduce-scatter-sum (DESIGN §6)::

        X_all, Z_all = all_gather_with_grad(X), all_gather_with_grad(Z)
        cut, deg = rbf_ratio_cut_rows(X, Z, X_all, Z_all, sigma, row_offset=a)
        cut = all_reduce_sum_with_grad(cut)          # = rbf_ratio_cut(X_all, Z_all, sigma, "sum")
        total = all_reduce_sum_with_grad(deg.sum(-1))  # = sum_ij S_ij over the global batch
        loss = cut / total                           # = rbf_ratio_cut(..., "degree")

    The slices' cuts and degree sums add up to the square op's on the concatenated batch,
    and so do their gradients (each x_i gets its row gradient from its own rank and its
    column gradients, through the gather's backward, from every rank). All ranks must
    use the same sigma (draw it on rank 0 and broadcast it). With ``row_offset = 0`` and
    the columns equal to the rows this is the square op: same cut, degrees, gradients.

    Args:
        X: row inputs, (n, d) or (B, n, d).
        Z: row embeddings, (n, k) or (B, n, k), same batch and n as X.
        X_cols: column inputs, (m, d) or (B, m, d), same batch and d as X.
        Z_cols: column embeddings, (m, k) or (B, m, k), same batch and m as X_cols and
            same k as Z.
        sigma: positive number or one bandwidth per batch element (not differentiated).
        row_offset: index of the first row among the columns: row i is column
            ``row_offset + i``. Used (and checked: ``0 <= row_offset`` and
            ``row_offset + n <= m``) only with ``zero_diagonal``.
        zero_diagonal: exclude the self pairs ``(i, row_offset + i)`` (S = 0 there), as
            :func:`rbf_ratio_cut` excludes ``S_ii``. Without it every pair is an ordinary
            affinity of its two inputs (about 1 for a self pair).
        check_finite: as :func:`rbf_ratio_cut` (rows of X and X_cols, values of sigma;
            one host sync).

    Returns:
        ``(cut, degrees)``: the raw partial cut, shape () or (B,), and the row degrees,
        (n,) or (B, n); both differentiable with respect to X, Z, X_cols and Z_cols.
    """
    fn = "rbf_ratio_cut_rows"
    if isinstance(row_offset, bool) or not isinstance(row_offset, numbers.Integral):
        raise TypeError(f"{fn}: row_offset must be an int, got {type(row_offset).__name__}")
    row_offset = int(row_offset)
    check_tensor(X, "X", fn, ndim=(2, 3))
    check_tensor(Z, "Z", fn, ndim=(2, 3))
    check_tensor(X_cols, "X_cols", fn, ndim=(2, 3))
    check_tensor(Z_cols, "Z_cols", fn, ndim=(2, 3))
    for name, t in (("Z", Z), ("X_cols", X_cols), ("Z_cols", Z_cols)):
        if t.device != X.device or t.dtype != X.dtype:
            raise ValueError(f"{fn}: X and {name} must have the same device and dtype, got "
                             f"{X.device}/{X.dtype} and {t.device}/{t.dtype}")
    if Z.dim() != X.dim() or Z.shape[:-1] != X.shape[:-1]:
        raise ValueError(f"{fn}: Z must have shape (..., n, k) with the batch and n of X "
                         f"{tuple(X.shape[:-1])}, got {tuple(Z.shape)}")
    if X_cols.dim() != X.dim() or X_cols.shape[:-2] != X.shape[:-2] or \
            X_cols.shape[-1] != X.shape[-1]:
        raise ValueError(f"{fn}: X_cols must have shape (..., m, d) with the batch and d of X "
                         f"{tuple(X.shape)}, got {tuple(X_cols.shape)}")
    if Z_cols.dim() != X_cols.dim() or Z_cols.shape[:-1] != X_cols.shape[:-1] or \
            Z_cols.shape[-1] != Z.shape[-1]:
        raise ValueError(f"{fn}: Z_cols must have shape (..., m, k) with the batch and m of "
                         f"X_cols {tuple(X_cols.shape[:-1])} and the k of Z ({Z.shape[-1]}), "
                         f"got {tuple(Z_cols.shape)}")
    n, m = X.shape[-2], X_cols.shape[-2]
    if zero_diagonal and not 0 <= row_offset <= m - n:
        raise ValueError(f"{fn}: row_offset must satisfy 0 <= row_offset and row_offset + n <= m "
                         f"(row i is column row_offset + i) with zero_diagonal, got "
                         f"row_offset={row_offset}, n={n}, m={m}")
    batch_shape = tuple(X.shape[:-2])
    checks = Deferred()
    if check_finite:
        checks.non_finite_rows(X, "X", fn)
        checks.non_finite_rows(X_cols, "X_cols", fn)
    one = [(), (1,)]
    sigma = check_bandwidth(sigma, X, one if batch_shape in [(), (1,)] else [batch_shape], fn,
                            checks if check_finite else SKIP)
    checks.run()
    sigma = X.new_full(batch_shape, sigma) if isinstance(sigma, float) else \
        sigma.reshape(batch_shape)
    B = X.shape[0] if X.dim() == 3 else 1
    d, k = X.shape[-1], Z.shape[-1]
    cut, degree, _, _ = call(fn, _native_ratio_cut_rows, reference.rbf_ratio_cut_rows,
                          (X, Z, X_cols, Z_cols, sigma, row_offset, bool(zero_diagonal)),
                          device=X.device, dtype=X.dtype, grad_inputs=(X, Z, X_cols, Z_cols),
                          sizes=(B, n, m, d, k),
                          dense_bytes=8 * X.element_size() * B * n * m)
    return cut, degree


def _check_rbf(X: Tensor, Z: Tensor | None, sigma, fn: str, check_finite: bool) -> Tensor:
    """Validate X (and Z); return sigma as a tensor of shape () or (B,) in X's dtype. The
    value checks (rows of X, a sigma tensor) share one host sync, none without check_finite."""
    check_tensor(X, "X", fn, ndim=(2, 3))
    checks = Deferred()
    # exp(-inf) = 0 would hide a bad row of X; NaN/inf in Z propagate into the loss anyway
    if check_finite:
        checks.non_finite_rows(X, "X", fn)
    if Z is not None:
        check_tensor(Z, "Z", fn, ndim=(2, 3))
        if Z.device != X.device or Z.dtype != X.dtype:
            raise ValueError(f"{fn}: X and Z must have the same device and dtype, got "
                             f"{X.device}/{X.dtype} and {Z.device}/{Z.dtype}")
        if Z.dim() != X.dim() or Z.shape[:-1] != X.shape[:-1]:
            raise ValueError(
                f"{fn}: Z must have shape (..., n, k) with the batch and n of X "
                f"{tuple(X.shape[:-1])}, got {tuple(Z.shape)}"
            )
    batch_shape = tuple(X.shape[:-2])
    one = [(), (1,)]  # a single bandwidth, also for a batch of one
    sigma = check_bandwidth(sigma, X, one if batch_shape in [(), (1,)] else [batch_shape], fn,
                            checks if check_finite else SKIP)
    checks.run()
    if isinstance(sigma, float):
        return X.new_full(batch_shape, sigma)
    return sigma.reshape(batch_shape)


def _native_affinity(X, sigma, zero_diagonal):
    return torch.ops.pydeepclust.rbf_affinity(X, sigma, zero_diagonal)


def _native_ratio_cut(X, Z, sigma, zero_diagonal):
    return torch.ops.pydeepclust.rbf_ratio_cut(X, Z, sigma, zero_diagonal)


def _native_ratio_cut_rows(X, Z, X_cols, Z_cols, sigma, row_offset, zero_diagonal):
    return torch.ops.pydeepclust.rbf_ratio_cut_rows(X, Z, X_cols, Z_cols, sigma, row_offset,
                                                    zero_diagonal)


# Fake kernels (for torch.compile) and the autograd formulas of the native ops.
if extension_available():

    @torch.library.register_fake("pydeepclust::rbf_affinity")
    def _affinity_fake(X, sigma, zero_diagonal):
        return X.new_empty((*X.shape[:-1], X.shape[-2]))

    @torch.library.register_fake("pydeepclust::rbf_ratio_cut")
    def _ratio_cut_fake(X, Z, sigma, zero_diagonal):
        return X.new_empty(X.shape[:-2]), X.new_empty(X.shape[:-1]), torch.empty_like(
            Z, memory_format=torch.contiguous_format)

    @torch.library.register_fake("pydeepclust::rbf_ratio_cut_backward_x")
    def _ratio_cut_backward_x_fake(X, Z, sigma, grad_cut, grad_degree, zero_diagonal):
        return torch.empty_like(X, memory_format=torch.contiguous_format)

    def _affinity_setup_context(ctx, inputs, output):
        X, sigma, _ = inputs
        ctx.save_for_backward(X, sigma, output)

    def _affinity_backward(ctx, grad_S):
        # L = sum_ab g_ab S_ab; dS_ij/dx_i = -2c S_ij (x_i - x_j), c = 1 / (2 sigma^2):
        # dL/dx_i = -2c (x_i sum_j M_ij - (M X)_i), M = (g + g^T) * S (diagonal: x_i - x_i = 0).
        X, sigma, S = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        M = (grad_S + grad_S.transpose(-1, -2)) * S
        M = M * (1 - torch.eye(S.shape[-1], dtype=S.dtype, device=S.device))
        c = (1 / (2 * sigma.square())).reshape(sigma.shape + (1, 1))
        return -2 * c * (X * M.sum(-1, keepdim=True) - M @ X), None, None

    torch.library.register_autograd(
        "pydeepclust::rbf_affinity", _affinity_backward, setup_context=_affinity_setup_context
    )

    def _ratio_cut_setup_context(ctx, inputs, output):
        X, Z, sigma, zero_diagonal = inputs
        _, degree, SZ = output
        ctx.save_for_backward(X, Z, sigma, degree, SZ)
        ctx.zero_diagonal = zero_diagonal

    def _ratio_cut_backward(ctx, grad_cut, grad_degree, grad_SZ):
        # SZ is returned for this backward only and is not differentiated (the public
        # wrapper never exposes it). Gradients (rbf.h): dZ = 4 g_c (D Z - S Z);
        # dX streams over S again in the native op.
        X, Z, sigma, degree, SZ = ctx.saved_tensors
        grad_X = grad_Z = None
        if grad_cut is None:
            grad_cut = torch.zeros_like(sigma)
        if grad_degree is None:
            grad_degree = torch.zeros_like(degree)
        if ctx.needs_input_grad[1]:
            g = grad_cut.reshape(grad_cut.shape + (1, 1))
            grad_Z = 4 * g * (degree.unsqueeze(-1) * Z - SZ)
        if ctx.needs_input_grad[0]:
            grad_X = torch.ops.pydeepclust.rbf_ratio_cut_backward_x(
                X, Z, sigma, grad_cut, grad_degree, ctx.zero_diagonal
            )
        return grad_X, grad_Z, None, None

    torch.library.register_autograd(
        "pydeepclust::rbf_ratio_cut", _ratio_cut_backward, setup_context=_ratio_cut_setup_context
    )

    @torch.library.register_fake("pydeepclust::rbf_ratio_cut_rows")
    def _ratio_cut_rows_fake(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal):
        return X.new_empty(X.shape[:-2]), X.new_empty(X.shape[:-1]), torch.empty_like(
            Z, memory_format=torch.contiguous_format), torch.empty_like(
            Zc, memory_format=torch.contiguous_format)

    @torch.library.register_fake("pydeepclust::rbf_ratio_cut_rows_backward")
    def _ratio_cut_rows_backward_fake(X, Z, Xc, Zc, sigma, grad_cut, grad_degree, row_offset,
                                      zero_diagonal, output_mask):
        return tuple(torch.empty_like(t, memory_format=torch.contiguous_format)
                     for t in (X, Xc))

    def _ratio_cut_rows_setup_context(ctx, inputs, output):
        X, Z, Xc, Zc, sigma, row_offset, zero_diagonal = inputs
        _, degree, SZ, cut_grad_Zc = output
        ctx.save_for_backward(X, Z, Xc, Zc, sigma, degree, SZ, cut_grad_Zc)
        ctx.row_offset = row_offset
        ctx.zero_diagonal = zero_diagonal

    def _ratio_cut_rows_backward(ctx, grad_cut, grad_degree, grad_SZ, grad_cut_grad_Zc):
        # SZ and cut_grad_Zc are not differentiated (the public wrapper never exposes them).
        # Gradients (rbf.h): dZ = 2 g_c (D Z - S Zc) and dZc = g_c d cut / dZc from the
        # forward's outputs; dX and dXc stream over S again.
        X, Z, Xc, Zc, sigma, degree, SZ, cut_grad_Zc = ctx.saved_tensors
        need_x, need_z, need_xc, need_zc = ctx.needs_input_grad[:4]
        grad_X = grad_Z = grad_Xc = grad_Zc = None
        if grad_cut is None:
            grad_cut = torch.zeros_like(sigma)
        if grad_degree is None:
            grad_degree = torch.zeros_like(degree)
        g = grad_cut.reshape(grad_cut.shape + (1, 1))
        if need_z:
            grad_Z = 2 * g * (degree.unsqueeze(-1) * Z - SZ)
        if need_zc:
            grad_Zc = g * cut_grad_Zc
        if need_x or need_xc:
            gx, gxc = torch.ops.pydeepclust.rbf_ratio_cut_rows_backward(
                X, Z, Xc, Zc, sigma, grad_cut, grad_degree, ctx.row_offset, ctx.zero_diagonal,
                [need_x, need_xc])
            grad_X = gx if need_x else None
            grad_Xc = gxc if need_xc else None
        return grad_X, grad_Z, grad_Xc, grad_Zc, None, None, None

    torch.library.register_autograd(
        "pydeepclust::rbf_ratio_cut_rows", _ratio_cut_rows_backward,
        setup_context=_ratio_cut_rows_setup_context
    )


__all__ = [
    "DISTRIBUTIONS",
    "NORMALIZATIONS",
    "rbf_affinity",
    "rbf_ratio_cut",
    "rbf_ratio_cut_rows",
    "sample_bandwidths",
]
