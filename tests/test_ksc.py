"""Classic KSC (Alzate & Suykens 2010): the eigenproblem, the out-of-sample extension, the bandwidth search."""

import numpy as np
import pytest
import torch

import pydeepclust.ops as ops
from pydeepclust.data import load_dataset
from pydeepclust.metrics import cluster_report
from pydeepclust.models import KSC
from pydeepclust.models.ksc import balanced_line_fit, plot_lines


@pytest.fixture(scope="module")
def blobs():
    ds = load_dataset("blobs")
    return ds.X, ds.y


@pytest.fixture(scope="module")
def fitted(blobs):
    return KSC(3, n_train=400, random_state=0).fit(blobs[0])


def test_alpha_solves_the_ksc_eigenproblem(fitted):
    """D^-1 M_D Omega alpha = lambda alpha, with the matrix from the op (not our symmetric form)."""
    A, _ = ops.ksc_centered_kernel(fitted.X_train_, "rbf", float(fitted.sigma_))
    alpha, lam = fitted.alpha_, fitted.eigenvalues_
    residual = (A @ alpha - alpha * lam).norm(dim=0) / alpha.norm(dim=0)
    assert residual.max() < 1e-10
    # the top k - 1 of all the eigenvalues (the rest are smaller)
    all_eigenvalues = torch.linalg.eigvals(A).real.sort(descending=True).values
    torch.testing.assert_close(lam, all_eigenvalues[:2], rtol=1e-8, atol=1e-10)


def test_bias_centres_the_training_scores(fitted):
    """b makes the D^-1-weighted mean of the training scores zero (the centring of KSC)."""
    _, degrees = ops.degree_weighted_kernel(fitted.X_train_, "rbf", float(fitted.sigma_))
    weighted_mean = (fitted.train_scores_ / degrees[:, None]).sum(0)
    assert weighted_mean.abs().max() < 1e-10


def test_out_of_sample_labels_on_the_training_points_equal_the_training_labels(fitted, blobs):
    X = blobs[0]
    train = X[fitted.train_indices_.numpy()]
    np.testing.assert_array_equal(fitted.predict(train), fitted.train_labels_.numpy())
    torch.testing.assert_close(torch.as_tensor(fitted.transform(train)).double(),
                               fitted.train_scores_, rtol=1e-4, atol=1e-6)


def test_separates_blobs_and_predict_equals_labels(fitted, blobs):
    X, y = blobs
    assert cluster_report(y, fitted.labels_)["nmi"] > 0.99
    np.testing.assert_array_equal(fitted.predict(X), fitted.labels_)
    assert fitted.codebook_.shape == (3, 2)
    assert len(torch.unique(fitted.codebook_, dim=0)) == 3


def test_blf_picks_a_bandwidth_that_separates_two_circles():
    ds = load_dataset("circles", n_samples=1000)
    m = KSC(2, n_train=500, random_state=0).fit(ds.X)
    assert cluster_report(ds.y, m.labels_)["nmi"] > 0.99
    best = max(m.selection_scores_, key=m.selection_scores_.get)
    assert best * m._median_distance(m.X_train_) == pytest.approx(float(m.sigma_))


@pytest.mark.parametrize("criterion", ["ams", "blf"])
def test_bandwidth_search_on_blobs(criterion, blobs):
    X, y = blobs
    m = KSC(3, criterion=criterion, n_train=300, random_state=1).fit(X)
    assert cluster_report(y, m.labels_)["nmi"] > 0.99
    assert set(m.selection_scores_) <= set(map(float, m.sigma_factors))


def test_balanced_line_fit_scores():
    t = torch.linspace(0.1, 1, 50, dtype=torch.float64)
    lines = torch.cat([torch.stack([t, 0 * t], 1), torch.stack([0 * t, t], 1),
                       torch.stack([-t, -t], 1)])
    labels = torch.arange(3).repeat_interleave(50)
    assert balanced_line_fit(lines, labels, 3) == pytest.approx(1.0)
    blob = torch.randn(150, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert balanced_line_fit(blob, labels, 3) < 0.5
    assert balanced_line_fit(lines, torch.zeros(150, dtype=torch.long), 3) == 0.0  # empty clusters


def test_same_seed_same_labels_and_save_load(fitted, blobs, tmp_path):
    X = blobs[0]
    again = KSC(3, n_train=400, random_state=0).fit(X)
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    fitted.save(tmp_path / "ksc.pt")
    loaded = KSC.load(tmp_path / "ksc.pt")
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))


def test_fig1_picture(fitted, tmp_path):
    path = plot_lines(fitted, tmp_path / "lines.png")
    assert (tmp_path / "lines.png").stat().st_size > 10_000 and path.endswith("lines.png")
    tips = fitted.prototypes()
    # each tip is its cluster's training point farthest out in the score space
    for c, tip in enumerate(tips.tolist()):
        members = fitted.train_labels_ == c
        assert fitted.train_labels_[tip] == c
        assert fitted.train_scores_[tip].norm() == fitted.train_scores_[members].norm(dim=1).max()


@pytest.mark.parametrize("params, match", [
    ({"n_clusters": 1}, "n_clusters"),
    ({"sigma": -1.0}, "sigma"),
    ({"sigma_factors": ()}, "sigma_factors"),
    ({"criterion": "silhouette"}, "criterion"),
    ({"n_train": 2}, "n_train"),
])
def test_bad_parameters_are_named(params, match, blobs):
    with pytest.raises(ValueError, match=match):
        KSC(**{"n_clusters": 3, **params}).fit(blobs[0])


def test_bad_data_is_named():
    with pytest.raises(ValueError, match="NaN"):
        KSC(2).fit(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="identical"):
        KSC(2).fit(np.ones((10, 3)))
    two_points = np.repeat([[0.0, 0.0], [1.0, 1.0]], 5, axis=0)  # two score values, 3 clusters
    with pytest.raises(ValueError, match="sign pattern"):
        KSC(3, sigma=1.0).fit(two_points)
    with pytest.raises(ValueError, match="no bandwidth of the grid"):
        KSC(3).fit(two_points)
