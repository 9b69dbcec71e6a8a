"""Baselines of the ACe/DeC paper's Table 1 behind the estimator interface: k-means on the
raw data and k-means on a pretrained autoencoder's embedding (AE + k-means)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor

from pydeepclust.models.autoencoder import (Autoencoder, AutoencoderClusterer,
                                            add_autoencoder_arguments, cli_model_name,
                                            parse_hidden)
from pydeepclust.models.base import DeepClusterer

__all__ = ["AEKMeans", "KMeansBaseline"]


def _nearest(points: Tensor, centroids: Tensor) -> Tensor:
    return torch.cdist(points, centroids.to(points.dtype)).argmin(dim=1)


class KMeansBaseline(DeepClusterer):
    """scikit-learn's k-means (k-means++ starts) on the flattened raw data.

    ``n_init`` is scikit-learn's: "auto" is one k-means++ start, which is what the paper's
    k-means row (NMI 0.90 +- 0.16 on SYNTH-25) corresponds to; ten starts solve SYNTH-25.
    """

    def __init__(self, n_clusters: int = 10, n_init="auto", max_iter: int = 300,
                 random_state: int | None = 0):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit(self, X: Tensor) -> None:
        km = KMeans(self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                    random_state=self._int_seed())
        self.labels_ = km.fit_predict(X.reshape(len(X), -1).double().numpy())
        self.centroids_ = torch.as_tensor(km.cluster_centers_, dtype=torch.float32)

    def _build(self, sample_shape) -> None:
        pass

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def _predict(self, X: Tensor) -> Tensor:
        return _nearest(X.reshape(len(X), -1), self.centroids_)

    def _transform(self, X: Tensor) -> Tensor:
        """Distances to the centroids, as scikit-learn's KMeans.transform."""
        return torch.cdist(X.reshape(len(X), -1), self.centroids_)

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"centroids_": self.centroids_}


class AEKMeans(AutoencoderClusterer):
    """AE + k-means: k-means (``n_init`` starts) on the embedding of a pretrained autoencoder.

    ``autoencoder``: a pretrained :class:`~pydeepclust.models.autoencoder.Autoencoder`, or None
    to pretrain one (``latent_dim``, ``arch``, ``hidden``, ``pretrain_epochs``, ``lr``).
    """

    def __init__(self, n_clusters: int = 10, latent_dim: int = 10, arch: str = "mlp",
                 hidden: Sequence[int] = (500, 500, 2000), autoencoder: Autoencoder | None = None,
                 pretrain_epochs: int = 50, batch_size: int = 256, lr: float = 1e-3,
                 n_init: int = 10, random_state: int | None = 0, device: str | None = None,
                 verbose: bool = False):
        super().__init__(n_clusters, latent_dim, arch, hidden, autoencoder, pretrain_epochs,
                         batch_size, lr, random_state, device, verbose)
        self.n_init = n_init

    def _fit(self, X: Tensor) -> None:
        self._pretrained_autoencoder(X)
        Z = self._embed(X)
        km = KMeans(self.n_clusters, n_init=self.n_init, random_state=self._int_seed(offset=3))
        self.labels_ = km.fit_predict(Z.cpu().double().numpy())
        self.centroids_ = torch.as_tensor(km.cluster_centers_, dtype=torch.float32,
                                          device=Z.device)

    def _predict(self, X: Tensor) -> Tensor:
        return _nearest(self._embed(X), self.centroids_)

    def _transform(self, X: Tensor) -> Tensor:
        return self._embed(X)

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"centroids_": self.centroids_}


# -- command line (ae-kmeans and kmeans) ----------------------------------------------------


def add_cli_arguments(parser) -> None:
    parser.add_argument("--n-init", type=int, default=None,
                        help="k-means starts (default: 10 for ae-kmeans, 1 for kmeans)")
    if cli_model_name(parser) == "ae-kmeans":
        add_autoencoder_arguments(parser)


def from_cli(args, dataset):
    k = args.k or dataset.n_classes
    if args.model == "kmeans":
        return KMeansBaseline(k, n_init=args.n_init or "auto", random_state=args.seed)
    return AEKMeans(k, latent_dim=args.latent_dim, arch=args.arch, hidden=parse_hidden(args.hidden),
                    pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.lr,
                    n_init=args.n_init or 10, random_state=args.seed, device=args.device,
                    verbose=not args.quiet)


def cli_outputs(model, X, dataset, out_dir) -> dict[str, str]:
    return {}
