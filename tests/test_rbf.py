"""RBF bandwidths, affinities and the streaming ratio cut: kernels vs references."""

import math

import pytest
import torch

import pydeepclust.ops as ops
from pydeepclust.ops import reference
from tests.conftest import needs_extension, tolerances


def data(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=dtype).to(device)


def bandwidths(X):
    """Bandwidths near the median distance, so that S is neither all 0 nor all 1."""
    if X.shape[-2] < 2:
        return X.new_ones(X.shape[:-2])
    return ops.sample_bandwidths(X, 0.5, 2.0, generator=torch.Generator().manual_seed(3))


def cut_tolerances(dtype):
    # the cut sums n^2 terms: compare relatively, with float32 rounding of the Gram form
    return (2e-4, 1e-4) if dtype == torch.float32 else (1e-10, 1e-10)


# ---------------------------------------------------------------- bandwidths


def test_sample_bandwidths_is_seeded_and_in_range():
    X = data((4, 300, 5), torch.float64, "cpu")
    draw = lambda seed, **kw: ops.sample_bandwidths(  # noqa: E731
        X, 0.5, 2.0, generator=torch.Generator().manual_seed(seed), **kw)
    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (4,) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)
    medians = torch.stack([torch.cdist(x, x)[torch.triu(torch.ones(300, 300), 1) > 0].median()
                           for x in X])
    ratio = a / medians
    assert ((ratio >= 0.5) & (ratio <= 2.0)).all()
    # log-uniform: log(ratio) uniform on [log 0.5, log 2]; check the mean over many draws
    many = ops.sample_bandwidths(data((2000, 3, 2), torch.float64, "cpu"), 0.5, 2.0,
                                 distribution="log-uniform", scale=1.0,
                                 generator=torch.Generator().manual_seed(5))
    assert abs(many.log().mean().item()) < 0.05
    assert many.min() >= 0.5 and many.max() <= 2.0
    uniform = ops.sample_bandwidths(data((2000, 3, 2), torch.float64, "cpu"), 0.5, 2.0,
                                    scale=1.0, generator=torch.Generator().manual_seed(5))
    assert abs(uniform.mean().item() - 1.25) < 0.05


def test_sample_bandwidths_subsamples_big_batches(device):
    X = data((50_000, 8), torch.float32, device)
    sigma = ops.sample_bandwidths(X, 1.0, 1.0, max_points=1024,
                                  generator=torch.Generator().manual_seed(0))
    # median distance of two standard normal points in R^8: about sqrt(2 * 8) = 4
    assert sigma.shape == () and sigma.device.type == device.type
    assert 3.5 < sigma.item() < 4.5


def test_sample_bandwidths_knn_scale(device):
    """scale="knn": the median distance to the m-th nearest other row, per batch element."""
    X = data((3, 400, 4), torch.float64, device)
    X[1] *= 10  # a batch element on another scale
    sigma = ops.sample_bandwidths(X, 1.0, 1.0, scale="knn", n_neighbors=5,
                                  generator=torch.Generator().manual_seed(0))
    dist = torch.cdist(X, X) + torch.diag_embed(torch.full((3, 400), math.inf, dtype=X.dtype,
                                                           device=X.device))
    expected = dist.sort(dim=-1).values[..., 4].median(dim=-1).values
    torch.testing.assert_close(sigma, expected)
    # a query subsample estimates it: within 15% from 128 of 400 rows
    sub = ops.sample_bandwidths(X, 1.0, 1.0, scale="knn", n_neighbors=5, max_points=128,
                                generator=torch.Generator().manual_seed(0))
    assert ((sub / expected - 1).abs() < 0.15).all()
    # much smaller than the global median scale: that is what keeps nested clusters apart
    assert (sigma < 0.5 * ops.sample_bandwidths(X, 1.0, 1.0)).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(low=0.0), "low <= high"),
        (dict(low=2.0, high=1.0), "low <= high"),
        (dict(distribution="normal"), "distribution must be one of"),
        (dict(scale="mean"), "scale must be 'median', 'knn' or a positive number"),
        (dict(scale=-1.0), "scale must be 'median', 'knn' or a positive number"),
        (dict(scale="knn", n_neighbors=0), "1 <= n_neighbors < n = 10"),
        (dict(scale="knn", n_neighbors=10), "1 <= n_neighbors < n = 10"),
        (dict(max_points=1), "max_points must be an integer >= 2"),
    ],
)
def test_sample_bandwidths_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.sample_bandwidths(torch.randn(10, 3), **kwargs)


def test_sample_bandwidths_degenerate_data():
    with pytest.raises(ValueError, match="at least 2 rows"):
        ops.sample_bandwidths(torch.randn(1, 3))
    with pytest.raises(ValueError, match="data scale of X"):
        ops.sample_bandwidths(torch.ones(5, 3))
    with pytest.raises(ValueError, match="data scale of X"):
        ops.sample_bandwidths(torch.ones(5, 3), scale="knn", n_neighbors=2)
    with pytest.raises(ValueError, match="X must have 2 or 3 dimensions"):
        ops.sample_bandwidths(torch.randn(3))
    assert ops.sample_bandwidths(torch.ones(5, 3), scale=2.0).item() > 0  # absolute scale is fine


# ---------------------------------------------------------------- materialised affinity


@pytest.mark.parametrize("shape", [(0, 3), (1, 4), (7, 1), (130, 16), (3, 40, 5), (2, 0, 3)])
@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_affinity_matches_reference(shape, zero_diagonal, dtype, device):
    X = data(shape, dtype, device)
    sigma = bandwidths(X)
    S = ops.rbf_affinity(X, sigma, zero_diagonal)
    ref = reference.rbf_affinity(X, sigma, zero_diagonal)
    assert S.shape == (*shape[:-1], shape[-2])
    torch.testing.assert_close(S, ref, rtol=tolerances(dtype)[0] * 10, atol=tolerances(dtype)[1])
    if shape[-2]:
        diag = S.diagonal(dim1=-2, dim2=-1)
        assert (diag == (0 if zero_diagonal else 1)).all()
        torch.testing.assert_close(S, S.transpose(-1, -2))


def test_affinity_is_the_gaussian_formula():
    X = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
    S = ops.rbf_affinity(X, 2.0, zero_diagonal=False)
    expected = torch.tensor([[1, math.exp(-25 / 8), math.exp(-1 / 8)],
                             [math.exp(-25 / 8), 1, math.exp(-18 / 8)],
                             [math.exp(-1 / 8), math.exp(-18 / 8), 1]], dtype=torch.float64)
    torch.testing.assert_close(S, expected, rtol=1e-14, atol=1e-14)


def test_affinity_non_contiguous_and_gradcheck(device, backend):
    wide = data((3, 12, 10), torch.float64, device)
    X = wide[..., ::2].transpose(0, 1).contiguous().transpose(0, 1)  # strided, batched
    assert not X.is_contiguous()
    sigma = bandwidths(X)
    torch.testing.assert_close(ops.rbf_affinity(X, sigma),
                               reference.rbf_affinity(X.contiguous(), sigma, True))
    Xg = wide[0, :, ::2].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ops.rbf_affinity(x, 1.3, False), (Xg,))
    Xb = X.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ops.rbf_affinity(x, sigma), (Xb,))


# ---------------------------------------------------------------- ratio cut


def raw_dense(X, Z, sigma, normalization, zero_diagonal=True):
    """The loss from the dense reference, straight from its definition."""
    S = reference.rbf_affinity(X, sigma, zero_diagonal)
    cut = (S * torch.cdist(Z, Z).square()).sum((-1, -2))
    if normalization == "sum":
        return cut
    if normalization == "batch":
        return cut / max(X.shape[-2], 1)
    return cut / S.sum((-1, -2))


@pytest.mark.parametrize("n", [0, 1, 2, 37, 1100, 2300])
@pytest.mark.parametrize("normalization", ["degree", "batch", "sum"])
def test_ratio_cut_matches_reference(n, normalization, dtype, device):
    X = data((n, 20), dtype, device)
    Z = data((n, 3), dtype, device, seed=1)
    sigma = bandwidths(X)
    loss = ops.rbf_ratio_cut(X, Z, sigma, normalization)
    with ops.use_backend("reference"):
        ref = ops.rbf_ratio_cut(X, Z, sigma, normalization)
    assert loss.shape == () and loss.dtype == dtype
    assert torch.isfinite(loss)
    rtol, atol = cut_tolerances(dtype)
    torch.testing.assert_close(loss, ref, rtol=rtol, atol=atol)
    if 0 < n <= 1100:
        dense = raw_dense(X.double(), Z.double(), sigma.double(), normalization)
        if n == 1:
            assert loss.item() == 0
        else:
            torch.testing.assert_close(loss.double(), dense, rtol=rtol, atol=atol)


def test_ratio_cut_equals_trace_form_and_rows(dtype, device):
    """cut = 2 tr(Z^T (D - S) Z); the raw op's degrees and SZ are S 1 and S Z."""
    X, Z = data((300, 6), dtype, device), data((300, 4), dtype, device, seed=2)
    sigma = bandwidths(X)
    S = reference.rbf_affinity(X, sigma, True)
    trace = 2 * torch.trace(Z.T @ (torch.diag(S.sum(1)) - S) @ Z)
    rtol, atol = cut_tolerances(dtype)
    torch.testing.assert_close(ops.rbf_ratio_cut(X, Z, sigma, "sum"), trace, rtol=rtol, atol=atol)
    if ops.has_kernel("rbf_ratio_cut", device):
        _, degree, SZ = torch.ops.pydeepclust.rbf_ratio_cut(X, Z, sigma, True)
        torch.testing.assert_close(degree, S.sum(1), rtol=rtol, atol=atol)
        torch.testing.assert_close(SZ, S @ Z, rtol=rtol, atol=atol)


@pytest.mark.parametrize("normalization", ["degree", "batch", "sum"])
@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_ratio_cut_batched_non_contiguous(normalization, zero_diagonal, dtype, device):
    X = data((4, 30, 2 * 9), dtype, device)[..., ::2]
    Z = data((30, 4, 5), dtype, device, seed=1).transpose(0, 1)
    assert not X.is_contiguous() and not Z.is_contiguous()
    sigma = bandwidths(X)
    loss = ops.rbf_ratio_cut(X, Z, sigma, normalization, zero_diagonal)
    assert loss.shape == (4,)
    each = torch.stack([ops.rbf_ratio_cut(X[b].contiguous(), Z[b].contiguous(), sigma[b],
                                          normalization, zero_diagonal) for b in range(4)])
    with ops.use_backend("reference"):
        ref = ops.rbf_ratio_cut(X, Z, sigma, normalization, zero_diagonal)
    rtol, atol = cut_tolerances(dtype)
    torch.testing.assert_close(loss, each, rtol=rtol, atol=atol)
    torch.testing.assert_close(loss, ref, rtol=rtol, atol=atol)


def test_ratio_cut_diagonal_only_changes_degree_normaliser(device):
    X, Z = data((50, 4), torch.float64, device), data((50, 2), torch.float64, device, seed=1)
    sigma = bandwidths(X)
    a = ops.rbf_ratio_cut(X, Z, sigma, "sum", zero_diagonal=True)
    b = ops.rbf_ratio_cut(X, Z, sigma, "sum", zero_diagonal=False)
    torch.testing.assert_close(a, b)
    S = reference.rbf_affinity(X, sigma, True)
    d = ops.rbf_ratio_cut(X, Z, sigma, "degree", zero_diagonal=False)
    torch.testing.assert_close(d, a / (S.sum() + 50))


def test_ratio_cut_underflowing_affinities_give_zero_not_nan(device, backend):
    X = data((20, 3), torch.float64, device) * 1e3  # sigma = 1e-3: every S_ij underflows
    Z = data((20, 2), torch.float64, device).requires_grad_()
    loss = ops.rbf_ratio_cut(X, Z, 1e-3)
    assert loss.item() == 0
    (grad,) = torch.autograd.grad(loss, Z)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("normalization", ["degree", "batch", "sum"])
@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_ratio_cut_gradcheck(normalization, zero_diagonal, device, backend):
    X = data((13, 4), torch.float64, device).requires_grad_()
    Z = data((13, 3), torch.float64, device, seed=1).requires_grad_()
    sigma = bandwidths(X.detach())
    fn = lambda x, z: ops.rbf_ratio_cut(x, z, sigma, normalization, zero_diagonal)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (X, Z))
    Xb = data((2, 9, 2 * 4), torch.float64, device)[..., ::2].detach().requires_grad_()
    Zb = data((2, 9, 2), torch.float64, device, seed=1).requires_grad_()
    sigma_b = bandwidths(Xb.detach())  # outside: gradcheck perturbs Xb in place
    assert torch.autograd.gradcheck(
        lambda x, z: ops.rbf_ratio_cut(x, z, sigma_b, normalization, zero_diagonal), (Xb, Zb))


def test_ratio_cut_gradient_matches_dense_reference_across_tiles(dtype, device):
    """n spans several row blocks of the CPU kernel (1024 rows) and an uneven last block."""
    n = 2100
    X = data((n, 12), dtype, device).requires_grad_()
    Z = data((n, 3), dtype, device, seed=1).requires_grad_()
    sigma = bandwidths(X.detach())
    grads = torch.autograd.grad(ops.rbf_ratio_cut(X, Z, sigma), (X, Z))
    with ops.use_backend("reference"):
        ref = torch.autograd.grad(ops.rbf_ratio_cut(X, Z, sigma), (X, Z))
    for g, r in zip(grads, ref):
        scale = r.abs().max()
        torch.testing.assert_close(g / scale, r / scale, rtol=0,
                                   atol=1e-4 if dtype == torch.float32 else 1e-11)


def test_ratio_cut_gradient_only_for_z_when_x_is_data(device):
    X = data((40, 5), torch.float32, device)
    Z = data((40, 2), torch.float32, device).requires_grad_()
    loss = ops.rbf_ratio_cut(X, Z, bandwidths(X))
    (gz,) = torch.autograd.grad(loss, Z)
    with ops.use_backend("reference"):
        (ref,) = torch.autograd.grad(ops.rbf_ratio_cut(X, Z, bandwidths(X)), Z)
    torch.testing.assert_close(gz, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "X, Z, sigma, exc, match",
    [
        (torch.randn(5), torch.randn(5, 2), 1.0, ValueError, "X must have 2 or 3 dimensions"),
        (torch.randn(5, 3), torch.randn(6, 2), 1.0, ValueError, "batch and n of X"),
        (torch.randn(2, 5, 3), torch.randn(3, 5, 2), 1.0, ValueError, "batch and n of X"),
        (torch.randn(2, 5, 3), torch.randn(10, 2), 1.0, ValueError, "batch and n of X"),
        (torch.randn(5, 3), torch.randn(5, 2).double(), 1.0, ValueError, "same device and dtype"),
        (torch.randn(5, 3), torch.randn(5, 2), 0.0, ValueError, "sigma must be > 0"),
        (torch.randn(5, 3), torch.randn(5, 2), -1.0, ValueError, "sigma must be > 0"),
        (torch.randn(5, 3), torch.randn(5, 2), float("inf"), ValueError, "sigma must be > 0"),
        (torch.randn(2, 5, 3), torch.randn(2, 5, 2), torch.tensor([1.0, -2.0]), ValueError,
         "sigma must be > 0"),
        (torch.randn(2, 5, 3), torch.randn(2, 5, 2), torch.ones(3), ValueError,
         "one bandwidth per batch element"),
        (torch.randn(5, 3), torch.randn(5, 2), torch.ones(1, 1), ValueError,
         "one bandwidth per batch element"),
        (torch.randn(5, 3), torch.randn(5, 2), torch.tensor(1), TypeError, "sigma must be"),
        (torch.randn(5, 3), torch.randn(5, 2), "1", TypeError, "sigma must be"),
        (torch.ones(5, 3, dtype=torch.int64), torch.randn(5, 2), 1.0, TypeError,
         "X must be float32 or float64"),
        (torch.randn(5, 3).numpy(), torch.randn(5, 2), 1.0, TypeError, "X must be a torch.Tensor"),
        (torch.randn(5, 3), torch.randn(5, 2), torch.ones((), device="meta"), ValueError,
         "sigma must be on X's device"),
    ],
)
def test_bad_input_gets_clear_error(X, Z, sigma, exc, match, backend):
    with pytest.raises(exc, match=match):
        ops.rbf_ratio_cut(X, Z, sigma)
    about_z = match in ("batch and n of X", "same device and dtype", "Z must be float32")
    if not about_z:
        with pytest.raises(exc, match=match):
            ops.rbf_affinity(X, sigma)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("op, where", [("rbf_affinity", "X"), ("rbf_ratio_cut", "X")])
def test_non_finite_rows_are_named_not_hidden(op, where, value, device, dtype, backend):
    # exp(-inf) = 0: the native kernels would give such a row plausible zero affinities.
    X = torch.rand(2, 6, 3, device=device, dtype=dtype)
    Z = torch.rand(2, 6, 2, device=device, dtype=dtype)
    (X if where == "X" else Z)[1, 4, 0] = value
    call = (lambda: ops.rbf_affinity(X, 1.0)) if op == "rbf_affinity" else \
        (lambda: ops.rbf_ratio_cut(X, Z, 1.0))
    with pytest.raises(ValueError, match=rf"{op}: {where} has NaN or inf in 1 row\(s\) "
                                         r"\(first flat row index: 10\)"):
        call()


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_embeddings_propagate_into_the_cut(value, device, dtype, backend):
    # unlike X (whose exp(-inf) = 0 would hide it), a bad Z cannot look like a good loss
    X = torch.rand(2, 6, 3, device=device, dtype=dtype)
    Z = torch.rand(2, 6, 2, device=device, dtype=dtype)
    Z[1, 4, 0] = value
    loss = ops.rbf_ratio_cut(X, Z, 1.0)
    assert torch.isfinite(loss[0]) and torch.isnan(loss[1])


def test_bad_normalization():
    with pytest.raises(ValueError, match="normalization must be one of"):
        ops.rbf_ratio_cut(torch.randn(5, 3), torch.randn(5, 2), 1.0, normalization="mean")


@needs_extension
def test_raw_ops_reject_bad_input():
    X, Z = torch.randn(5, 3), torch.randn(5, 2)
    with pytest.raises(RuntimeError, match="sigma must be > 0"):
        torch.ops.pydeepclust.rbf_ratio_cut(X, Z, torch.tensor(0.0), True)
    with pytest.raises(RuntimeError, match="sigma must be > 0"):
        torch.ops.pydeepclust.rbf_affinity(X, torch.tensor(-1.0), True)
    with pytest.raises(RuntimeError, match="Z must have shape"):
        torch.ops.pydeepclust.rbf_ratio_cut(X, torch.randn(4, 2), torch.tensor(1.0), True)
    with pytest.raises(RuntimeError, match="one bandwidth per batch element"):
        torch.ops.pydeepclust.rbf_affinity(X, torch.ones(2), True)
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.ops.pydeepclust.rbf_ratio_cut(X, Z.double(), torch.tensor(1.0), True)


# ---------------------------------------------------------------- rectangular (row-slice) ratio cut


def dense_rows(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal):
    """The partial cut and row degrees straight from their definition, in float64."""
    X, Z, Xc, Zc = (t.double() for t in (X, Z, Xc, Zc))
    c = (1 / (2 * sigma.double().square())).reshape(sigma.shape + (1, 1))
    S = torch.exp(-c * torch.cdist(X, Xc).square())
    if zero_diagonal:
        n, m = X.shape[-2], Xc.shape[-2]
        self_pair = torch.arange(n).unsqueeze(1) + row_offset == torch.arange(m)
        S = torch.where(self_pair.to(S.device), torch.zeros_like(S), S)
    return (S * torch.cdist(Z, Zc).square()).sum((-1, -2)), S.sum(-1)


def rows_case(batch, n, m, d, k, row_offset, dtype, device, independent=False, seed=0):
    """Columns (Xc, Zc) and rows: the columns row_offset .. row_offset + n (a rank's slice),
    or independent data when ``independent``."""
    Xc = data((*batch, m, d), dtype, device, seed)
    Zc = data((*batch, m, k), dtype, device, seed + 1)
    if independent:
        return data((*batch, n, d), dtype, device, seed + 2), \
            data((*batch, n, k), dtype, device, seed + 3), Xc, Zc
    return Xc[..., row_offset:row_offset + n, :], Zc[..., row_offset:row_offset + n, :], Xc, Zc


ROWS_CASES = [
    # batch, n, m, d, k, row_offset, zero_diagonal, independent rows
    ((), 0, 5, 3, 2, 0, True, False),        # empty slice
    ((), 0, 5, 3, 2, 5, True, False),        # empty slice at the end
    ((), 1, 1, 4, 2, 0, True, False),        # one row, its own only column
    ((), 1, 9, 4, 2, 4, True, False),        # one row in the middle
    ((), 7, 30, 5, 3, 0, True, False),       # first slice
    ((), 10, 30, 5, 3, 11, True, False),     # middle slice
    ((), 12, 30, 5, 3, 18, True, False),     # last slice
    ((), 30, 30, 5, 3, 0, True, False),      # the whole batch
    ((), 12, 30, 5, 3, 18, False, False),
    ((), 8, 20, 4, 2, 0, False, True),       # unrelated rows and columns
    ((), 25, 10, 4, 2, 0, False, True),      # more rows than columns
    ((), 3, 0, 4, 2, 0, False, True),        # no columns
    ((3,), 9, 27, 6, 4, 9, True, False),     # batched
    ((2,), 5, 11, 3, 2, 0, False, True),
    ((1,), 4, 12, 3, 2, 8, True, False),
    ((), 1100, 2300, 12, 3, 1200, True, False),  # several CPU blocks both ways, uneven ends
]


@pytest.mark.parametrize("case", ROWS_CASES, ids=lambda c: f"B{c[0]}-n{c[1]}-m{c[2]}-off{c[5]}-"
                         f"{'zd' if c[6] else 'nd'}{'-indep' if c[7] else ''}")
def test_ratio_cut_rows_matches_reference(case, dtype, device):
    batch, n, m, d, k, row_offset, zero_diagonal, independent = case
    X, Z, Xc, Zc = rows_case(batch, n, m, d, k, row_offset, dtype, device, independent)
    sigma = bandwidths(Xc) if m > 1 else Xc.new_ones(batch)
    cut, degree = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal)
    assert cut.shape == batch and degree.shape == (*batch, n)
    assert cut.dtype == dtype and degree.dtype == dtype
    with ops.use_backend("reference"):
        ref_cut, ref_degree = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, row_offset,
                                                     zero_diagonal)
    rtol, atol = cut_tolerances(dtype)
    torch.testing.assert_close(cut, ref_cut, rtol=rtol, atol=atol)
    torch.testing.assert_close(degree, ref_degree, rtol=rtol, atol=atol)
    dense_cut, dense_degree = dense_rows(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal)
    torch.testing.assert_close(cut.double(), dense_cut, rtol=rtol, atol=atol)
    torch.testing.assert_close(degree.double(), dense_degree, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", [c for c in ROWS_CASES if c[1] * c[2] < 10**6],
                         ids=lambda c: f"B{c[0]}-n{c[1]}-m{c[2]}-off{c[5]}-{c[6]}")
def test_ratio_cut_rows_gradients_match_reference(case, dtype, device):
    """All four gradients, for upstream gradients on both the cut and the row degrees."""
    batch, n, m, d, k, row_offset, zero_diagonal, independent = case
    X, Z, Xc, Zc = (t.detach().clone().requires_grad_()
                    for t in rows_case(batch, n, m, d, k, row_offset, dtype, device, True))
    sigma = bandwidths(Xc.detach()) if m > 1 else X.new_ones(batch)
    g_cut = data(batch, dtype, device, seed=7)
    g_degree = data((*batch, n), dtype, device, seed=8)

    def grads():
        cut, degree = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal)
        return torch.autograd.grad((cut, degree), (X, Z, Xc, Zc), (g_cut, g_degree))

    got = grads()
    with ops.use_backend("reference"):
        ref = grads()
    for g, r, name in zip(got, ref, ("X", "Z", "X_cols", "Z_cols")):
        assert g.shape == r.shape, name
        scale = r.abs().max() if r.numel() else 1
        scale = scale if scale > 0 else 1
        torch.testing.assert_close(g / scale, r / scale, rtol=0,
                                   atol=1e-4 if dtype == torch.float32 else 1e-11, msg=name)


@pytest.mark.parametrize("wanted", [(0,), (1,), (2,), (3,), (0, 3), (1, 2)])
def test_ratio_cut_rows_gradient_of_some_inputs(wanted, device, backend):
    """Only some inputs need a gradient (e.g. the columns detached): those are exact."""
    X, Z, Xc, Zc = rows_case((), 6, 15, 4, 2, 3, torch.float64, device, independent=True)
    sigma = bandwidths(Xc)
    inputs = [t.clone().requires_grad_(i in wanted) for i, t in enumerate((X, Z, Xc, Zc))]
    cut, degree = ops.rbf_ratio_cut_rows(*inputs, sigma, 3, True)
    got = torch.autograd.grad(cut + degree.sum(), [inputs[i] for i in wanted])
    full = [t.clone().requires_grad_() for t in (X, Z, Xc, Zc)]
    with ops.use_backend("reference"):
        cut, degree = ops.rbf_ratio_cut_rows(*full, sigma, 3, True)
        ref = torch.autograd.grad(cut + degree.sum(), full)
    for g, i in zip(got, wanted):
        torch.testing.assert_close(g, ref[i], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_ratio_cut_rows_equals_square_op_on_the_whole_batch(zero_diagonal, dtype, device):
    """rows = cols, row_offset 0: the square op's cut, degrees and gradients; the row and
    column gradients of Z add up to 4 g (D Z - S Z)."""
    X = data((2, 40, 6), dtype, device).requires_grad_()
    Z = data((2, 40, 3), dtype, device, seed=1).requires_grad_()
    sigma = bandwidths(X.detach())
    rtol, atol = cut_tolerances(dtype)
    cut, degree = ops.rbf_ratio_cut_rows(X, Z, X, Z, sigma, 0, zero_diagonal)
    square = ops.rbf_ratio_cut(X, Z, sigma, "sum", zero_diagonal)
    _, ref_degree, _ = reference.rbf_ratio_cut(X.detach(), Z.detach(), sigma, zero_diagonal)
    torch.testing.assert_close(cut, square, rtol=rtol, atol=atol)
    torch.testing.assert_close(degree, ref_degree, rtol=rtol, atol=atol)
    # gradients of the degree-normalised loss (cut and degrees both carry upstream gradient)
    loss = (cut / degree.sum(-1)).sum()
    got = torch.autograd.grad(loss, (X, Z))
    ref = torch.autograd.grad(ops.rbf_ratio_cut(X, Z, sigma, "degree", zero_diagonal).sum(),
                              (X, Z))
    for g, r in zip(got, ref):
        scale = r.abs().max()
        torch.testing.assert_close(g / scale, r / scale, rtol=0,
                                   atol=1e-4 if dtype == torch.float32 else 1e-11)
    # Z as rows and as columns separately: grad Z_rows + grad Z_cols = 4 g (D Z - S Z)
    Zr, Zc = Z.detach().clone().requires_grad_(), Z.detach().clone().requires_grad_()
    cut, _ = ops.rbf_ratio_cut_rows(X.detach(), Zr, X.detach(), Zc, sigma, 0, zero_diagonal)
    g_rows, g_cols = torch.autograd.grad(cut.sum() * 1.5, (Zr, Zc))
    S = reference.rbf_affinity(X.detach(), sigma, zero_diagonal)
    expected = 4 * 1.5 * (S.sum(-1, keepdim=True) * Z.detach() - S @ Z.detach())
    scale = expected.abs().max()
    torch.testing.assert_close((g_rows + g_cols) / scale, expected / scale, rtol=0,
                               atol=1e-4 if dtype == torch.float32 else 1e-11)


@pytest.mark.parametrize("bounds", [(0, 17, 40), (0, 10, 25, 40), (0, 1, 39, 40), (0, 0, 40)])
@pytest.mark.parametrize("zero_diagonal", [True, False])
@pytest.mark.parametrize("batched", [False, True])
def test_ratio_cut_rows_slices_sum_to_the_square_op(bounds, zero_diagonal, batched, device):
    """The data-parallel identity: rank slices of the rows against the whole batch; the
    cuts and degree sums add up to the square op's, and so do the gradients (each x_i
    gets its row gradient from its slice and its column gradients from every slice)."""
    shape = (3, 40) if batched else (40,)
    X = data((*shape, 5), torch.float64, device).requires_grad_()
    Z = data((*shape, 3), torch.float64, device, seed=1).requires_grad_()
    sigma = bandwidths(X.detach())
    parts = [ops.rbf_ratio_cut_rows(X[..., a:b, :], Z[..., a:b, :], X, Z, sigma, a,
                                    zero_diagonal) for a, b in zip(bounds, bounds[1:])]
    cut = sum(p[0] for p in parts)
    degree = torch.cat([p[1] for p in parts], -1)
    square_cut = ops.rbf_ratio_cut(X, Z, sigma, "sum", zero_diagonal)
    _, square_degree, _ = reference.rbf_ratio_cut(X.detach(), Z.detach(), sigma, zero_diagonal)
    torch.testing.assert_close(cut, square_cut, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(degree, square_degree, rtol=1e-12, atol=1e-12)
    loss = (cut / sum(p[1].sum(-1) for p in parts)).sum()
    square = ops.rbf_ratio_cut(X, Z, sigma, "degree", zero_diagonal).sum()
    torch.testing.assert_close(loss, square, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(loss, (X, Z))
    ref = torch.autograd.grad(square, (X, Z))
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_ratio_cut_rows_gradcheck(zero_diagonal, device, backend):
    X, Z, Xc, Zc = (t.detach().requires_grad_()
                    for t in rows_case((), 5, 11, 3, 2, 4, torch.float64, device, True))
    sigma = bandwidths(Xc.detach())
    fn = lambda *t: ops.rbf_ratio_cut_rows(*t, sigma, 4, zero_diagonal)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (X, Z, Xc, Zc))
    # batched, non-contiguous rows and columns; the rows a slice of the columns
    wide = data((2, 12, 2 * 3), torch.float64, device)[..., ::2]
    Zw = data((12, 2, 2), torch.float64, device, seed=1).transpose(0, 1)
    # clones: gradcheck perturbs each input in place, the rows must not move the columns
    Xb, Zb = wide[:, 6:10].clone().requires_grad_(), Zw[:, 6:10].clone().requires_grad_()
    Xcb, Zcb = wide.detach().requires_grad_(), Zw.detach().requires_grad_()
    assert not Xcb.is_contiguous() and not Zcb.is_contiguous()
    sigma_b = bandwidths(Xcb.detach())
    assert torch.autograd.gradcheck(
        lambda *t: ops.rbf_ratio_cut_rows(*t, sigma_b, 6, zero_diagonal), (Xb, Zb, Xcb, Zcb))


def test_ratio_cut_rows_non_contiguous(dtype, device):
    wide = data((3, 20, 2 * 7), dtype, device)[..., ::2]
    Zc = data((20, 3, 4), dtype, device, seed=1).transpose(0, 1)
    X, Z = wide[:, 5:12], Zc[:, 5:12]
    assert not wide.is_contiguous() and not Zc.is_contiguous() and not X.is_contiguous()
    sigma = bandwidths(wide)
    cut, degree = ops.rbf_ratio_cut_rows(X, Z, wide, Zc, sigma, 5)
    ref = dense_rows(X, Z, wide, Zc, sigma, 5, True)
    rtol, atol = cut_tolerances(dtype)
    torch.testing.assert_close(cut.double(), ref[0], rtol=rtol, atol=atol)
    torch.testing.assert_close(degree.double(), ref[1], rtol=rtol, atol=atol)
    each = [ops.rbf_ratio_cut_rows(X[b].contiguous(), Z[b].contiguous(), wide[b].contiguous(),
                                   Zc[b].contiguous(), sigma[b], 5) for b in range(3)]
    torch.testing.assert_close(cut, torch.stack([e[0] for e in each]), rtol=rtol, atol=atol)
    torch.testing.assert_close(degree, torch.stack([e[1] for e in each]), rtol=rtol, atol=atol)


def test_ratio_cut_rows_self_pairs_are_the_diagonal(device):
    """zero_diagonal drops exactly the pairs (i, row_offset + i); without it a self pair is an
    ordinary affinity, about 1."""
    X, Z, Xc, Zc = rows_case((), 6, 15, 4, 2, 5, torch.float64, device)
    sigma = bandwidths(Xc)
    _, with_self = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, 5, zero_diagonal=False)
    _, without = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, 5, zero_diagonal=True)
    torch.testing.assert_close(with_self - without, torch.ones_like(without), rtol=0, atol=1e-12)
    # row_offset is ignored without zero_diagonal
    a = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, 99, zero_diagonal=False)
    torch.testing.assert_close(a[1], with_self)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(X=torch.randn(5)), ValueError, "X must have 2 or 3 dimensions"),
        (dict(X_cols=torch.randn(2, 3, 8, 3)), ValueError, "X_cols must have 2 or 3 dimensions"),
        (dict(Z=torch.randn(4, 2)), ValueError, "Z must have shape .* batch and n of X"),
        (dict(X_cols=torch.randn(8, 4)), ValueError, "X_cols must have shape .* batch and d"),
        (dict(X_cols=torch.randn(1, 8, 3)), ValueError, "X_cols must have shape"),
        (dict(Z_cols=torch.randn(7, 2)), ValueError, "Z_cols must have shape .* batch and m"),
        (dict(Z_cols=torch.randn(8, 3)), ValueError, "Z_cols must have shape .* k of Z"),
        (dict(Z_cols=torch.randn(8, 2).double()), ValueError, "X and Z_cols must have the same"),
        (dict(X_cols=torch.randn(8, 3).double()), ValueError, "X and X_cols must have the same"),
        (dict(Z_cols=torch.ones(8, 2, dtype=torch.int64)), TypeError, "Z_cols must be float32"),
        (dict(X_cols=torch.randn(8, 3).numpy()), TypeError, "X_cols must be a torch.Tensor"),
        (dict(row_offset=4), ValueError, r"row_offset \+ n <= m .* row_offset=4, n=5, m=8"),
        (dict(row_offset=-1), ValueError, "0 <= row_offset"),
        (dict(row_offset=1.0), TypeError, "row_offset must be an int"),
        (dict(row_offset=True), TypeError, "row_offset must be an int"),
        (dict(sigma=0.0), ValueError, "sigma must be > 0"),
        (dict(sigma=torch.ones(2)), ValueError, "one bandwidth per batch element"),
    ],
)
def test_ratio_cut_rows_bad_input(kw, exc, match, backend):
    args = dict(X=torch.randn(5, 3), Z=torch.randn(5, 2), X_cols=torch.randn(8, 3),
                Z_cols=torch.randn(8, 2), sigma=1.0, row_offset=2)
    args.update(kw)
    with pytest.raises(exc, match=match):
        ops.rbf_ratio_cut_rows(**args)


def test_ratio_cut_rows_offset_unchecked_without_zero_diagonal(backend):
    X, Z = torch.randn(5, 3), torch.randn(5, 2)
    _, degree = ops.rbf_ratio_cut_rows(X, Z, X[:2], Z[:2], 1.0, row_offset=-3,
                                       zero_diagonal=False)
    assert degree.shape == (5,)


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("where", ["X", "X_cols"])
def test_ratio_cut_rows_non_finite_rows_are_named(where, value, backend):
    X, Z, Xc, Zc = rows_case((2,), 3, 6, 3, 2, 1, torch.float64, "cpu", independent=True)
    (X if where == "X" else Xc)[1, 2, 0] = value
    flat = 5 if where == "X" else 8
    with pytest.raises(ValueError, match=rf"rbf_ratio_cut_rows: {where} has NaN or inf in 1 "
                                         rf"row\(s\) \(first flat row index: {flat}\)"):
        ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, 1.0, 1)


@needs_extension
def test_raw_rows_ops_reject_bad_input():
    X, Z, Xc, Zc = torch.randn(5, 3), torch.randn(5, 2), torch.randn(8, 3), torch.randn(8, 2)
    one = torch.tensor(1.0)
    op = torch.ops.pydeepclust.rbf_ratio_cut_rows
    with pytest.raises(RuntimeError, match="sigma must be > 0"):
        op(X, Z, Xc, Zc, torch.tensor(0.0), 0, True)
    with pytest.raises(RuntimeError, match="row_offset \\+ n <= m"):
        op(X, Z, Xc, Zc, one, 4, True)
    with pytest.raises(RuntimeError, match="0 <= row_offset"):
        op(X, Z, Xc, Zc, one, -1, True)
    with pytest.raises(RuntimeError, match="Xc must have shape"):
        op(X, Z, torch.randn(8, 4), Zc, one, 0, True)
    with pytest.raises(RuntimeError, match="Zc must have shape"):
        op(X, Z, Xc, torch.randn(8, 3), one, 0, True)
    with pytest.raises(RuntimeError, match="same dtype"):
        op(X, Z, Xc.double(), Zc, one, 0, True)
    with pytest.raises(RuntimeError, match="grad_cut and grad_degree"):
        torch.ops.pydeepclust.rbf_ratio_cut_rows_backward(
            X, Z, Xc, Zc, one, one, torch.ones(4), 0, True, [True, True])


# ---------------------------------------------------------------- torch.library / compile


@needs_extension
@pytest.mark.parametrize("shape", [(0, 3), (1, 2), (17, 5), (2, 9, 4)])
def test_opcheck(shape, dtype, device):
    X = data(shape, dtype, device)
    Z = data((*shape[:-1], 3), dtype, device, seed=1)
    sigma = bandwidths(X) if shape[-2] > 1 else X.new_ones(shape[:-2])
    torch.library.opcheck(torch.ops.pydeepclust.rbf_affinity, (X, sigma, True))
    torch.library.opcheck(torch.ops.pydeepclust.rbf_affinity, (X.requires_grad_(), sigma, False))
    torch.library.opcheck(torch.ops.pydeepclust.rbf_ratio_cut, (X.detach(), Z, sigma, True))
    torch.library.opcheck(torch.ops.pydeepclust.rbf_ratio_cut,
                          (X.detach().requires_grad_(), Z.requires_grad_(), sigma, False))
    grad_cut = data(shape[:-2], dtype, device, seed=4)
    grad_degree = data(shape[:-1], dtype, device, seed=5)
    torch.library.opcheck(torch.ops.pydeepclust.rbf_ratio_cut_backward_x,
                          (X.detach(), Z.detach(), sigma, grad_cut, grad_degree, True))


@needs_extension
@pytest.mark.parametrize("rows, m, row_offset", [(0, 4, 2), (1, 3, 1), (5, 17, 6), (4, 9, 0)])
@pytest.mark.parametrize("batched", [False, True])
def test_opcheck_rows(rows, m, row_offset, batched, dtype, device):
    batch = (2,) if batched else ()
    X, Z, Xc, Zc = rows_case(batch, rows, m, 4, 3, row_offset, dtype, device, independent=True)
    sigma = bandwidths(Xc)
    op = torch.ops.pydeepclust.rbf_ratio_cut_rows
    torch.library.opcheck(op, (X, Z, Xc, Zc, sigma, row_offset, True))
    torch.library.opcheck(op, tuple(t.clone().requires_grad_() for t in (X, Z, Xc, Zc)) +
                          (sigma, row_offset, False))
    grad_cut = data(batch, dtype, device, seed=4)
    grad_degree = data((*batch, rows), dtype, device, seed=5)
    for mask in ([True, True], [False, True]):
        torch.library.opcheck(torch.ops.pydeepclust.rbf_ratio_cut_rows_backward,
                              (X, Z, Xc, Zc, sigma, grad_cut, grad_degree, row_offset, True,
                               mask))


@needs_extension
def test_torch_compile_fullgraph(device):
    X = data((4, 64, 10), torch.float32, device).requires_grad_()
    Z = data((4, 64, 3), torch.float32, device, seed=1).requires_grad_()
    sigma = bandwidths(X.detach())

    def loss_fn(x, z):
        S = ops.rbf_affinity(x, sigma)
        return ops.rbf_ratio_cut(x, z, sigma).sum() + S.mean()

    compiled = torch.compile(loss_fn, fullgraph=True, dynamic=False)
    loss = compiled(X, Z)
    grads = torch.autograd.grad(loss, (X, Z))
    ref_loss = loss_fn(X, Z)
    ref_grads = torch.autograd.grad(ref_loss, (X, Z))
    torch.testing.assert_close(loss, ref_loss)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


@needs_extension
def test_torch_compile_fullgraph_rows(device):
    """A rank's step as torch.compile sees it: a slice of rows against the whole batch."""
    X = data((2, 64, 10), torch.float32, device).requires_grad_()
    Z = data((2, 64, 3), torch.float32, device, seed=1).requires_grad_()
    sigma = bandwidths(X.detach())

    def loss_fn(x, z):
        cut, degree = ops.rbf_ratio_cut_rows(x[:, 16:40], z[:, 16:40], x, z, sigma, 16)
        return (cut / degree.sum(-1)).sum()

    compiled = torch.compile(loss_fn, fullgraph=True, dynamic=False)
    loss = compiled(X, Z)
    grads = torch.autograd.grad(loss, (X, Z))
    ref_loss = loss_fn(X, Z)
    ref_grads = torch.autograd.grad(ref_loss, (X, Z))
    torch.testing.assert_close(loss, ref_loss)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_cuda_kernel_registered_iff_built_with_cuda():
    info = ops.build_info()
    if not info["available"]:
        assert not ops.has_kernel("rbf_ratio_cut", "cpu")
        return
    for op in ("rbf_affinity", "rbf_ratio_cut", "rbf_ratio_cut_backward_x", "rbf_ratio_cut_rows",
               "rbf_ratio_cut_rows_backward"):
        assert ops.has_kernel(op, "cpu")
        assert ops.has_kernel(op, "cuda") == info["cuda"]


@pytest.mark.parametrize("normalization", ops.rbf.NORMALIZATIONS)
def test_ratio_cut_return_degrees(normalization, device):
    X = data((2, 9, 4), torch.float64, device).requires_grad_()
    Z = data((2, 9, 3), torch.float64, device, seed=1)
    sigma = bandwidths(X.detach())
    loss, degrees = ops.rbf_ratio_cut(X, Z, sigma, normalization, return_degrees=True)
    S = reference.rbf_affinity(X, sigma, True)
    torch.testing.assert_close(degrees, S.sum(-1))
    torch.testing.assert_close(loss, ops.rbf_ratio_cut(X, Z, sigma, normalization))
    grad, = torch.autograd.grad(degrees.sum(), X)
    torch.testing.assert_close(grad, torch.autograd.grad(S.sum(), X)[0])
