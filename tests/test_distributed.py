"""Data-parallel training on two gloo ranks equals one process on the concatenated batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from pydeepclust import distributed as pdist
from tests.distributed_harness import run_ranks

WORLD = 2


# -- collectives -------------------------------------------------------------------------------


def _toy_loss(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A loss that couples every row: gathered rows against a summed statistic."""
    h = x @ weight
    total = pdist.all_reduce_sum(h.sum(0))
    gathered = pdist.all_gather(h)
    return (gathered * total).sin().sum() + pdist.all_reduce_sum(h.square().sum())


def _toy_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 2, generator=g, dtype=torch.float64)
    return x, weight


def _toy_step(sizes):
    x, weight = _toy_data()
    bounds = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    mine = x[bounds[pdist.rank()]:bounds[pdist.rank() + 1]].clone().requires_grad_()
    w = weight.clone().requires_grad_()
    loss = _toy_loss(mine, w)
    loss.backward()
    pdist.average_gradients([w])
    return float(loss), w.grad, mine.grad


@pytest.mark.parametrize("sizes", [(3, 3), (4, 2), (0, 6)])
def test_collectives_have_adjoint_gradients(tmp_path, sizes):
    x, weight = _toy_data()
    xs, ws = x.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = _toy_loss(xs, ws)  # one process: the collectives are the identity
    loss.backward()
    ranks = run_ranks(_toy_step, WORLD, tmp_path, sizes)
    start = 0
    for r, (value, grad_w, grad_x) in enumerate(ranks):
        assert value == pytest.approx(float(loss), rel=1e-12)
        torch.testing.assert_close(grad_w, ws.grad, rtol=1e-12, atol=1e-12)
        # every rank computes the whole loss, so its inputs collect W copies of dL/dx
        torch.testing.assert_close(grad_x, WORLD * xs.grad[start:start + sizes[r]],
                                   rtol=1e-12, atol=1e-12)
        start += sizes[r]


def _broadcasts():
    t = torch.full((3,), float(pdist.rank()))
    pdist.broadcast_(t)
    obj = pdist.broadcast_object({"rank": pdist.rank()})
    drifted = torch.full((2,), float(pdist.rank()))
    try:
        pdist.check_in_sync({"same": t, "drifted": drifted}, "test", force=True)
        error = None
    except RuntimeError as err:
        error = str(err)
    return t, obj, pdist.rank_rows(8), pdist.rank_rows(5), pdist.world_size(), error


def test_rank_helpers_and_sync_check(tmp_path):
    ranks = run_ranks(_broadcasts, WORLD, tmp_path)
    for r, (t, obj, share, uneven, world, error) in enumerate(ranks):
        assert torch.equal(t, torch.zeros(3))
        assert obj == {"rank": 0}
        assert share == slice(4 * r, 4 * r + 4)
        assert uneven == [slice(0, 3), slice(3, 5)][r]  # as torch.tensor_split
        assert world == WORLD
        assert "drifted differ between the 2 ranks" in error and "same" not in error


def test_single_process_is_the_identity():
    assert not pdist.is_distributed() and pdist.rank() == 0 and pdist.world_size() == 1
    x = torch.randn(4, 2)
    assert pdist.all_reduce_sum(x) is x and pdist.all_gather(x) is x
    assert pdist.rank_rows(5) == slice(0, 5)
    assert not dist.is_initialized()


def _errors():
    messages = []
    try:
        with pdist.raise_together("fit"):
            if pdist.rank() == 1:
                raise ValueError("X has NaN in row 3")
    except (ValueError, RuntimeError) as err:
        messages.append(f"{type(err).__name__}: {err}")
    try:
        pdist.check_same_data(torch.full((4, 2), float(pdist.rank())), "RSM")
    except ValueError as err:
        messages.append(str(err))
    # an empty share still joins the collective, forward and backward
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)
    rows = torch.arange(3 * pdist.rank(), dtype=torch.float64).reshape(-1, 1)
    mean = pdist.global_mean((rows * w).sum(1).mean(), len(rows), 3)
    mean.backward()
    pdist.average_gradients([w])
    return messages, float(mean), w.grad


def test_errors_reach_every_rank_and_empty_shares(tmp_path):
    (m0, mean0, g0), (m1, mean1, g1) = run_ranks(_errors, WORLD, tmp_path)
    assert m0[0] == "RuntimeError: fit: rank 1 of 2 failed: ValueError: X has NaN in row 3"
    assert m1[0] == "ValueError: X has NaN in row 3"
    assert all("X differs between the 2 ranks" in m[1] for m in (m0, m1))
    # rank 1 holds rows 0, 1, 2 (mean of 2 (x0 + x1 + x2) / 3 = 2), rank 0 none
    assert mean0 == mean1 == pytest.approx(2.0)
    torch.testing.assert_close(g0, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(g1, g0)
