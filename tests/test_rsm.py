"""RSM: its loss against a plain-torch transcription, the estimator contract, bad input."""

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score as nmi

from pydeepclust.data import load_dataset
from pydeepclust.models import RSM
from pydeepclust.models.rsm import (default_hidden, knn_indices, knn_ratio_cut,
                                    orthonormality_penalty,
                                    rsm_loss, whiten)


def dense_rsm_loss(A, Z, sigma, lam, whiten_cut):
    """The loss written out with a materialised affinity (the transcription to compare with)."""
    S = torch.exp(-torch.cdist(A, A).square() / (2 * sigma**2))
    S = S - torch.diag(S.diagonal())
    B, k = Z.shape
    if whiten_cut:
        R = torch.linalg.cholesky(Z.T @ Z / B)
        Zc = Z @ torch.linalg.inv(R).T
    else:
        Zc = Z
    pair = (Zc[:, None, :] - Zc[None, :, :]).square().sum(-1)
    cut = (S * pair).sum() / S.sum()
    penalty = lam * ((Z.T @ Z / B - torch.eye(k, dtype=Z.dtype)) ** 2).sum()
    return cut, penalty


@pytest.mark.parametrize("whiten_cut", [False, True])
@pytest.mark.parametrize("n, d, k", [(2, 3, 1), (40, 5, 3), (97, 16, 10)])
def test_loss_matches_dense_transcription_and_its_gradient(n, d, k, whiten_cut):
    g = torch.Generator().manual_seed(n)
    A = torch.randn(n, d, generator=g, dtype=torch.float64)
    Z = torch.randn(n, k, generator=g, dtype=torch.float64, requires_grad=True)
    sigma, lam = 1.7, 0.3
    parts = rsm_loss(A, Z, torch.tensor(sigma, dtype=torch.float64), penalty_weight=lam,
                     whiten_cut=whiten_cut)
    cut, penalty = dense_rsm_loss(A, Z, sigma, lam, whiten_cut)
    torch.testing.assert_close(parts["cut"], cut)
    torch.testing.assert_close(parts["penalty"], penalty)
    got = torch.autograd.grad(parts["cut"] + parts["penalty"], Z)[0]
    want = torch.autograd.grad(cut + penalty, Z)[0]
    torch.testing.assert_close(got, want)


def test_whiten_gives_orthonormal_columns_with_the_same_span():
    Z = torch.randn(200, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64) + 3
    W = whiten(Z, jitter=0.0)
    torch.testing.assert_close(W.T @ W / 200, torch.eye(4, dtype=torch.float64))
    coef = torch.linalg.lstsq(Z, W).solution  # W = Z C exactly
    torch.testing.assert_close(Z @ coef, W)
    with pytest.raises(FloatingPointError, match="not positive definite"):
        whiten(torch.full((10, 2), float("nan")))


def test_penalty_is_zero_only_for_orthonormal_columns():
    Q, _ = torch.linalg.qr(torch.randn(50, 3, dtype=torch.float64))
    assert orthonormality_penalty(Q * 50**0.5).item() < 1e-20
    assert orthonormality_penalty(Q).item() == pytest.approx(3 * (1 / 50 - 1) ** 2)


@pytest.mark.parametrize("n, m, block", [(1, 0, 4), (30, 1, 7), (65, 5, 16), (65, 5, 1024)])
def test_knn_indices_match_a_full_sort(n, m, block):
    A = torch.randn(n, 3, generator=torch.Generator().manual_seed(n))
    got = knn_indices(A, m, block=block)
    dist = torch.cdist(A, A) + torch.diag(torch.full((n,), float("inf")))
    want = dist.argsort(dim=1)[:, :m]
    assert torch.equal(got.sort(dim=1).values, want.sort(dim=1).values)


def test_knn_cut_equals_the_cut_of_the_adjacency_matrix():
    g = torch.Generator().manual_seed(0)
    A, Z = torch.randn(50, 4, generator=g), torch.randn(50, 3, generator=g)
    nbrs = knn_indices(A, 6)
    S = torch.zeros(50, 50)
    S[torch.arange(50).repeat_interleave(6), nbrs.reshape(-1)] = 1
    pair = (Z[:, None] - Z[None]).square().sum(-1)
    torch.testing.assert_close(knn_ratio_cut(Z, nbrs), (S * pair).sum() / S.sum())


# ------------------------------------------------------------------ the estimator

FAST = dict(hidden=(32, 32), epochs=40, batch_size=256, lr=3e-3, n_init=3)


@pytest.fixture(scope="module")
def blobs():
    return load_dataset("blobs", n_samples=600)


@pytest.fixture(scope="module")
def fitted(blobs):
    return RSM(3, random_state=0, **FAST).fit(blobs.X)


def test_fit_separates_blobs_and_predict_equals_labels(fitted, blobs):
    assert nmi(blobs.y, fitted.labels_) >= 0.95
    assert np.array_equal(fitted.predict(blobs.X), fitted.labels_)
    Z = fitted.transform(blobs.X)
    assert Z.shape == (600, 3) and fitted.cluster_centers_.shape == (3, 3)
    assert len(fitted.history_) == FAST["epochs"]


def test_knn_kernel_separates_blobs(blobs):
    model = RSM(3, kernel="knn", n_neighbors_range=(5, 10), random_state=0, **FAST)
    assert nmi(blobs.y, model.fit_predict(blobs.X)) >= 0.95


def test_whitened_cut_separates_two_circles():
    """The case the paper's literal loss fails on (see RSM.whiten_cut): full batches of two
    concentric circles, a random-m kNN graph per step."""
    circles = load_dataset("circles", n_samples=1000)
    model = RSM(2, hidden=(64, 64), epochs=300, batch_size=1000, lr=3e-3, random_state=0)
    assert nmi(circles.y, model.fit_predict(circles.X)) >= 0.95


def test_same_seed_same_labels_and_save_load(fitted, blobs, tmp_path):
    again = RSM(3, random_state=0, **FAST).fit(blobs.X)
    assert np.array_equal(again.labels_, fitted.labels_)
    path = tmp_path / "rsm.pt"
    fitted.save(path)
    loaded = RSM.load(path)
    assert np.array_equal(loaded.predict(blobs.X), fitted.predict(blobs.X))
    np.testing.assert_array_equal(loaded.transform(blobs.X), fitted.transform(blobs.X))


def test_autoencoder_inputs_round_trip_and_checkpoints(blobs, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    model = RSM(3, affinity_on="autoencoder", network_input="autoencoder", latent_dim=2,
                autoencoder_hidden=(16,), pretrain_epochs=5, checkpoint_path=str(ckpt),
                checkpoint_every=10, random_state=0, **FAST).fit(blobs.X)
    assert ckpt.exists() and set(model._modules()) == {"network", "autoencoder"}
    loaded = RSM.load(ckpt)
    assert np.array_equal(loaded.predict(blobs.X), model.labels_)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_clusters=1), "n_clusters must be an integer >= 2"),
        (dict(kernel="cosine"), "kernel must be one of"),
        (dict(bandwidth_range=(2.0, 1.0)), "bandwidth_range must satisfy"),
        (dict(bandwidth_range=3.0), r"bandwidth_range must be a \(low, high\) pair"),
        (dict(penalty_weight=-1.0), "penalty_weight must be a finite number >= 0"),
        (dict(penalty_weight=0.0, whiten_cut=False), "penalty_weight=0 needs whiten_cut"),
        (dict(lr=0), "lr must be a finite number > 0, got 0"),
        (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
        (dict(affinity_on="pca"), "affinity_on must be one of"),
        (dict(network_input="autoencoder", arch="conv"), "network_input='autoencoder' needs"),
        (dict(kernel="rbf", batch_size=8, n_neighbors=8), "n_neighbors must be an integer 1 <= n_neighbors"),
        (dict(kernel="knn", n_neighbors_range=(5, 300)), "n_neighbors_range must be integers"),
        (dict(arch="conv"), "arch='conv' needs 28x28 images"),
        (dict(embedding_dim=0), "embedding_dim must be an integer >= 1, got 0"),
        (dict(bandwidth_scale="mean"), "bandwidth_scale must be 'knn', 'median' or a positive"),
        (dict(bandwidth_scale=-1.0), "bandwidth_scale must be 'knn', 'median' or a positive"),
        (dict(bandwidth_distribution="normal"), "bandwidth_distribution must be one of"),
        (dict(checkpoint_every=0), "checkpoint_every must be an integer >= 1, got 0"),
        (dict(checkpoint_path="no/such/folder/m.pt"), "folder 'no/such/folder' does not exist"),
    ],
)
def test_bad_parameters_are_named(params, match):
    X = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        RSM(**{"n_clusters": 3, "epochs": 1, **params}).fit(X)


@pytest.mark.parametrize("params, match", [
    (dict(hidden="16"), "RSM: hidden must be a sequence of positive integer widths"),
    (dict(hidden=(16.5,)), "RSM: hidden must be a sequence of positive integer widths"),
    (dict(hidden=(16, 0)), "RSM: hidden must be"),
    (dict(network_input="autoencoder", autoencoder_hidden="8"),
     "RSM: autoencoder_hidden must be a sequence"),
])
def test_widths_are_checked_not_misread(params, match):
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        RSM(3, epochs=1, **params).fit(X)


def test_constant_data_is_a_named_collapse_not_a_linalg_error():
    with pytest.raises(FloatingPointError, match="RSM: Z\\^T Z of the embedding is not positive"):
        RSM(3, random_state=0, **FAST).fit(np.ones((60, 4), np.float32))


def test_bad_data_is_named():
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        RSM(3, epochs=1).fit(X)
    with pytest.raises(ValueError, match="fewer than n_clusters"):
        RSM(3, epochs=1).fit(X[:2])
    model = RSM(3, random_state=0, **FAST).fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match="samples of shape"):
        model.predict(np.zeros((3, 5), np.float32))


# ------------------------------------------------------------------ the defaults


def test_default_sizes_follow_the_data():
    """hidden from the input width, batch min(n, 16,384), epochs for 800 optimizer steps (at
    most 80 epochs above 16,384 points)."""
    assert default_hidden(2) == (128, 128)
    assert default_hidden(64) == (256, 256)
    assert default_hidden(784) == (512, 512, 256)
    model = RSM(2)
    assert (model._batch_size(3000), model._epochs(3000)) == (3000, 800)
    assert (model._batch_size(60000), model._epochs(60000)) == (16384, 80)  # not 267
    assert model._epochs(16384) == 800
    assert model._epochs(20000) == 240 and model._epochs(40000) == 120  # >= 240 steps
    model = RSM(2, batch_size=1024)
    assert model._epochs(3000) == 400 and model._epochs(500) == 800
    assert RSM(2, epochs=7)._epochs(3000) == 7
    assert RSM(2)._input_dim((28, 28)) == 784  # lr None: 1e-3 above 256 features, else 3e-3


def test_defaults_separate_two_circles():
    """RSM(n_clusters=2) with nothing else: the README's circles case, at n = 1,000 to keep the
    test short (the same rules: one full batch, 800 steps, hidden (128, 128), lr 3e-3; 3,000
    points take about 35 s on one thread and give NMI 1.00 on seeds 0-4,
    ``benchmarks/defaults_check.py``). The former defaults (50 epochs of 1,024-point batches,
    SpectralNet's widths, lr 1e-3) gave NMI 0.00 on the 3,000 points."""
    circles = load_dataset("circles", n_samples=1000)
    model = RSM(2, random_state=0).fit(circles.X)
    assert (model.batch_size_, model.epochs_, model.lr_) == (1000, 800, 3e-3)
    assert len(model.history_) == 800
    assert nmi(circles.y, model.labels_) >= 0.95
