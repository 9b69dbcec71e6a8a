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


# -- models: one step of W ranks equals one process on the concatenated batch -----------------


def _global_batch(n=24, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0] * d, [4.0] * d, [-4.0] + [4.0] * (d - 1)], dtype=torch.float64)
    return centers[torch.arange(n) % 3] + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)


def _rsm_step(kernel):
    from pydeepclust.models import RSM

    X = _global_batch(n=25)  # uneven shares
    model = RSM(3, kernel=kernel, hidden=(16,), penalty_weight=0.1, random_state=0)
    model._build(tuple(X.shape[1:]))
    model.network_.double()
    rows = pdist.rank_rows(len(X))
    parts = model._batch_loss(X[rows], X[rows], torch.Generator().manual_seed(3))
    (parts["cut"] + parts["penalty"]).backward()
    pdist.average_gradients(model.network_.parameters())
    return ({k: float(v) for k, v in parts.items()},
            [p.grad.clone() for p in model.network_.parameters()])


@pytest.mark.parametrize("kernel, world", [("knn", 2), ("rbf", 2), ("rbf", 3)])
def test_rsm_step_equals_one_process(tmp_path, kernel, world):
    """With the RBF graph each pair of samples is computed on one rank only (the blocks
    between ranks split in halves): three ranks check that the halves tile every block."""
    parts, grads = _rsm_step(kernel)
    assert parts["cut"] > 0 and parts["penalty"] > 0
    for rank_parts, rank_grads in run_ranks(_rsm_step, world, tmp_path, kernel):
        assert rank_parts == pytest.approx(parts, rel=1e-10, abs=1e-12)
        for got, want in zip(rank_grads, grads):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def _genksc_step():
    from pydeepclust.models import GenKSC

    X = _global_batch()
    model = GenKSC(3, hidden=(16,), feature_dim=12, n_components=4, random_state=0)
    model._build(tuple(X.shape[1:]))
    model.encoder_.double(), model.decoder_.double()
    with torch.no_grad():
        model.U_.data = model.U_.data.double()
        model.codes_ = model.codes_.double()
    parts = model.losses(X[pdist.rank_rows(len(X))], with_cluster=True)
    model._total(parts).backward()
    params = [*model.encoder_.parameters(), *model.decoder_.parameters(), model.U_]
    pdist.average_gradients(params)
    return {k: float(v) for k, v in parts.items()}, [p.grad.clone() for p in params]


def test_genksc_step_equals_one_process(tmp_path):
    parts, grads = _genksc_step()
    assert set(parts) == {"ksc", "rec", "cl"}
    for rank_parts, rank_grads in run_ranks(_genksc_step, WORLD, tmp_path):
        assert rank_parts == pytest.approx(parts, rel=1e-10, abs=1e-12)
        for got, want in zip(rank_grads, grads):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def _centroid_step(model, X):
    """One clustering step (SGD, so that the new weights show the gradients) and the
    mini-batch k-means update, in float64; the loss terms, weights and centroids after it."""
    model.autoencoder_.double()
    model._load_fitted_tensors({k: v.detach().double() for k, v in model._fitted_tensors().items()})
    params = [*model.autoencoder_.parameters(), *model._extra_parameters()]
    optimizer = torch.optim.SGD(params, lr=0.05)
    seen = {}

    def record(loss, epoch, parts):
        seen.update({k: float(v) for k, v in parts.items()}, loss=float(loss))

    model._check_loss = record
    model._clustering_epoch(X, optimizer, torch.Generator().manual_seed(5), 0)
    return seen, [p.detach().clone() for p in params], \
        {k: v.detach().clone() for k, v in model._fitted_tensors().items()}


@pytest.mark.parametrize("name, augmented", [("ACeDeC", False), ("DCN", False),
                                             ("ACeDeC", True)])
def test_centroid_models_step_equals_one_process(tmp_path, name, augmented):
    """Augmented: the random affine copies are drawn for the whole batch on every rank."""
    import copy

    from pydeepclust import models

    X = _global_batch(n=23, d=64)  # one batch, split 12 / 11
    if augmented:
        X = X.reshape(23, 8, 8)
    model = getattr(models, name)(3, latent_dim=3, hidden=(16,), pretrain_epochs=2, epochs=0,
                                  batch_size=24, augmentation_invariance=augmented,
                                  random_state=0).fit(X.float())
    parts, params, tensors = _centroid_step(copy.deepcopy(model), X)
    assert parts["loss"] > 0
    for rank_parts, rank_params, rank_tensors in run_ranks(_centroid_step, WORLD, tmp_path,
                                                           model, X):
        assert rank_parts == pytest.approx(parts, rel=1e-10, abs=1e-12)
        for got, want in zip(rank_params, params):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
        for key, want in tensors.items():
            torch.testing.assert_close(rank_tensors[key], want, rtol=1e-9, atol=1e-12)


# -- models: short fits on W ranks give the labels of one process ---------------------------------

FIT_CASES = {
    "GenKSC": dict(hidden=(16,), feature_dim=12, n_components=4, epochs=6, warmup_epochs=2,
                   batch_size=20),
    "RSM-knn": dict(hidden=(16,), epochs=8, batch_size=30),
    "RSM-rbf": dict(hidden=(16,), kernel="rbf", epochs=8, batch_size=30),
    "ACeDeC": dict(latent_dim=3, hidden=(16,), pretrain_epochs=3, epochs=3, batch_size=16,
                   init_steps=10, n_init=2),
    "DCN": dict(latent_dim=3, hidden=(16,), pretrain_epochs=3, epochs=3, batch_size=16),
}


def _fit_case(case, X, **extra):
    from pydeepclust import models

    name = case.split("-")[0]
    settings = {"verbose": False, **FIT_CASES[case], **extra}
    return getattr(models, name)(3, random_state=0, **settings).fit(X)


def _fit_all(X):
    import os

    os.environ["PYDEEPCLUST_CHECK_SYNC"] = "1"  # every epoch: weights and centroids agree
    labels = {case: _fit_case(case, X).labels_ for case in FIT_CASES}
    try:
        _fit_case("RSM-knn", X, batch_size=29)
        error = None
    except ValueError as err:
        error = str(err)
    return labels, error


def test_short_fits_give_the_labels_of_one_process(tmp_path):
    X = _global_batch(n=61, seed=1).float()  # batches with a short last one (ACeDeC, DCN)
    labels = {case: _fit_case(case, X).labels_ for case in FIT_CASES}
    for rank_labels, error in run_ranks(_fit_all, WORLD, tmp_path, X):
        for case, want in labels.items():
            assert len(set(want)) == 3 and (rank_labels[case] == want).all(), case
        assert "batch_size=29 is the global batch, split over the 2 ranks" in error


def _failing_fits(X):
    from pydeepclust.models import DCN, RSM

    errors = []
    bad = X.clone()
    if pdist.rank() == 1:
        bad[3, 0] = float("nan")  # bad input on one rank only
    for fit in (lambda: RSM(3, hidden=(16,), epochs=2, batch_size=12).fit(bad),
                lambda: DCN(3, latent_dim=3, hidden=(16,), pretrain_epochs=1, epochs=2,
                            batch_size=12, clustering_lr=1e30).fit(X)):
        try:
            fit()
            errors.append(None)
        except (ValueError, RuntimeError, FloatingPointError) as err:
            errors.append(f"{type(err).__name__}: {err}")
    return errors


def test_an_error_on_one_rank_ends_every_rank(tmp_path):
    """Bad input on rank 1 stops both ranks before training (rank 0 names rank 1's error);
    a non-finite loss (of the global batch) stops both in the same step: never a hang."""
    (bad0, nan0), (bad1, nan1) = run_ranks(_failing_fits, WORLD, tmp_path,
                                           _global_batch(n=24).float())
    assert bad1.startswith("ValueError: RSM: X has NaN or inf in 1 sample(s) (first: row 3)")
    assert bad0.startswith("RuntimeError: RSM: rank 1 of 2 failed: ValueError: RSM: X has NaN")
    assert nan0 == nan1 and nan0.startswith("FloatingPointError: DCN: the training loss became")


def test_distributed_parameter_is_checked():
    from pydeepclust.models import RSM

    X = _global_batch(n=24).float().numpy()
    with pytest.raises(ValueError, match="RSM: distributed=True, but no torch.distributed "
                                         "process group"):
        RSM(3, distributed=True).fit(X)
    with pytest.raises(ValueError, match=r"RSM: distributed must be None .*got 'yes'"):
        RSM(3, distributed="yes").fit(X)
    assert RSM(3, hidden=(8,), epochs=2, distributed=False).fit(X).labels_.shape == (24,)
