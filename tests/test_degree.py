"""Degree-weighted kernel matrices, streaming degrees, KSC centring: kernels vs references."""

import math

import numpy as np
import pytest
import torch

import pydeepclust.ops as ops
from pydeepclust.ops import reference
from tests.conftest import needs_extension, tolerances

KERNEL_CASES = [("rbf", 1.5), ("linear", None)]


def points(shape, dtype, device, seed=0, signed=False):
    """Features in [0, 1) (positive linear degrees) or N(0, 1) (signed)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(shape, generator=g, dtype=dtype) if signed else torch.rand(shape, generator=g, dtype=dtype)
    return X.to(device)


def dense_degree_weighted(X, kernel, sigma):
    """D^-1 K, d and K written out with torch, one batch element at a time."""
    Xb = X if X.dim() == 3 else X.unsqueeze(0)
    sig = torch.as_tensor(sigma if sigma is not None else 1.0, dtype=X.dtype).reshape(-1)
    Ps, ds, Ks = [], [], []
    for b, x in enumerate(Xb):
        if kernel == "linear":
            K = x @ x.T
        else:
            s = sig[b if sig.numel() > 1 else 0]
            K = torch.exp(-torch.cdist(x, x) ** 2 / (2 * s**2))
            K.fill_diagonal_(1.0)
        d = K.sum(1)
        Ps.append(K / d[:, None])
        ds.append(d)
        Ks.append(K)
    out = torch.stack(Ps), torch.stack(ds), torch.stack(Ks)
    return tuple(t.squeeze(0) for t in out) if X.dim() == 2 else out


# ---------------------------------------------------------------- degree_weighted_kernel


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
@pytest.mark.parametrize("shape", [(0, 4), (1, 3), (7, 2), (200, 8), (1, 0, 5), (3, 1, 4), (4, 65, 6)])
def test_matches_reference(shape, kernel, sigma, dtype, device):
    X = points(shape, dtype, device)
    P, d, K = ops.degree_weighted_kernel(X, kernel, sigma, return_kernel=True)
    with ops.use_backend("reference"):
        Pr, dr, Kr = ops.degree_weighted_kernel(X, kernel, sigma, return_kernel=True)
    n = shape[-2]
    assert P.shape == K.shape == (*shape[:-2], n, n) and d.shape == shape[:-1]
    rtol, atol = tolerances(dtype)
    torch.testing.assert_close(P, Pr, rtol=rtol, atol=atol)
    torch.testing.assert_close(d, dr, rtol=rtol * 10, atol=atol * 10)
    torch.testing.assert_close(K, Kr, rtol=rtol, atol=atol)
    # and the definitions written out independently (cdist form of the distances)
    Pe, de, Ke = dense_degree_weighted(X.double().cpu(), kernel, sigma)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(P.double().cpu(), Pe, rtol=tol, atol=tol)
    torch.testing.assert_close(d.double().cpu(), de, rtol=tol, atol=tol)
    torch.testing.assert_close(K.double().cpu(), Ke, rtol=tol, atol=tol)
    if n:
        torch.testing.assert_close(P.sum(-1), torch.ones_like(d))
    # without return_kernel: the same P and degrees, two outputs
    P2, d2 = ops.degree_weighted_kernel(X, kernel, sigma)
    torch.testing.assert_close(P2, P, rtol=0, atol=0)
    torch.testing.assert_close(d2, d, rtol=0, atol=0)


def test_per_batch_bandwidth(dtype, device):
    X = points((4, 30, 5), dtype, device)
    sigma = torch.tensor([0.3, 1.0, 2.0, 5.0], dtype=dtype, device=device)
    P, d = ops.degree_weighted_kernel(X, "rbf", sigma)
    for b in range(4):
        Pb, db = ops.degree_weighted_kernel(X[b], "rbf", float(sigma[b]))
        rtol, atol = tolerances(dtype)
        torch.testing.assert_close(P[b], Pb, rtol=rtol, atol=atol)
        torch.testing.assert_close(d[b], db, rtol=rtol, atol=atol)
    assert d[0].mean() < d[3].mean()  # a wider bandwidth gives larger degrees


def test_non_contiguous_input(dtype, device):
    wide = points((3, 40, 12), dtype, device)
    cases = {
        "strided columns": wide[..., ::3],
        "transposed batch": points((40, 3, 4), dtype, device).transpose(0, 1),
        "row slice": wide[:, 5:30, :4],
    }
    for name, X in cases.items():
        assert not X.is_contiguous(), name
        for kernel, sigma in KERNEL_CASES:
            P, d = ops.degree_weighted_kernel(X, kernel, sigma)
            with ops.use_backend("reference"):
                Pr, dr = ops.degree_weighted_kernel(X.contiguous(), kernel, sigma)
            torch.testing.assert_close(P, Pr, msg=name)
            torch.testing.assert_close(d, dr, msg=name)


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
@pytest.mark.parametrize("return_kernel", [False, True])
def test_gradcheck(kernel, sigma, return_kernel, device, backend):
    X = points((2, 9, 3), torch.float64, device, seed=1).requires_grad_()
    fn = lambda x: ops.degree_weighted_kernel(x, kernel, sigma, return_kernel=return_kernel)
    assert torch.autograd.gradcheck(fn, (X,))
    # unbatched and non-contiguous, with a per-batch bandwidth tensor
    X2 = points((6, 8), torch.float64, device, seed=2)[:, ::2].detach().requires_grad_()
    s = torch.tensor(0.8, dtype=torch.float64, device=device) if sigma else None
    assert torch.autograd.gradcheck(lambda x: ops.degree_weighted_kernel(x, kernel, s), (X2,))


def test_gradcheck_with_clamped_degrees(device, backend):
    # signed features: some linear degrees are negative, the clamp takes over there
    X = points((12, 3), torch.float64, device, seed=5, signed=True)
    _, d = ops.degree_weighted_kernel(X, "linear", nonpositive="clamp")
    assert (d <= 1e-2).any() and (d > 1e-2).any()
    X.requires_grad_()
    fn = lambda x: ops.degree_weighted_kernel(x, "linear", nonpositive="clamp", eps=1e-2,
                                              return_kernel=True)
    assert torch.autograd.gradcheck(fn, (X,))


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
def test_gradient_matches_reference(kernel, sigma, dtype, device):
    X = points((3, 150, 6), dtype, device).requires_grad_()
    G = points((3, 150, 150), dtype, device, seed=3)
    g = points((3, 150), dtype, device, seed=4)

    def loss():
        P, d, K = ops.degree_weighted_kernel(X, kernel, sigma, return_kernel=True)
        return (P * G).sum() + (d * g).sum() + (K * G.transpose(1, 2)).sum() / 100

    (grad,) = torch.autograd.grad(loss(), X)
    with ops.use_backend("reference"):
        (ref,) = torch.autograd.grad(loss(), X)
    rtol, atol = tolerances(dtype)
    torch.testing.assert_close(grad, ref, rtol=rtol * 100, atol=atol * 100 * ref.abs().max().item())


# ---------------------------------------------------------------- degrees <= 0


def test_nonpositive_degrees_raise_naming_the_rows(device, backend):
    X = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-3.0, 0.0], [0.0, 1.0]], device=device)
    # linear degrees x_i . (sum_j x_j), sum = (-1.1, 1.1): -1.1, -0.88, 3.3, 1.1
    d = X @ X.sum(0)
    bad = (d <= 0).nonzero().squeeze(1).tolist()
    assert bad == [0, 1]
    with pytest.raises(ValueError, match=r"2 degree\(s\) are <= 0 .*rows 0, 1;.*nonpositive='clamp'"):
        ops.degree_weighted_kernel(X, "linear")
    with pytest.raises(ValueError, match=r"rows \(0, 0\), \(0, 1\)"):
        ops.degree_weighted_kernel(X.unsqueeze(0), "linear")
    with pytest.raises(ValueError, match="inverse_degrees: 2 degree"):
        ops.inverse_degrees(ops.kernel_degrees(X, kernel="linear"))
    with pytest.raises(ValueError, match="weighted_center: 2 degree"):
        ops.weighted_center(X)
    P, d2 = ops.degree_weighted_kernel(X, "linear", nonpositive="clamp", eps=0.5)
    assert torch.isfinite(P).all()
    torch.testing.assert_close(d2, d)  # the raw degrees are returned
    K = X @ X.T
    torch.testing.assert_close(P[:2], K[:2] / 0.5)  # the clamped rows use eps
    torch.testing.assert_close(P[2:], K[2:] / d[2:, None])
    inv = ops.inverse_degrees(d, nonpositive="clamp", eps=0.5)
    torch.testing.assert_close(inv, torch.stack([2 * torch.ones_like(d[0])] * 2 + [1 / d[2], 1 / d[3]]))


@needs_extension
def test_raw_op_marks_nonpositive_rows_with_nan_never_inf(device):
    X = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]]], device=device)  # degrees 0, 0, 4
    P, d, _ = torch.ops.pydeepclust.degree_weighted_kernel(X, X.new_ones(1), "linear", 0.0, False)
    assert d.tolist() == [[0.0, 0.0, 4.0]]
    assert torch.isnan(P[0, :2]).all() and not torch.isinf(P).any()
    assert torch.isfinite(P[0, 2]).all()


def test_rbf_degrees_are_at_least_one(dtype, device):
    X = points((2, 50, 3), dtype, device) * 100  # far apart: K ~ I
    _, d = ops.degree_weighted_kernel(X, "rbf", 0.01)
    assert (d >= 1).all()
    torch.testing.assert_close(d, torch.ones_like(d))


# ---------------------------------------------------------------- kernel_degrees


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
@pytest.mark.parametrize("shape", [(0, 3), (1, 4), (5, 3), (3, 70, 4), (1, 700, 9)])
def test_streaming_degrees_match_dense(shape, kernel, sigma, dtype, device):
    X = points(shape, dtype, device)
    d = ops.kernel_degrees(X, kernel=kernel, sigma=sigma)
    with ops.use_backend("reference"):
        _, dense = ops.degree_weighted_kernel(X, kernel, sigma)
    assert d.shape == shape[:-1]
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(d, dense, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
@pytest.mark.parametrize("n, m", [(1, 1), (300, 7), (65, 600), (0, 5), (4, 0)])
def test_out_of_sample_degrees(n, m, kernel, sigma, dtype, device):
    X = points((2, n, 5), dtype, device, seed=1)
    Y = points((2, m, 5), dtype, device, seed=2)
    d = ops.kernel_degrees(X, Y, kernel=kernel, sigma=sigma)
    sig = torch.full((2,), sigma or 1.0, dtype=dtype, device=device)
    expected = reference.kernel_matrix(X.double(), Y.double(), kernel, sig.double()).sum(-1)
    assert d.shape == (2, n)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(d.double(), expected, rtol=tol, atol=tol)
    d0 = ops.kernel_degrees(X[0], Y[0], kernel=kernel, sigma=sigma)
    torch.testing.assert_close(d0, d[0])


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
def test_streaming_degrees_gradcheck(kernel, sigma, device, backend):
    X = points((2, 9, 3), torch.float64, device, seed=1).requires_grad_()
    Y = points((2, 13, 3), torch.float64, device, seed=2).requires_grad_()
    fn = lambda x, y: ops.kernel_degrees(x, y, kernel=kernel, sigma=sigma)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (X, Y))
    assert torch.autograd.gradcheck(lambda x: ops.kernel_degrees(x, kernel=kernel, sigma=sigma), (X,))
    # sizes that span several row and column tiles (fast mode: random projections)
    X = points((2, 70, 3), torch.float64, device, seed=1).requires_grad_()
    Y = points((2, 300, 3), torch.float64, device, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(fn, (X, Y), fast_mode=True)


def test_streaming_gradient_matches_dense(dtype, device):
    X = points((2, 400, 6), dtype, device).requires_grad_()
    w = points((2, 400), dtype, device, seed=9)
    (grad,) = torch.autograd.grad((ops.kernel_degrees(X, kernel="rbf", sigma=0.7) * w).sum(), X)
    with ops.use_backend("reference"):
        _, d = ops.degree_weighted_kernel(X, "rbf", 0.7)
    (ref,) = torch.autograd.grad((d * w).sum(), X)
    rtol, atol = tolerances(dtype)
    torch.testing.assert_close(grad, ref, rtol=rtol * 100, atol=atol * 100 * ref.abs().max().item())


def test_far_out_of_sample_points_underflow_and_are_reported(device):
    Y = points((50, 2), torch.float32, device)
    X = torch.tensor([[0.5, 0.5], [1e3, 1e3]], device=device)
    d = ops.kernel_degrees(X, Y, kernel="rbf", sigma=0.1)
    assert d[0] > 0 and d[1] == 0
    with pytest.raises(ValueError, match=r"1 degree\(s\).*rows 1;"):
        ops.inverse_degrees(d)
    assert torch.isfinite(ops.inverse_degrees(d, nonpositive="clamp", eps=1e-30)).all()


# ---------------------------------------------------------------- KSC centring, GenKSC centre


@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
def test_ksc_centered_kernel_is_the_alzate_suykens_matrix(kernel, sigma, device, backend):
    X = points((2, 40, 3), torch.float64, device)
    A, d = ops.ksc_centered_kernel(X, kernel, sigma)
    for b in range(2):
        _, _, K = ops.degree_weighted_kernel(X[b], kernel, sigma, return_kernel=True)
        Dinv = torch.diag(1 / d[b])
        ones = torch.ones(40, 1, dtype=torch.float64, device=device)
        M_D = torch.eye(40, dtype=torch.float64, device=device) - ones @ ones.T @ Dinv / (ones.T @ Dinv @ ones)
        torch.testing.assert_close(A[b], Dinv @ M_D @ K, rtol=1e-12, atol=1e-12)
    # 1^T D^-1 M_D = 0: every column of D^-1 M_D K sums to zero
    torch.testing.assert_close(A.sum(-2), torch.zeros_like(d), rtol=0, atol=1e-12)


def test_weighted_center(dtype, device):
    Phi = points((3, 64, 10), dtype, device)
    c = ops.weighted_center(Phi)
    d = ops.kernel_degrees(Phi, kernel="linear")
    with ops.use_backend("reference"):
        _, dense = ops.degree_weighted_kernel(Phi, "linear")
    torch.testing.assert_close(d, dense, rtol=1e-5, atol=1e-5)
    v = 1 / dense
    expected = (v[..., None] * Phi).sum(1) / v.sum(1, keepdim=True)
    torch.testing.assert_close(c, expected)
    # the centred features have zero weighted mean
    centred = Phi - c.unsqueeze(1)
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close((v[..., None] * centred).sum(1), torch.zeros_like(c), rtol=0, atol=tol)
    torch.testing.assert_close(ops.weighted_center(Phi[0], d[0]), c[0])
    Phi64 = points((2, 20, 4), torch.float64, device).requires_grad_()
    assert torch.autograd.gradcheck(ops.weighted_center, (Phi64,))


# ---------------------------------------------------------------- bad input


X_OK = torch.rand(2, 5, 3)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(X=torch.rand(5)), ValueError, "X must have 2 or 3 dimensions"),
        (dict(X=torch.ones(5, 3, dtype=torch.int64)), TypeError, "X must be float32 or float64"),
        (dict(X=X_OK.numpy()), TypeError, "X must be a torch.Tensor"),
        (dict(kernel="poly"), ValueError, "kernel must be one of"),
        (dict(sigma=None), ValueError, "needs a bandwidth sigma"),
        (dict(sigma=-1.0), ValueError, "sigma must be > 0 and finite, got -1.0"),
        (dict(sigma="1"), TypeError, "sigma must be a positive number or a floating tensor"),
        (dict(sigma=torch.ones(3)), ValueError, r"one bandwidth per batch element, shape \(2,\)"),
        (dict(sigma=torch.tensor([1.0, 0.0])), ValueError, "sigma must be > 0 and finite"),
        (dict(sigma=torch.tensor([1.0, float("inf")])), ValueError, "sigma must be > 0 and finite"),
        (dict(sigma=torch.tensor([1, 2])), TypeError, "or a floating tensor, got torch.int64"),
        (dict(sigma=float("inf")), ValueError, "sigma must be > 0 and finite, got inf"),
        (dict(sigma=torch.ones(2, device="meta")), ValueError, "sigma must be on X's device"),
        (dict(kernel="linear", sigma=1.0), ValueError, "linear kernel takes none"),
    ],
)
@pytest.mark.parametrize("fn", ["degree_weighted_kernel", "kernel_degrees", "ksc_centered_kernel"])
def test_bad_input_gets_clear_error(fn, kwargs, exc, match, backend):
    args = dict(X=X_OK, kernel="rbf", sigma=1.0) | kwargs
    with pytest.raises(exc, match=match):
        getattr(ops, fn)(**args)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("call", [
    lambda X: ops.degree_weighted_kernel(X, "rbf", 1.0),
    lambda X: ops.degree_weighted_kernel(X, "linear"),
    lambda X: ops.ksc_centered_kernel(X, "rbf", 1.0),
    lambda X: ops.kernel_degrees(X, kernel="rbf", sigma=1.0),
    lambda X: ops.kernel_degrees(X, kernel="linear"),
    lambda X: ops.kernel_degrees(torch.ones_like(X), X, kernel="rbf", sigma=1.0),
    lambda X: ops.weighted_center(X, nonpositive="clamp"),
], ids=["dwk-rbf", "dwk-linear", "ksc-centered", "degrees-rbf", "degrees-linear",
        "degrees-Y", "weighted-center"])
def test_non_finite_rows_are_named_not_hidden(call, value, device, dtype, backend):
    # An RBF affinity to a point at infinity underflows to a plausible 0 in the native
    # kernels: the wrappers must name the row instead (on both backends alike).
    X = torch.rand(2, 6, 3, device=device, dtype=dtype)
    X[1, 4, 2] = value
    with pytest.raises(ValueError, match=r"has NaN or inf in 1 row\(s\) \(first flat row index: 10\)"):
        call(X)


def test_check_finite_false_lets_nan_propagate_for_callers_that_check(backend):
    X = torch.rand(6, 3, dtype=torch.float64)
    X[4, 1] = math.nan
    degrees = ops.kernel_degrees(X, kernel="linear", check_finite=False)
    assert torch.isnan(degrees).all()  # every degree sums over the bad row
    assert torch.isnan(ops.weighted_center(X, nonpositive="clamp", check_finite=False)[1])


def test_weighted_center_of_no_rows_is_refused():
    with pytest.raises(ValueError, match="weighted_center: Phi has no rows"):
        ops.weighted_center(torch.empty(0, 3))


def test_numpy_scalar_bandwidths_are_numbers(backend):
    X = torch.rand(6, 3, dtype=torch.float64)
    for op in (lambda s: ops.kernel_degrees(X, kernel="rbf", sigma=s),
               lambda s: ops.rbf_affinity(X, s)):
        torch.testing.assert_close(op(np.float32(0.5)), op(0.5))


def test_bad_policy_and_y():
    with pytest.raises(ValueError, match="nonpositive must be one of"):
        ops.degree_weighted_kernel(X_OK, "linear", nonpositive="ignore")
    with pytest.raises(ValueError, match="eps must be a positive float"):
        ops.degree_weighted_kernel(X_OK, "linear", nonpositive="clamp", eps=0.0)
    with pytest.raises(ValueError, match="eps must be a positive float"):
        ops.inverse_degrees(torch.ones(3), nonpositive="clamp", eps=-1)
    with pytest.raises(ValueError, match=r"Y must have shape \(B, m, d\) = \(2, m, 3\)"):
        ops.kernel_degrees(X_OK, torch.rand(2, 4, 5), kernel="linear")
    with pytest.raises(ValueError, match="Y must have 3 dimensions"):
        ops.kernel_degrees(X_OK, torch.rand(4, 3), kernel="linear")
    with pytest.raises(ValueError, match="share device and dtype"):
        ops.kernel_degrees(X_OK, torch.rand(2, 4, 3).double(), kernel="rbf", sigma=1.0)
    with pytest.raises(ValueError, match=r"degrees must have shape \(2, 5\)"):
        ops.weighted_center(X_OK, torch.ones(5))


@needs_extension
def test_raw_ops_reject_bad_input():
    X = torch.rand(2, 5, 3)
    with pytest.raises(RuntimeError, match="X must have shape \\(B, n, d\\)"):
        torch.ops.pydeepclust.degree_weighted_kernel(X[0], torch.ones(2), "rbf", 0.0, False)
    with pytest.raises(RuntimeError, match="kernel must be 'rbf' or 'linear'"):
        torch.ops.pydeepclust.degree_weighted_kernel(X, torch.ones(2), "poly", 0.0, False)
    with pytest.raises(RuntimeError, match="sigma must have shape"):
        torch.ops.pydeepclust.degree_weighted_kernel(X, torch.ones(3), "rbf", 0.0, False)
    with pytest.raises(RuntimeError, match="weights must have shape"):
        torch.ops.pydeepclust.rbf_row_sums(X, X, torch.ones(2, 4), torch.ones(2))
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.ops.pydeepclust.rbf_row_sums(X, X.double(), torch.ones(2, 5), torch.ones(2))


# ---------------------------------------------------------------- torch.library / compile


@needs_extension
@pytest.mark.parametrize("kernel", ["rbf", "linear"])
@pytest.mark.parametrize("shape", [(1, 0, 3), (1, 1, 2), (2, 17, 4)])
def test_opcheck(shape, kernel, dtype, device):
    X = points(shape, dtype, device)
    sigma = torch.full((shape[0],), 0.9, dtype=dtype, device=device)
    for return_kernel in (False, True):
        torch.library.opcheck(torch.ops.pydeepclust.degree_weighted_kernel,
                              (X, sigma, kernel, 0.0, return_kernel))
        torch.library.opcheck(torch.ops.pydeepclust.degree_weighted_kernel,
                              (X.clone().requires_grad_(), sigma, kernel, 1e-3, return_kernel))
    P, d, _ = torch.ops.pydeepclust.degree_weighted_kernel(X, sigma, kernel, 0.0, False)
    torch.library.opcheck(torch.ops.pydeepclust.degree_weighted_kernel_backward,
                          (torch.randn_like(P), torch.randn_like(d), None, X, sigma, P, d, kernel, 0.0))
    Y = points((shape[0], 9, shape[2]), dtype, device, seed=3)
    w = torch.rand(shape[0], 9, dtype=dtype, device=device)
    torch.library.opcheck(torch.ops.pydeepclust.rbf_row_sums, (X, Y, w, sigma))
    torch.library.opcheck(torch.ops.pydeepclust.rbf_row_sums,
                          (X.clone().requires_grad_(), Y.requires_grad_(), w, sigma))
    torch.library.opcheck(torch.ops.pydeepclust.rbf_row_moments, (X, Y.detach(), w, sigma))


@needs_extension
@pytest.mark.parametrize("kernel, sigma", KERNEL_CASES)
def test_torch_compile_fullgraph(kernel, sigma, device):
    X = points((4, 64, 8), torch.float32, device).requires_grad_()

    def loss_fn(x):
        P, d = ops.degree_weighted_kernel(x, kernel, sigma, nonpositive="clamp")
        streamed = ops.kernel_degrees(x, kernel=kernel, sigma=sigma)
        c = ops.weighted_center(x, streamed, nonpositive="clamp")
        return P.square().mean() + streamed.mean() + c.square().sum(), d

    compiled = torch.compile(loss_fn, fullgraph=True, dynamic=False)
    loss, d = compiled(X)
    (grad,) = torch.autograd.grad(loss, X)
    ref_loss, ref_d = loss_fn(X)
    (ref_grad,) = torch.autograd.grad(ref_loss, X)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(d, ref_d)
    torch.testing.assert_close(grad, ref_grad)


def test_cuda_kernels_registered_iff_built_with_cuda():
    info = ops.build_info()
    names = ("degree_weighted_kernel", "degree_weighted_kernel_backward", "rbf_row_sums",
             "rbf_row_moments")
    if not info["available"]:
        assert not ops.has_kernel(names[0], "cpu")
        return
    for op in names:
        assert ops.has_kernel(op, "cpu")
        assert ops.has_kernel(op, "cuda") == info["cuda"]
