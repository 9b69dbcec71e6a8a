"""Cayley retraction on the Stiefel manifold: kernels vs reference, orthonormality, gradients."""

import pytest
import torch

import pydeepclust.ops as ops
from pydeepclust.ops import reference
from pydeepclust.ops.cayley import cayley_retraction_vjp
from tests.conftest import needs_extension, tolerances


# Shapes on both CPU paths: fused per matrix (n p <= 1024) and BLAS (larger).
SHAPES = [(1, 1), (5, 3), (6, 6), (64, 8), (256, 10), (300, 40), (3, 64, 8), (4, 20, 20),
          (2, 300, 40), (1, 1024, 16)]
ORTHO_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def stiefel(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.linalg.qr(torch.randn(*shape, generator=g, dtype=torch.float64)).Q
    return X.to(dtype=dtype, device=device)


def direction(shape, dtype, device, seed=1, norm=None):
    """A random direction, scaled to unit Frobenius norm per matrix when norm=1."""
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(*shape, generator=g, dtype=torch.float64)
    if norm is not None:
        G = norm * G / torch.linalg.matrix_norm(G, keepdim=True)
    return G.to(dtype=dtype, device=device)


@pytest.mark.parametrize("shape", SHAPES + [(0, 4, 2), (5, 0), (0, 0)])
def test_matches_reference(shape, dtype, device):
    X, G = stiefel(shape, dtype, device), direction(shape, dtype, device)
    taus = [0.3]
    if len(shape) == 3:  # and one step size per batch matrix
        taus.append(torch.linspace(0.05, 2.0, shape[0], dtype=dtype, device=device))
    rtol, atol = tolerances(dtype)
    for tau in taus:
        Y = ops.cayley_retraction(X, G, tau)
        assert Y.shape == X.shape and Y.dtype == dtype and Y.device == X.device
        if X.numel():
            torch.testing.assert_close(Y, reference.cayley_retraction(X, G, tau), rtol=rtol * 10,
                                       atol=atol * 10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tau", [1e-4, 0.1, 1.0, 5.0])
def test_one_step_keeps_orthonormality(shape, tau, dtype, device, backend):
    # tau is in units of the direction's norm: ||G||_F = 1 per matrix.
    X = stiefel(shape, dtype, device)
    G = direction(shape, dtype, device, norm=1.0)
    Y = ops.cayley_retraction(X, G, tau)
    assert ops.orthonormality_error(Y).max() <= ORTHO_TOL[dtype]
    if shape[-2] > 1:  # (1, 1): the manifold is {-1, 1}, nothing to move along
        assert (Y - X).abs().max() > 0


def test_many_steps_keep_orthonormality(dtype, device, backend):
    X = stiefel((4, 50, 6), dtype, device)
    for k in range(200):
        X = ops.cayley_retraction(X, direction(X.shape, dtype, device, seed=k, norm=1.0), 0.5)
    assert ops.orthonormality_error(X).max() <= 20 * ORTHO_TOL[dtype]


def test_large_gradients_in_float32_stay_orthonormal_to_the_bound(device, backend):
    # Rounding grows with tau ||G||; up to tau ||G|| = 10 float32 stays within 1e-5.
    X = stiefel((2, 200, 20), torch.float32, device)
    G = direction(X.shape, torch.float32, device, norm=100.0)
    Y = ops.cayley_retraction(X, G, 0.1)
    assert ops.orthonormality_error(Y).max() <= 1e-5


def test_step_follows_the_cayley_transform(device, backend):
    # Dense definition: (I + tau/2 W) Y = (I - tau/2 W) X with W = Ghat X^T - X Ghat^T.
    X = stiefel((30, 4), torch.float64, device)
    G = direction((30, 4), torch.float64, device)
    G_hat = G - 0.5 * X @ (X.T @ G)
    W = G_hat @ X.T - X @ G_hat.T
    eye = torch.eye(30, dtype=torch.float64, device=device)

    def dense(tau):
        return torch.linalg.solve(eye + 0.5 * tau * W, (eye - 0.5 * tau * W) @ X)

    torch.testing.assert_close(ops.cayley_retraction(X, G, 0.7), dense(0.7), rtol=1e-12,
                               atol=1e-12)
    # the fixed-point loop of the benchmarks converges to it for a small step
    errors = [(reference.cayley_fixed_point(X, G, 0.05, k) - dense(0.05)).abs().max()
              for k in (2, 5)]
    assert errors[1] < 0.1 * errors[0]


def test_zero_step_and_descent(dtype, device, backend):
    X = stiefel((40, 5), dtype, device)
    A = direction((40, 40), dtype, device)
    A = A + A.T
    assert torch.equal(ops.cayley_retraction(X, direction(X.shape, dtype, device), 0.0), X)
    # f(X) = -tr(X^T A X) has Euclidean gradient -2 A X: a small step descends
    G = -2 * A @ X
    Y = ops.cayley_retraction(X, G, 1e-3)
    assert -torch.trace(Y.T @ A @ Y) < -torch.trace(X.T @ A @ X)


def test_initial_velocity_is_minus_riemannian_gradient(device, backend):
    X = stiefel((20, 3), torch.float64, device)
    G = direction((20, 3), torch.float64, device)
    h = 1e-6
    velocity = (ops.cayley_retraction(X, G, h) - ops.cayley_retraction(X, G, -h)) / (2 * h)
    XtG = X.T @ G
    riemannian = G - X @ (0.5 * (XtG + XtG.T))
    torch.testing.assert_close(velocity, -riemannian, rtol=1e-7, atol=1e-7)


def test_per_batch_tau_equals_separate_steps(dtype, device, backend):
    X, G = stiefel((3, 12, 4), dtype, device), direction((3, 12, 4), dtype, device)
    tau = torch.tensor([0.1, 0.0, 2.0], dtype=dtype, device=device)
    Y = ops.cayley_retraction(X, G, tau)
    rtol, atol = tolerances(dtype)
    for b in range(3):
        torch.testing.assert_close(Y[b], ops.cayley_retraction(X[b], G[b], float(tau[b])),
                                   rtol=rtol, atol=atol)


def test_non_contiguous_inputs(dtype, device, backend):
    cases = {
        "column-major": (stiefel((70, 9), dtype, device).T.contiguous().T,
                         direction((9, 70), dtype, device).T),
        "strided columns": (stiefel((3, 20, 12), dtype, device)[..., ::2],
                            direction((3, 20, 12), dtype, device)[..., ::2]),
        "batch not outermost": (stiefel((5, 30, 3), dtype, device).transpose(0, 1).contiguous()
                                .transpose(0, 1), direction((30, 5, 3), dtype, device).transpose(0, 1)),
    }
    for name, (X, G) in cases.items():
        assert not X.is_contiguous() and not G.is_contiguous(), name
        Y = ops.cayley_retraction(X, G, 0.4)
        torch.testing.assert_close(Y, ops.cayley_retraction(X.contiguous(), G.contiguous(), 0.4),
                                   msg=name)
        assert ops.orthonormality_error(Y).max() <= ORTHO_TOL[dtype], name


@pytest.mark.parametrize("shape, tau_shape", [((7, 3), ()), ((3, 6, 2), (3,)), ((2, 5, 5), ())])
def test_gradcheck(shape, tau_shape, device, backend):
    X = stiefel(shape, torch.float64, device).requires_grad_()
    G = direction(shape, torch.float64, device).requires_grad_()
    tau = (0.3 + torch.rand(tau_shape, dtype=torch.float64, device=device)).requires_grad_()
    assert torch.autograd.gradcheck(ops.cayley_retraction, (X, G, tau))
    if len(shape) == 2:
        assert torch.autograd.gradgradcheck(ops.cayley_retraction, (X, G, tau))


def test_gradient_on_the_blas_path_matches_reference(device):
    # gradcheck is too slow at n p > 1024; compare one backward with the reference's autograd
    X = stiefel((2, 300, 8), torch.float64, device).requires_grad_()
    G = direction((2, 300, 8), torch.float64, device).requires_grad_()
    tau = torch.tensor([0.2, 0.9], dtype=torch.float64, device=device, requires_grad=True)
    grad_Y = direction((2, 300, 8), torch.float64, device, seed=7)
    got = torch.autograd.grad(ops.cayley_retraction(X, G, tau), (X, G, tau), grad_Y)
    want = torch.autograd.grad(reference.cayley_retraction(X, G, tau), (X, G, tau), grad_Y)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_vjp_formula_matches_autograd_of_the_reference(device):
    X = stiefel((4, 9, 3), torch.float64, device).requires_grad_()
    G = direction((4, 9, 3), torch.float64, device).requires_grad_()
    tau = torch.rand(4, dtype=torch.float64, device=device).requires_grad_()
    Y = reference.cayley_retraction(X, G, tau)
    grad_Y = torch.randn_like(Y)
    expected = torch.autograd.grad(Y, (X, G, tau), grad_Y)
    for got, want in zip(cayley_retraction_vjp(X, G, tau, grad_Y), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_non_orthonormal_X(device, backend):
    X = direction((10, 3), torch.float64, device)  # not orthonormal
    G = direction((10, 3), torch.float64, device, seed=5)
    with pytest.raises(ValueError, match=r"X must have orthonormal columns: max \|X\^T X - I\|"):
        ops.cayley_retraction(X, G, 0.1, check_orthonormal=True)
    # unchecked: the same formula runs, finite, but the result is not orthonormal
    Y = ops.cayley_retraction(X, G, 0.1)
    assert torch.isfinite(Y).all() and ops.orthonormality_error(Y) > 1e-3
    ops.cayley_retraction(stiefel((10, 3), torch.float64, device), G, 0.1, check_orthonormal=True)
    X_nan = stiefel((10, 3), torch.float64, device)
    X_nan[4, 1] = float("nan")  # max |X^T X - I| is NaN: not within any tolerance
    with pytest.raises(ValueError, match="X must have orthonormal columns"):
        ops.cayley_retraction(X_nan, G, 0.1, check_orthonormal=True)


@pytest.mark.parametrize(
    "X, G, tau, exc, match",
    [
        (torch.randn(5), torch.randn(5), 0.1, ValueError, "X must have 2 or 3 dimensions"),
        (torch.randn(2, 2, 5, 3), torch.randn(2, 2, 5, 3), 0.1, ValueError, "2 or 3 dim"),
        (torch.randn(3, 5), torch.randn(3, 5), 0.1, ValueError, "needs p <= n"),
        (torch.randn(5, 3), torch.randn(5, 2), 0.1, ValueError, "G must have the shape of X"),
        (torch.randn(5, 3), torch.randn(5, 3).double(), 0.1, TypeError, "G must have X's dtype"),
        (torch.ones(5, 3, dtype=torch.int64), torch.ones(5, 3), 0.1, TypeError, "float32 or"),
        (torch.randn(5, 3), torch.randn(5, 3).numpy(), 0.1, TypeError, "G must be a torch.Tensor"),
        (torch.randn(5, 3), torch.randn(5, 3), torch.ones(2), ValueError, "tau must be a number"),
        (torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.ones(3), ValueError, r"shape \(B,\)"),
        (torch.randn(5, 3), torch.randn(5, 3), torch.tensor(1), TypeError, "tau must be a real"),
        (torch.randn(5, 3), torch.randn(5, 3), "0.1", TypeError, "tau must be a real"),
        (torch.randn(5, 3), torch.randn(5, 3), torch.tensor(1.0, device="meta"), ValueError,
         "tau must be on X's device"),
    ],
)
def test_bad_input_gets_clear_error(X, G, tau, exc, match, backend):
    with pytest.raises(exc, match=match):
        ops.cayley_retraction(X, G, tau)


@needs_extension
def test_raw_op_rejects_bad_input():
    op = torch.ops.pydeepclust.cayley_retraction
    tau = torch.tensor(0.1)
    with pytest.raises(RuntimeError, match="needs p <= n"):
        op(torch.randn(3, 5), torch.randn(3, 5), tau)
    with pytest.raises(RuntimeError, match="G must have the shape of X"):
        op(torch.randn(5, 3), torch.randn(5, 2), tau)
    with pytest.raises(RuntimeError, match="same dtype"):
        op(torch.randn(5, 3), torch.randn(5, 3), tau.double())
    with pytest.raises(RuntimeError, match="tau must be a 0-d tensor"):
        op(torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.ones(3))
    with pytest.raises(RuntimeError, match="float32 or float64"):
        op(torch.ones(5, 3, dtype=torch.int32), torch.ones(5, 3, dtype=torch.int32),
           torch.ones((), dtype=torch.int32))


@needs_extension
@pytest.mark.parametrize("shape, tau_shape", [((5, 3), ()), ((3, 64, 8), (3,)), ((100, 20), ()),
                                              ((0, 4, 2), ())])
def test_opcheck(shape, tau_shape, dtype, device):
    X, G = stiefel(shape, dtype, device), direction(shape, dtype, device)
    tau = torch.full(tau_shape, 0.2, dtype=dtype, device=device)
    torch.library.opcheck(torch.ops.pydeepclust.cayley_retraction, (X, G, tau))
    torch.library.opcheck(torch.ops.pydeepclust.cayley_retraction,
                          (X.requires_grad_(), G.requires_grad_(), tau.requires_grad_()))


@needs_extension
def test_torch_compile_fullgraph(device):
    X = stiefel((4, 32, 5), torch.float32, device).requires_grad_()
    G = direction((4, 32, 5), torch.float32, device)
    tau = torch.rand(4, device=device)

    def fn(x, g, t):
        y = ops.cayley_retraction(x, g, t)
        return (y * y.roll(1, dims=1)).sum()

    compiled = torch.compile(fn, fullgraph=True, dynamic=False)
    loss = compiled(X, G, tau)
    (grad,) = torch.autograd.grad(loss, X)
    ref_loss = fn(X, G, tau)
    (ref_grad,) = torch.autograd.grad(ref_loss, X)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


def test_cuda_kernel_registered_iff_built_with_cuda():
    info = ops.build_info()
    if not info["available"]:
        assert not ops.has_kernel("cayley_retraction", "cpu")
        return
    assert ops.has_kernel("cayley_retraction", "cpu")
    assert ops.has_kernel("cayley_retraction", "cuda") == info["cuda"]


def test_helpers_name_bad_arguments():
    with pytest.raises(TypeError, match="default_orthonormality_tol: dtype must be"):
        ops.default_orthonormality_tol("x")
    with pytest.raises(TypeError, match="orthonormality_error: X must be a torch.Tensor"):
        ops.orthonormality_error([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="orthonormality_error: X must have 2 or 3 dimensions"):
        ops.orthonormality_error(torch.ones(3))
    assert ops.has_kernel("no_such_op", "cpu") is False
