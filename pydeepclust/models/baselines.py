"""Baselines behind the estimator interface: k-means on the raw data and on a pretrained
autoencoder's embedding (AE + k-means), the ACe/DeC paper's Table 1 rows; spectral clustering
(scikit-learn), the reference RSM and KSC are compared with."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sklearn.cluster import KMeans, SpectralClustering
from torch import Tensor

from pydeepclust.models.autoencoder import (Autoencoder, AutoencoderClusterer,
                                            add_autoencoder_arguments, cli_model_name,
                                            parse_hidden)
from pydeepclust.models.base import DeepClusterer, unavailable

__all__ = ["AEKMeans", "KMeansBaseline", "SpectralBaseline"]

AFFINITIES = ("nearest_neighbors", "rbf")


def _nearest(points: Tensor, centroids: Tensor, block: int = 1024) -> Tensor:
    """Index of the nearest centroid of each point, ``block`` points at a time."""
    centroids = centroids.to(points.dtype)
    return torch.cat([torch.cdist(points[i:i + block], centroids).argmin(dim=1)
                      for i in range(0, len(points), block)])


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
        self.n_iter_ = int(km.n_iter_)  # of the best start (scikit-learn's; not in checkpoints)

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
    to pretrain one (``latent_dim``, ``arch``, ``hidden``, ``pretrain_epochs``, ``lr``,
    ``standardize``: z-score its input by the global mean and std; ``augmentation_invariance``:
    pretrain on randomly rotated, shifted and sheared images, the baseline for the
    augmented ACe/DeC and DCN). ``checkpoint_path``, ``checkpoint_every``: the pretraining's
    state every that many epochs and at its end, and the fitted model after k-means;
    ``fit(X, resume=True)`` continues the pretraining from it (or, after it, only runs k-means
    again). ``precision``: as :class:`~pydeepclust.models.acedec.ACeDeC`'s, for the pretraining.
    """

    def __init__(self, n_clusters: int = 10, latent_dim: int | None = None, arch: str = "mlp",
                 hidden: Sequence[int] | None = None, autoencoder: Autoencoder | None = None,
                 pretrain_epochs: int = 50, batch_size: int = 256, lr: float = 1e-3,
                 n_init: int = 10, random_state: int | None = 0, device: str | None = None,
                 verbose: bool = False, standardize: bool = False,
                 augmentation_invariance: bool = False, checkpoint_path: str | None = None,
                 checkpoint_every: int = 10, precision: str = "fp32"):
        super().__init__(n_clusters, latent_dim, arch, hidden, autoencoder, pretrain_epochs,
                         batch_size, lr, random_state, device, verbose, standardize,
                         augmentation_invariance)
        self.n_init = n_init
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.precision = precision

    def _fit(self, X: Tensor) -> None:
        if self.augmentation_invariance and self.autoencoder is not None:
            raise ValueError("AEKMeans: augmentation_invariance only changes the pretraining; with "
                             "a given autoencoder it would do nothing (pretrain that network with "
                             "pretrain_autoencoder(..., augmentation_invariance=True))")
        if self.n_init != "auto":  # scikit-learn's "auto" too; before pretraining, not after
            self._check_integers("n_init")
        self._pretrained_autoencoder(X)  # resumed, or skipped when resuming after it
        resumed = self._resumed("kmeans")
        if resumed:
            self._resume_model(resumed)  # the pretrained weights; k-means repeats exactly
        Z = self._embed(X)
        km = KMeans(self.n_clusters, n_init=self.n_init, random_state=self._int_seed(offset=3))
        self.labels_ = km.fit_predict(Z.cpu().double().numpy())
        self.centroids_ = torch.as_tensor(km.cluster_centers_, dtype=torch.float32,
                                          device=Z.device)
        if self.checkpoint_path:
            self._checkpoint("kmeans", 0)

    def _predict(self, X: Tensor) -> Tensor:
        return _nearest(self._embed(X), self.centroids_)

    def _transform(self, X: Tensor) -> Tensor:
        return self._embed(X)

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"centroids_": self.centroids_}


class SpectralBaseline(DeepClusterer):
    """scikit-learn's spectral clustering on the flattened raw data.

    ``affinity="nearest_neighbors"`` (default): the symmetrised kNN graph with ``n_neighbors``
    neighbours, sparse, so tens of thousands of points fit; ``"rbf"``: the dense n x n kernel
    exp(-gamma ||x_i - x_j||^2), refused above ``max_dense_samples`` points (n^2 float64 values:
    20,000 points are 3.2 GB). ``assign_labels``: scikit-learn's "kmeans", "discretize" or
    "cluster_qr". Spectral clustering has no map for new points: ``predict`` gives each new point
    the label of its nearest training point (the training points are kept for that, and saved
    with the model), and ``transform`` is not available.
    """

    def __init__(self, n_clusters: int = 10, affinity: str = "nearest_neighbors",
                 n_neighbors: int = 10, gamma: float = 1.0, assign_labels: str = "kmeans",
                 n_init: int = 10, max_dense_samples: int = 20_000,
                 random_state: int | None = 0):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.gamma = gamma
        self.assign_labels = assign_labels
        self.n_init = n_init
        self.max_dense_samples = max_dense_samples
        self.random_state = random_state

    def _fit(self, X: Tensor) -> None:
        name = type(self).__name__
        if self.affinity not in AFFINITIES:
            raise ValueError(f"{name}: affinity must be one of {AFFINITIES}, got {self.affinity!r}")
        flat = X.reshape(len(X), -1)
        if self.affinity == "rbf" and len(flat) > self.max_dense_samples:
            raise ValueError(
                f"{name}: affinity='rbf' builds a dense {len(flat)} x {len(flat)} matrix "
                f"({len(flat) ** 2 * 8 / 2**30:.1f} GiB), more than max_dense_samples="
                f"{self.max_dense_samples} allows; use affinity='nearest_neighbors' or a subsample"
            )
        if self.affinity == "nearest_neighbors" and not 1 <= self.n_neighbors < len(flat):
            raise ValueError(f"{name}: n_neighbors must be in [1, {len(flat) - 1}] for "
                             f"{len(flat)} samples, got {self.n_neighbors}")
        model = SpectralClustering(self.n_clusters, affinity=self.affinity,
                                   n_neighbors=self.n_neighbors, gamma=self.gamma,
                                   assign_labels=self.assign_labels, n_init=self.n_init,
                                   random_state=self._int_seed())
        self.labels_ = model.fit_predict(flat.double().numpy())
        self.X_train_ = flat
        self.train_labels_ = torch.as_tensor(self.labels_)

    def _build(self, sample_shape) -> None:
        pass

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def _predict(self, X: Tensor) -> Tensor:
        return self.train_labels_[_nearest(X.reshape(len(X), -1), self.X_train_)]

    # Spectral clustering has no map for new points: no transform (hasattr is False, so
    # scikit-learn treats the model as a clusterer only), and calling it says why.
    _NO_EMBEDDING = "spectral clustering has no embedding of new points; use predict " \
                    "(nearest training point)"
    transform = unavailable(_NO_EMBEDDING)
    fit_transform = unavailable(_NO_EMBEDDING)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = None
        return tags

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"X_train_": self.X_train_, "train_labels_": self.train_labels_}


# -- command line (ae-kmeans, kmeans and spectral) -------------------------------------------


def add_cli_arguments(parser) -> None:
    model = cli_model_name(parser)
    if model == "spectral":
        parser.add_argument("--affinity", default="nearest_neighbors", choices=AFFINITIES)
        parser.add_argument("--n-neighbors", type=int, default=10,
                            help="neighbours of the kNN graph (affinity nearest_neighbors)")
        parser.add_argument("--gamma", type=float, default=1.0,
                            help="exp(-gamma ‖x − y‖²) (affinity rbf)")
        parser.add_argument("--assign-labels", default="kmeans",
                            choices=("kmeans", "discretize", "cluster_qr"))
    parser.add_argument("--n-init", type=int, default=None,
                        help="k-means starts (default: 10 for ae-kmeans and spectral, 1 for kmeans)")
    if model == "ae-kmeans":
        add_autoencoder_arguments(parser)


def _n_init(args, default):
    return default if args.n_init is None else args.n_init


def from_cli(args, dataset):
    k = args.k
    if args.model == "spectral":
        return SpectralBaseline(k, affinity=args.affinity, n_neighbors=args.n_neighbors,
                                gamma=args.gamma, assign_labels=args.assign_labels,
                                n_init=_n_init(args, 10), random_state=args.seed)
    if args.model == "kmeans":
        return KMeansBaseline(k, n_init=_n_init(args, "auto"), random_state=args.seed)
    return AEKMeans(k, latent_dim=args.latent_dim, arch=args.arch, hidden=parse_hidden(args.hidden),
                    pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.lr,
                    n_init=_n_init(args, 10), random_state=args.seed, device=args.device,
                    verbose=not args.quiet, standardize=args.standardize,
                    augmentation_invariance=args.augment)


def cli_outputs(model, X, dataset, out_dir) -> dict[str, str]:
    return {}
