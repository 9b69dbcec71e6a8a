"""Sub-K-Means (Mautz et al., KDD 2017): k-means in a linear "clustered space" found jointly
with the clustering, the rest of the variance left to a one-cluster "noise space".

Objective (the tutorial's slides): ``sum_i sum_{x in C_i} ||P_C^T V^T (x - mu_i)||^2 +
sum_x ||P_N^T V^T (x - mu_D)||^2`` with V orthogonal. Alternate: assign in the clustered
space; centroids as means; V = eigenvectors of ``sum_i S_i - S_D`` (ascending eigenvalues) and
the clustered space = the eigenvectors with negative eigenvalues, so its dimensionality m is
found, not given. Works on the flattened data.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import eigh
from scipy.spatial.distance import cdist
from sklearn.cluster import kmeans_plusplus
from torch import Tensor

from pydeepclust.models.base import DeepClusterer

__all__ = ["SubKMeans"]


def _scatter(X: np.ndarray) -> np.ndarray:
    centred = X - X.mean(axis=0)
    return centred.T @ centred


class SubKMeans(DeepClusterer):
    """Sub-K-Means. ``n_init`` random starts (the lowest cost is kept), each up to ``max_iter``
    alternations; an eigenvalue counts as negative below ``-tol`` times the largest magnitude.

    Fitted attributes: ``labels_``, ``V_`` (D x D orthogonal, clustered space first),
    ``n_cluster_dims_`` (m), ``centroids_`` (k x D), ``cost_``, ``n_iter_`` (alternations of the
    kept start; not in checkpoints).
    """

    def __init__(self, n_clusters: int = 10, n_init: int = 10, max_iter: int = 300,
                 tol: float = 1e-10, random_state: int | None = 0):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _fit(self, X: Tensor) -> None:
        self._check_integers("n_clusters", "n_init", "max_iter")
        self._check_numbers("tol", strict=False)
        data = X.reshape(len(X), -1).double().numpy()
        if data.shape[1] < 2:
            raise ValueError(f"SubKMeans: X has {data.shape[1]} feature(s); it needs at least "
                             "2 features to split into a clustered and a noise space")
        rng = np.random.default_rng(self._int_seed())
        best = min((self._one_run(data, rng) for _ in range(self.n_init)), key=lambda r: r[0])
        self.cost_, labels, V, m, centroids, self.n_iter_ = best
        self.labels_ = labels
        self.V_ = torch.as_tensor(V, dtype=torch.float32)
        self.n_cluster_dims_ = m
        self.centroids_ = torch.as_tensor(centroids, dtype=torch.float32)

    def _one_run(self, data: np.ndarray, rng: np.random.Generator):
        n, d = data.shape
        V, _ = np.linalg.qr(rng.standard_normal((d, d)))
        m = max(1, d // 2)
        scatter_total = _scatter(data)
        centroids, _ = kmeans_plusplus(data @ V[:, :m], self.n_clusters,
                                       random_state=int(rng.integers(2**31 - 1)))
        centroids = centroids @ V[:, :m].T + data.mean(axis=0) @ V[:, m:] @ V[:, m:].T
        labels = None
        for n_iter in range(1, self.max_iter + 1):
            projected = data @ V[:, :m]
            new_labels = cdist(projected, centroids @ V[:, :m], "sqeuclidean").argmin(axis=1)
            if labels is not None and np.array_equal(new_labels, labels):
                break
            labels = new_labels
            # An emptied cluster keeps its centroid (no reseeding: the cost stays comparable).
            for c in range(self.n_clusters):
                if (labels == c).any():
                    centroids[c] = data[labels == c].mean(axis=0)
            scatter_within = sum(_scatter(data[labels == c]) for c in range(self.n_clusters)
                                 if (labels == c).sum() > 1)
            eigenvalues, V = eigh(scatter_within - scatter_total)
            m = int(np.clip((eigenvalues < -self.tol * np.abs(eigenvalues).max()).sum(), 1, d - 1))
        cost = float(eigenvalues[:m].sum() + np.trace(scatter_total))
        return cost, labels, V, m, centroids, n_iter

    def _build(self, sample_shape) -> None:
        pass

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def _project(self, X: Tensor) -> Tensor:
        return X.reshape(len(X), -1) @ self.V_[:, : self.n_cluster_dims_]

    def _predict(self, X: Tensor) -> Tensor:
        return torch.cdist(self._project(X), self.centroids_ @ self.V_[:, : self.n_cluster_dims_]) \
            .argmin(dim=1)

    def _transform(self, X: Tensor) -> Tensor:
        """Coordinates in the clustered space (m columns)."""
        return self._project(X)

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"V_": self.V_, "centroids_": self.centroids_,
                "n_cluster_dims_": torch.tensor(self.n_cluster_dims_),
                "cost_": torch.tensor(self.cost_, dtype=torch.float64)}

    def _load_fitted_tensors(self, tensors: dict[str, Tensor]) -> None:
        super()._load_fitted_tensors(tensors)
        self.n_cluster_dims_ = int(self.n_cluster_dims_)
        self.cost_ = float(self.cost_)


def add_cli_arguments(parser) -> None:
    parser.add_argument("--n-init", type=int, default=10, help="random starts")
    parser.add_argument("--max-iter", type=int, default=300)


def from_cli(args, dataset):
    return SubKMeans(args.k, n_init=args.n_init, max_iter=args.max_iter,
                     random_state=args.seed)


def cli_outputs(model, X, dataset, out_dir) -> dict[str, str]:
    return {}
