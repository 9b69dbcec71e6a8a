"""Classic kernel spectral clustering (Alzate & Suykens 2010), the non-deep model GenKSC starts from.

Training on a subsample of m points with an RBF kernel Omega (the degree-weighted kernel op
gives D^-1 Omega and the degrees), the dual problem is the eigenproblem

    D^-1 M_D Omega alpha = lambda alpha,   M_D = I - 1 1^T D^-1 / (1^T D^-1 1)

(``ops.ksc_centered_kernel`` builds that matrix). It is solved in its symmetric form:
D^-1 M_D = D^-1/2 P D^-1/2 with the projection P = I - u u^T, u = D^-1/2 1 / ||D^-1/2 1||,
so gamma = D^1/2 alpha solves P (D^-1/2 Omega D^-1/2) P gamma = lambda gamma (``eigh``, real and
stable, where the non-symmetric form needs a complex ``eig``). The top k - 1 eigenvectors give
the score variables of any point x (the out-of-sample extension)

    e_l(x) = sum_j alpha_l,j Omega(x_j, x) + b_l,   b_l = -(1^T D^-1 Omega alpha_l) / (1^T D^-1 1),

whose signs code the clusters: the codebook is the k most frequent sign patterns of the training
scores, and a point goes to the code nearest in Hamming distance (ties: the more frequent code).
For well-separated clusters the training scores lie on k lines (one per cluster) through a common
region, the cluster prototypes at their tips: the picture of the GenKSC paper's Fig. 1, which
``plot_lines`` draws.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

import pydeepclust.ops as ops
from pydeepclust.models.base import DeepClusterer

__all__ = ["KSC"]

# Bandwidth grid, in units of the median pairwise distance (the working range on blobs, circles
# and digits lies between 0.05 and 0.3).
SIGMA_FACTORS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)
BLF_ETA = 0.75
CRITERIA = ("ams", "blf")

# Rows of new points per kernel block in the out-of-sample extension (block x m kernel values).
_OOS_BLOCK = 4096


class KSC(DeepClusterer):
    """Kernel spectral clustering with an RBF kernel, trained on a subsample.

    Args:
        n_clusters: k >= 2; k - 1 eigenvectors span the score space.
        sigma: RBF bandwidth; None selects it on validation points (the next ``n_train`` points
            of the random order, or the training points when no others are left) over
            ``sigma_factors`` times the median pairwise distance of the training subsample.
        sigma_factors: the grid of that search.
        criterion: what the search maximises: ``"ams"``, the average membership strength of
            soft KSC (Langone, Mall & Suykens 2013; the fused soft-membership op, prototypes =
            the clusters' mean training scores), or ``"blf"``, Alzate & Suykens' balanced line
            fit (:func:`balanced_line_fit`). For k = 2 the scores are 1-D, cosines carry no
            information, and BLF is used either way. On digits, seed 0, BLF picked a
            degenerate small bandwidth (NMI 0.32) where AMS did not (0.81).
        n_train: size of the training subsample (the eigenproblem is m x m, O(m^3)); every
            point, the subsample included, is then labelled by the out-of-sample extension.
        random_state: seed of the subsample.

    Fitted: ``labels_`` (all of X, by the out-of-sample extension), ``train_indices_``,
    ``train_labels_`` (the subsample's codewords from the eigenvectors themselves), ``alpha_`` (m, k-1), ``bias_`` (k-1,),
    ``eigenvalues_``, ``codebook_`` (k, k-1) of +-1, ``sigma_``, ``train_scores_`` (m, k-1),
    ``selection_scores_`` (factor -> criterion, when sigma was searched).
    ``transform`` gives the score variables e(x), ``predict`` the codeword assignment.
    """

    _min_samples = 2  # a graph (kernel) between samples

    def __init__(self, n_clusters: int = 3, sigma: float | None = None,
                 sigma_factors=SIGMA_FACTORS, criterion: str = "ams", n_train: int = 1000,
                 random_state: int | None = 0):
        self.n_clusters = n_clusters
        self.sigma = sigma
        self.sigma_factors = sigma_factors
        self.criterion = criterion
        self.n_train = n_train
        self.random_state = random_state

    def _check_params(self) -> None:
        name = type(self).__name__
        if not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 2:
            raise ValueError(f"{name}: n_clusters must be an int >= 2, got {self.n_clusters!r}")
        if self.sigma is not None and not (float(self.sigma) > 0 and np.isfinite(self.sigma)):
            raise ValueError(f"{name}: sigma must be a positive number or None, got {self.sigma!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"{name}: criterion must be one of {CRITERIA}, got {self.criterion!r}")
        factors = np.asarray(self.sigma_factors, dtype=float).ravel()
        if factors.size == 0 or not (np.isfinite(factors) & (factors > 0)).all():
            raise ValueError(f"{name}: sigma_factors must be positive numbers, got {self.sigma_factors!r}")
        if not isinstance(self.n_train, (int, np.integer)) or self.n_train < self.n_clusters:
            raise ValueError(
                f"{name}: n_train must be an int >= n_clusters={self.n_clusters}, got {self.n_train!r}"
            )

    def _fit(self, X: Tensor) -> None:
        self._check_params()
        flat = X.reshape(len(X), -1).double()
        m = min(int(self.n_train), len(flat))
        order = torch.randperm(len(flat), generator=self._generator())
        self.train_indices_ = order[:m].sort().values
        Xtr = flat[self.train_indices_]
        self.selection_scores_ = {}
        if self.sigma is not None:
            self._solve(Xtr, float(self.sigma))
        else:
            # validation points: the next m of the permutation, else the training set
            validation = flat[order[m:2 * m]] if len(flat) > m else Xtr
            median = self._median_distance(Xtr)
            for factor in self.sigma_factors:
                try:
                    self._solve(Xtr, median * float(factor))
                except ValueError:  # too few sign patterns at this bandwidth
                    continue
                self.selection_scores_[float(factor)] = self._selection_score(validation)
            if not self.selection_scores_:
                raise ValueError(
                    f"{type(self).__name__}: no bandwidth of the grid (factors {self.sigma_factors} "
                    f"of the median distance {median:.4g}) gives {self.n_clusters} sign patterns; "
                    "pass sigma or fewer clusters"
                )
            best = max(self.selection_scores_, key=self.selection_scores_.get)
            self._solve(Xtr, median * best)
        self.labels_ = self._predict(X).numpy()

    def _selection_score(self, validation: Tensor) -> float:
        """AMS of the validation points (k >= 3), BLF for k = 2 (1-D scores have no angles)."""
        scores = self._scores(validation)
        labels = self._assign(scores)
        if self.criterion == "blf" or self.n_clusters == 2:
            return balanced_line_fit(scores, labels, self.n_clusters)
        # every codeword is the sign pattern of some training points, so no cluster is empty
        prototypes = torch.stack([self.train_scores_[self.train_labels_ == c].mean(0)
                                  for c in range(self.n_clusters)])
        memberships = ops.soft_memberships(scores, prototypes)
        return float(ops.average_membership_strength(memberships, labels))

    def _solve(self, Xtr: Tensor, sigma: float) -> None:
        """The eigenproblem at bandwidth sigma: alpha, b, codebook and the training scores."""
        self.sigma_ = torch.tensor(sigma, dtype=torch.float64)
        # DK = D^-1 Omega and the degrees from the fused op; D^1/2 DK D^-1/2 is symmetric.
        DK, degrees = ops.degree_weighted_kernel(Xtr, "rbf", sigma)
        root = degrees.sqrt()
        K_sym = root[:, None] * DK / root[None, :]
        u = 1 / root
        u = u / u.norm()
        Ku = K_sym @ u
        # Pr K Pr with the projection Pr = I - u u^T, without forming Pr.
        PKP = K_sym - torch.outer(u, Ku) - torch.outer(Ku, u) + (u @ Ku) * torch.outer(u, u)
        eigenvalues, gammas = torch.linalg.eigh((PKP + PKP.T) / 2)
        top = torch.argsort(eigenvalues, descending=True)[: self.n_clusters - 1]
        alpha = gammas[:, top] / root[:, None]
        # b_l = -(1^T D^-1 Omega alpha_l) / (1^T D^-1 1)
        self.bias_ = -(DK @ alpha).sum(0) / (1 / degrees).sum()
        self.X_train_ = Xtr
        self.alpha_ = alpha
        self.eigenvalues_ = eigenvalues[top]
        self.train_scores_ = (degrees[:, None] * DK) @ alpha + self.bias_  # Omega alpha + b
        self.codebook_ = self._codebook(torch.sign(self.train_scores_))
        self.train_labels_ = self._assign(self.train_scores_)

    def _median_distance(self, Xtr: Tensor) -> float:
        d = torch.pdist(Xtr)
        median = float(d.median()) if d.numel() else 0.0
        if not median > 0:
            raise ValueError(f"{type(self).__name__}: the training points are all identical, so "
                             "no bandwidth can be taken from their distances; pass sigma")
        return median

    def _codebook(self, signs: Tensor) -> Tensor:
        """The k most frequent sign patterns of the training scores (0 counts as +1)."""
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        patterns, counts = torch.unique(signs, dim=0, return_counts=True)
        if len(patterns) < self.n_clusters:
            raise ValueError(
                f"{type(self).__name__}: the training scores show only {len(patterns)} sign "
                f"pattern(s), fewer than n_clusters={self.n_clusters}; try another sigma "
                f"(now {float(self.sigma_):.4g}) or fewer clusters"
            )
        order = torch.argsort(counts, descending=True, stable=True)
        return patterns[order[: self.n_clusters]]

    def _scores(self, X: Tensor) -> Tensor:
        """Out-of-sample score variables e(x), in row blocks (never n x m at once)."""
        flat = X.reshape(len(X), -1).double()
        c = 1.0 / (2.0 * float(self.sigma_) ** 2)
        blocks = []
        for start in range(0, len(flat), _OOS_BLOCK):
            sq = torch.cdist(flat[start:start + _OOS_BLOCK], self.X_train_).square()
            blocks.append(torch.exp(-c * sq) @ self.alpha_ + self.bias_)
        return torch.cat(blocks)

    def _predict(self, X: Tensor) -> Tensor:
        return self._assign(self._scores(X))

    def _assign(self, scores: Tensor) -> Tensor:
        """Nearest codeword in Hamming distance of the score signs."""
        signs = torch.sign(scores)
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        # Hamming distance = (k-1 - signs . code) / 2; argmin takes the first (most frequent) tie.
        return (-(signs @ self.codebook_.T)).argmin(dim=1)

    def _transform(self, X: Tensor) -> Tensor:
        return self._scores(X).float()

    def _build(self, sample_shape) -> None:
        pass

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in
                ("train_indices_", "X_train_", "alpha_", "bias_", "eigenvalues_", "sigma_",
                 "train_scores_", "codebook_", "train_labels_")}

    def prototypes(self) -> Tensor:
        """Index (into the training subsample) of each cluster's prototype: the training point
        of that cluster farthest from the origin of the score space, the tip of its line."""
        check_is_fitted(self, "labels_")
        labels = self.train_labels_
        norms = self.train_scores_.norm(dim=1)
        tips = []
        for c in range(self.n_clusters):
            members = (labels == c).nonzero().squeeze(1)
            tips.append(int(members[norms[members].argmax()]) if len(members) else -1)
        return torch.tensor(tips)


def balanced_line_fit(scores: Tensor, labels: Tensor, n_clusters: int, eta: float = BLF_ETA) -> float:
    """Alzate & Suykens' BLF = eta * linefit + (1 - eta) * balance, in [0, 1], higher is better.

    linefit: per cluster, how much of the (centred) scores' variance the first principal direction
    holds, rescaled so that isotropic scores give 0 and a perfect line 1, averaged over clusters
    weighted by their size (a cluster of one or two points is always a "line" and must not
    count as much as a large one).
    For k = 2 the scores are 1-D and always on a line, so there it is the share of the score
    variance between the two clusters (1 - within / total). balance: smallest / largest cluster.
    An empty cluster gives 0.
    """
    sizes = torch.bincount(labels, minlength=n_clusters)
    if (sizes == 0).any():
        return 0.0
    balance = float(sizes.min() / sizes.max())
    if scores.shape[1] == 1:
        total = float(scores.var(unbiased=False))
        within = sum(float(scores[labels == c].var(unbiased=False)) * float(sizes[c])
                     for c in range(n_clusters)) / len(scores)
        linefit = 1.0 - within / total if total > 0 else 0.0
    else:
        dims = scores.shape[1]
        fits = []
        for c in range(n_clusters):
            members = scores[labels == c]
            centred = members - members.mean(0)
            ev = torch.linalg.eigvalsh(centred.T @ centred / len(members))
            share = float(ev[-1] / ev.sum()) if float(ev.sum()) > 0 else 1.0
            fits.append((share - 1.0 / dims) / (1.0 - 1.0 / dims))
        linefit = float(np.average(fits, weights=sizes.numpy()))
    return eta * linefit + (1 - eta) * balance


def plot_lines(model: KSC, path: str | os.PathLike, title: str | None = None) -> str:
    """The GenKSC paper's Fig. 1: the training points in the first two score dimensions, coloured
    by cluster, the prototypes (line tips) marked; beside it the input space when it is 2-D."""
    from pydeepclust import viz

    plt = viz._pyplot()
    scores = model.train_scores_.numpy()
    labels = model.train_labels_.numpy()
    tips = model.prototypes().numpy()
    two_d_input = model.X_train_.shape[1] == 2
    fig, axes = plt.subplots(1, 2 if two_d_input else 1, figsize=(10 if two_d_input else 5.5, 5),
                             squeeze=False)
    panels = [(axes[0, -1], scores, "e(1)", "e(2)" if scores.shape[1] > 1 else "index")]
    if two_d_input:
        panels.insert(0, (axes[0, 0], model.X_train_.numpy(), "x1", "x2"))
    for ax, points, xlabel, ylabel in panels:
        ys = points[:, 1] if points.shape[1] > 1 else np.arange(len(points))
        ax.scatter(points[:, 0], ys, c=labels, s=5, cmap="tab10", alpha=0.6)
        valid = tips[tips >= 0]
        ax.scatter(points[valid, 0], ys[valid], marker="*", s=250, c="k", label="prototypes")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    axes[0, -1].set_title("score variables (lines, prototypes at the tips)")
    axes[0, -1].legend(loc="best", fontsize=8)
    if two_d_input:
        axes[0, 0].set_title("input space")
    return viz.save_figure(fig, path, suptitle=title)


# -- command line -------------------------------------------------------------------------


def add_cli_arguments(p) -> None:
    p.add_argument("--sigma", type=float, default=None,
                   help="RBF bandwidth (default: searched by --criterion over factors of the "
                        "median distance)")
    p.add_argument("--criterion", default="ams", choices=CRITERIA,
                   help="bandwidth selection: average membership strength or balanced line fit")
    p.add_argument("--n-train", type=int, default=1000, help="training subsample size")


def from_cli(args, dataset) -> KSC:
    return KSC(args.k, sigma=args.sigma, criterion=args.criterion,
               n_train=args.n_train, random_state=args.seed)


def cli_outputs(model: KSC, X, dataset, out_dir: str) -> dict[str, str]:
    return {"score_lines": plot_lines(model, os.path.join(out_dir, "ksc_lines.png"),
                                      title=f"KSC on {dataset.name}, sigma = {float(model.sigma_):.3g}")}
