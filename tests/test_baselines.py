"""The ACe/DeC paper's baselines: k-means, AE + k-means and Sub-K-Means."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from pydeepclust.metrics import cluster_report
from pydeepclust.models import AEKMeans, KMeansBaseline, SubKMeans, pretrain_autoencoder


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def subspace_blobs():
    """Three clusters in a random 2-D plane of R^8; N(0, 1.5^2) noise in the other six."""
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    centers = np.array([[0.0, 3.0], [2.6, -1.5], [-2.6, -1.5]])
    coords = np.hstack([centers[y] + 0.3 * rng.standard_normal((300, 2)),
                        1.5 * rng.standard_normal((300, 6))])
    rotation, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    return (coords @ rotation.T).astype(np.float32), y, rotation


def test_subkmeans_finds_the_clustered_space(subspace_blobs):
    X, y, rotation = subspace_blobs
    m = SubKMeans(3, n_init=5, random_state=0).fit(X)
    assert cluster_report(y, m.labels_)["nmi"] > 0.95
    assert m.n_cluster_dims_ <= 2  # between-cluster scatter has rank k - 1
    V = m.V_.double().numpy()
    np.testing.assert_allclose(V.T @ V, np.eye(8), atol=1e-5)
    # The clustered space lies in the plane of the clusters (the first two rotated axes).
    plane = rotation[:, :2]
    found = V[:, : m.n_cluster_dims_]
    np.testing.assert_allclose(np.linalg.norm(plane.T @ found, axis=0), 1.0, atol=0.05)
    np.testing.assert_array_equal(m.predict(X), m.labels_)
    assert m.transform(X).shape == (len(X), m.n_cluster_dims_)


def test_subkmeans_cost_is_its_objective(subspace_blobs):
    X, _, _ = subspace_blobs
    m = SubKMeans(3, n_init=2, random_state=1).fit(X)
    data = X.astype(np.float64)
    V, k_dims = m.V_.double().numpy(), m.n_cluster_dims_
    P_C, P_N = V[:, :k_dims], V[:, k_dims:]
    cost = sum(((data[m.labels_ == c] - data[m.labels_ == c].mean(0)) @ P_C).__pow__(2).sum()
               for c in range(3))
    cost += (((data - data.mean(0)) @ P_N) ** 2).sum()
    np.testing.assert_allclose(m.cost_, cost, rtol=1e-4)


@pytest.mark.parametrize("make", [
    lambda: SubKMeans(3, n_init=2, random_state=4),
    lambda: KMeansBaseline(3, random_state=4),
    lambda: AEKMeans(3, latent_dim=3, hidden=(16,), pretrain_epochs=2, random_state=4),
])
def test_same_seed_same_labels_and_save_load(make, subspace_blobs, tmp_path):
    X = subspace_blobs[0]
    a, b = make().fit(X), make().fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    a.save(tmp_path / "m.pt")
    loaded = type(a).load(tmp_path / "m.pt")
    np.testing.assert_array_equal(loaded.labels_, a.labels_)
    np.testing.assert_array_equal(loaded.predict(X), a.predict(X))
    np.testing.assert_array_equal(loaded.transform(X), a.transform(X))


def test_kmeans_baseline_is_scikit_learn(subspace_blobs):
    X = subspace_blobs[0]
    m = KMeansBaseline(3, random_state=2).fit(X)
    expected = KMeans(3, n_init="auto", random_state=m._int_seed()).fit_predict(X.astype(np.float64))
    np.testing.assert_array_equal(m.labels_, expected)


def test_ae_kmeans_uses_the_given_autoencoder(subspace_blobs):
    X = subspace_blobs[0]
    ae = pretrain_autoencoder(X, latent_dim=3, hidden=(16,), epochs=2)
    m = AEKMeans(3, autoencoder=ae, latent_dim=3).fit(X)
    np.testing.assert_allclose(m.transform(X), ae.encode(torch.as_tensor(X)).detach().numpy(),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(m.predict(X), m.labels_)


@pytest.mark.parametrize("make, match", [
    (lambda: SubKMeans(0), "n_clusters"),
    (lambda: SubKMeans(3, n_init=0), "n_init"),
    (lambda: AEKMeans(3, pretrain_epochs=-1), "pretrain_epochs"),
    (lambda: AEKMeans(3, lr=0), "lr"),
    (lambda: SubKMeans(3, tol=-1.0), "SubKMeans: tol must be a finite number >= 0, got -1.0"),
    (lambda: SubKMeans(3, tol=float("nan")), "SubKMeans: tol must be a finite number >= 0"),
])
def test_bad_parameters(make, match, subspace_blobs):
    with pytest.raises(ValueError, match=match):
        make().fit(subspace_blobs[0])


def test_subkmeans_needs_two_features():
    with pytest.raises(ValueError, match="2 features"):
        SubKMeans(2).fit(np.arange(10, dtype=np.float32)[:, None])


def test_spectral_baseline_is_scikit_learn_and_solves_two_circles():
    from sklearn.cluster import SpectralClustering

    from pydeepclust.data import load_dataset
    from pydeepclust.models import SpectralBaseline

    ds = load_dataset("circles", n_samples=600)
    m = SpectralBaseline(2, random_state=1).fit(ds.X)
    assert cluster_report(ds.y, m.labels_)["nmi"] == pytest.approx(1.0)
    expected = SpectralClustering(2, affinity="nearest_neighbors", random_state=m._int_seed(),
                                  n_init=10).fit_predict(ds.X.astype(np.float64))
    np.testing.assert_array_equal(m.labels_, expected)
    # predict: the label of the nearest training point
    np.testing.assert_array_equal(m.predict(ds.X), m.labels_)
    shifted = ds.X + np.float32(1e-3)
    np.testing.assert_array_equal(m.predict(shifted), m.labels_)
    with pytest.raises(NotImplementedError, match="predict"):
        m.transform(ds.X)


def test_spectral_baseline_save_load_and_bad_input(subspace_blobs, tmp_path):
    from pydeepclust.models import SpectralBaseline

    X = subspace_blobs[0]
    m = SpectralBaseline(3, affinity="rbf", gamma=0.05).fit(X)
    m.save(tmp_path / "s.pt")
    np.testing.assert_array_equal(SpectralBaseline.load(tmp_path / "s.pt").predict(X), m.labels_)
    with pytest.raises(ValueError, match="max_dense_samples"):
        SpectralBaseline(3, affinity="rbf", max_dense_samples=100).fit(X)
    with pytest.raises(ValueError, match="affinity"):
        SpectralBaseline(3, affinity="cosine").fit(X)
    with pytest.raises(ValueError, match="n_neighbors"):
        SpectralBaseline(3, n_neighbors=len(X)).fit(X)
