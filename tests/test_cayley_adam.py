"""CayleyAdam: Stiefel parameters stay orthonormal and reach the optimum; Euclidean groups are Adam."""

import io
import math

import pytest
import torch

import pydeepclust.ops as ops
from pydeepclust.optim import CayleyAdam, stiefel_one_norm


def orthonormal(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(*shape, generator=g, dtype=torch.float64)).Q.to(dtype)


def spectrum_problem(n, p, seed=0):
    """Symmetric A with a clear gap after its top p eigenvalues, and that eigenspace."""
    Q = orthonormal(n, n, dtype=torch.float64, seed=seed)
    eigs = torch.cat([torch.linspace(3.0, 2.0, p), torch.linspace(1.0, 0.0, n - p)]).double()
    return ((Q * eigs) @ Q.T).float(), Q[:, :p].float()


def trace_steps(U, A, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        (-torch.einsum("...ij,ik,...kj->", U, A, U)).backward()
        opt.step()


def test_reaches_top_eigenspace_and_stays_orthonormal_over_10000_steps():
    n, p = 12, 3
    A, top = spectrum_problem(n, p)
    U = torch.nn.Parameter(orthonormal(n, p, seed=1))
    opt = CayleyAdam([U], lr=0.01)
    trace_steps(U, A, opt, 10_000)
    U = U.detach()
    distance = torch.linalg.matrix_norm(U @ U.T - top @ top.T, ord=2)
    assert distance < 1e-3
    assert ops.orthonormality_error(U) < 1e-5
    assert torch.linalg.matrix_norm(U.T @ U - torch.eye(p)) < 1e-5


def test_batched_parameter_equals_separate_matrices(backend):
    A, _ = spectrum_problem(10, 2)
    start = orthonormal(3, 10, 2, seed=2)
    batched = torch.nn.Parameter(start.clone())
    trace_steps(batched, A, CayleyAdam([batched], lr=0.05), 30)
    assert ops.orthonormality_error(batched.detach()).max() < 1e-5
    for b in range(3):
        single = torch.nn.Parameter(start[b].clone())
        trace_steps(single, A, CayleyAdam([single], lr=0.05), 30)
        torch.testing.assert_close(batched.detach()[b], single.detach(), rtol=1e-5, atol=1e-5)


def test_euclidean_group_is_adam_and_mixed_groups_work():
    A, _ = spectrum_problem(8, 2)
    U = torch.nn.Parameter(orthonormal(8, 2))
    w = torch.nn.Parameter(torch.randn(5))
    w_ref = torch.nn.Parameter(w.detach().clone())
    opt = CayleyAdam([{"params": [U]}, {"params": [w], "stiefel": False, "lr": 1e-2}], lr=0.05)
    ref = torch.optim.Adam([w_ref], lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        ref.zero_grad()
        (-torch.trace(U.T @ A @ U) + (w**2).sum() * torch.trace(U.T @ A @ U).detach()).backward()
        (w_ref**2 * torch.trace(U.T @ A @ U).detach()).sum().backward()
        opt.step()
        ref.step()
    torch.testing.assert_close(w.detach(), w_ref.detach())
    assert ops.orthonormality_error(U.detach()) < 1e-5


def test_state_dict_round_trip():
    A, _ = spectrum_problem(9, 3)
    U = torch.nn.Parameter(orthonormal(2, 9, 3))
    w = torch.nn.Parameter(torch.randn(4))

    def make(u, v):
        return CayleyAdam([{"params": [u]}, {"params": [v], "stiefel": False}], lr=0.03,
                          betas=(0.8, 0.99))

    def steps(u, v, opt, k):
        for _ in range(k):
            opt.zero_grad()
            (-torch.einsum("bij,ik,bkj->", u, A, u) + (v**3).sum()).backward()
            opt.step()

    opt = make(U, w)
    steps(U, w, opt, 5)
    buffer = io.BytesIO()  # through serialisation, as a checkpoint would go
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    U2 = torch.nn.Parameter(U.detach().clone())
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = make(U2, w2)
    opt2.load_state_dict(saved)
    assert opt2.state_dict()["param_groups"] == saved["param_groups"]
    steps(U, w, opt, 5)
    steps(U2, w2, opt2, 5)
    assert torch.equal(U.detach(), U2.detach()) and torch.equal(w.detach(), w2.detach())
    assert opt2.state[U2]["step"] == 10


def test_step_size_rule_uses_the_one_norm():
    # alpha = min(lr, 1 / ||W||_1): W is formed in column blocks; compare with the dense W.
    X = orthonormal(2, 40, 5, dtype=torch.float64)
    D = torch.randn(2, 40, 5, dtype=torch.float64)
    D_hat = D - 0.5 * X @ (X.mT @ D)
    W = D_hat @ X.mT - X @ D_hat.mT
    dense = W.abs().sum(dim=-2).amax(dim=-1)
    torch.testing.assert_close(stiefel_one_norm(X, D), dense)


def test_non_orthonormal_parameter_is_rejected_at_the_first_step():
    U = torch.nn.Parameter(torch.randn(10, 3))
    opt = CayleyAdam([U])
    U.grad = torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"parameter 0 of shape \(10, 3\) must have orthonormal"):
        opt.step()


@pytest.mark.parametrize(
    "param, kwargs, exc, match",
    [
        (torch.randn(3, 10), {}, ValueError, "1 <= p <= n"),
        (torch.randn(10), {}, ValueError, r"shape \(n, p\) or \(B, n, p\)"),
        (torch.randn(10, 3).half(), {}, TypeError, "float32 or float64"),
        (torch.randn(10, 3), {"lr": 0.0}, ValueError, "lr must be > 0"),
        (torch.randn(10, 3), {"betas": (0.9, 1.0)}, ValueError, "betas"),
        (torch.randn(10, 3), {"eps": -1.0}, ValueError, "eps"),
        (torch.randn(10, 3), {"eps": 0.0}, ValueError, "eps must be > 0 and finite, got 0.0"),
        (torch.randn(10, 3), {"eps": math.nan}, ValueError, "eps must be > 0 and finite"),
        (torch.randn(10, 3), {"lr": math.inf}, ValueError, "lr must be > 0 and finite"),
        (torch.randn(10, 3), {"lr": "0.1"}, ValueError, "lr must be a number or a 0-d float tensor, got '0.1'"),
        (torch.randn(10, 3), {"lr": True}, ValueError, "lr must be a number or a 0-d float tensor, got True"),
        (torch.randn(10, 3), {"betas": 0.9}, ValueError, "betas must be two numbers"),
        (torch.randn(10, 3), {"betas": (2.0, 0.5)}, ValueError, "betas must be two numbers"),
        (torch.randn(5, 0), {}, ValueError, "1 <= p <= n"),
    ],
)
def test_bad_arguments(param, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CayleyAdam([torch.nn.Parameter(param)], **kwargs)


def test_add_param_group_checks_stiefel_shapes():
    opt = CayleyAdam([torch.nn.Parameter(orthonormal(6, 2))])
    opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(7))], "stiefel": False})
    with pytest.raises(ValueError, match="p <= n"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(2, 6))]})


@pytest.mark.parametrize("group, match", [
    ({"lr": -1.0}, "lr of param group 1 must be > 0"),
    ({"betas": (0.9, 1.5)}, "betas of param group 1 must be two numbers"),
    ({"eps": math.nan}, "eps of param group 1 must be > 0"),
])
def test_param_group_hyperparameters_are_checked(group, match):
    with pytest.raises(ValueError, match=match):
        CayleyAdam([{"params": [torch.nn.Parameter(orthonormal(6, 2))]},
                    {"params": [torch.nn.Parameter(torch.randn(3))], "stiefel": False, **group}])
    opt = CayleyAdam([torch.nn.Parameter(orthonormal(6, 2))])
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": [torch.nn.Parameter(orthonormal(5, 2))], **group})


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("which", ["stiefel", "euclidean"])
def test_a_non_finite_gradient_moves_no_parameter(which, bad):
    U = torch.nn.Parameter(orthonormal(6, 2))
    w = torch.nn.Parameter(torch.randn(4))
    opt = CayleyAdam([{"params": [U]}, {"params": [w], "stiefel": False, "lr": 1e-2}], lr=0.05)
    U.grad, w.grad = torch.randn(6, 2), torch.randn(4)
    opt.step()  # a first, good step: state exists
    before = (U.detach().clone(), w.detach().clone())
    U.grad, w.grad = torch.randn(6, 2), torch.randn(4)
    (U if which == "stiefel" else w).grad[1] = bad
    group = 0 if which == "stiefel" else 1
    with pytest.raises(FloatingPointError, match=f"parameter 0 of param group {group} has NaN"):
        opt.step()
    assert torch.equal(U, before[0]) and torch.equal(w, before[1])


def test_a_nan_stiefel_parameter_is_not_orthonormal():
    U = torch.nn.Parameter(orthonormal(6, 2))
    with torch.no_grad():
        U[0, 0] = math.nan
    U.grad = torch.randn(6, 2)
    with pytest.raises(ValueError, match="orthonormal columns at the first step"):
        CayleyAdam([U]).step()


def test_a_refused_group_does_not_stay_in_the_optimizer():
    opt = CayleyAdam([torch.nn.Parameter(orthonormal(6, 2))])
    w = torch.nn.Parameter(torch.randn(3))
    with pytest.raises(ValueError, match="lr of param group 1"):
        opt.add_param_group({"params": [w], "stiefel": False, "lr": -1.0})
    assert len(opt.param_groups) == 1


def test_a_tensor_learning_rate_steps_like_the_number():
    def run(lr):
        U = torch.nn.Parameter(orthonormal(6, 2))
        w = torch.nn.Parameter(torch.ones(3))
        opt = CayleyAdam([{"params": [U]}, {"params": [w], "stiefel": False}], lr=lr)
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            U.grad, w.grad = torch.randn(6, 2, generator=g), torch.randn(3, generator=g)
            opt.step()
        return U.detach(), w.detach()

    for got, want in zip(run(torch.tensor(1e-2)), run(1e-2)):
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="lr must be a number or a 0-d float tensor"):
        CayleyAdam([torch.nn.Parameter(orthonormal(6, 2))], lr=torch.ones(2))
