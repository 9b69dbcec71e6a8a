"""RSM: robust spectral map -- a network trained on the ratio cut of random-bandwidth graphs.

Rykov & Hess, "Robust Deep Spectral Clustering": a network f: x -> z in R^k minimises, per
mini-batch, the ratio cut of a graph whose RBF bandwidth is drawn at random, plus a penalty
that keeps the embedding orthonormal (instead of SpectralNet's orthogonalisation layer):

    L = sum_ij S_ij ||z_i - z_j||^2 / sum_ij S_ij  +  lambda ||Z^T Z / B - I||_F^2

Labels are k-means (scikit-learn) on z; new points go through f to the nearest centre.

Normalisation: the cut is divided by the total affinity (S scaled to mean degree 1, then
divided by B: ``rbf_ratio_cut(..., normalization="degree")``) and the penalty uses
``Z^T Z / B``, so both terms are O(1) for every batch size and bandwidth. A prototype here
with the raw cut and ``Z^T Z`` collapsed Z to rank 1: the cut grows like B^2 and swamps it.

Our defaults differ from the paper's literal loss where measurements said so (each choice
is an argument, and ``whiten_cut=False, penalty_weight=1, kernel="rbf"`` is the paper):
the cut is taken of the batch-whitened ``Z R^-1`` (``R^T R = Z^T Z / B``), which cannot
collapse and finds the cluster indicators without a penalty to tune (two circles, full batch:
NMI 1.00 in 400 steps, where the literal loss gives 0.00 with the paper's lambda = 1 and needs
lambda = 0.01 and 800 steps for 1.00), and the graph is the random-m kNN graph, whose ratio cut is meaningful on
image data where the RBF graph's is not (see :class:`RSM`).

The cut never materialises S (``pydeepclust.ops.rbf_ratio_cut`` streams over row tiles,
O(B (d + k)) memory), so batches of tens of thousands of points fit in a few hundred MB
where the dense B x B affinity would need B^2 * 4 bytes (16,384: 1 GiB per copy, and the
autograd graph of the dense loss holds several).
"""

from __future__ import annotations

import copy

import math
import numbers
import os
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor, nn

import pydeepclust.ops as ops
from pydeepclust import distributed as pdist
from pydeepclust.ops.rbf import DISTRIBUTIONS as BANDWIDTH_DISTRIBUTIONS
from pydeepclust.models.autoencoder import Autoencoder, pretrain_autoencoder
from pydeepclust.models.base import DeepClusterer
from pydeepclust.nn import ConvEncoder28, check_widths, mlp

__all__ = ["RSM", "batch_gram", "default_hidden", "knn_indices", "knn_ratio_cut", "orthonormality_penalty",
           "rsm_loss", "whiten"]

KERNELS = ("rbf", "knn")
# The defaults' training length and batch cap (see RSM's epochs and batch_size), measured:
# two circles need 800 full-batch steps on every seed (400 left seeds 2, or 3 and 4, at NMI
# 0.3-0.5), digits are done in 300-400; on sets larger than one batch the steps see fresh
# samples and 80 epochs (Fashion-MNIST: 240 steps of 16,384 points) met the paper's numbers.
DEFAULT_STEPS = 800
MAX_DEFAULT_BATCH = 16384
MAX_DEFAULT_EPOCHS = 80  # for n > MAX_DEFAULT_BATCH
MIN_DEFAULT_STEPS = 240  # ... but never fewer steps than 80 Fashion-MNIST epochs took
AFFINITY_INPUTS = ("input", "autoencoder")
NETWORK_INPUTS = ("raw", "autoencoder")


def orthonormality_penalty(Z: Tensor, gram: Tensor | None = None) -> Tensor:
    """``||Z^T Z / B - I||_F^2`` for a batch Z of shape (B, k) (``gram``: ``Z^T Z / B`` if
    already at hand, e.g. :func:`batch_gram`'s over the global batch)."""
    gram = Z.T @ Z / Z.shape[0] if gram is None else gram
    return (gram - torch.eye(Z.shape[1], dtype=Z.dtype, device=Z.device)).square().sum()


def batch_gram(Z: Tensor) -> Tensor:
    """``Z^T Z / B`` of the batch; under torch.distributed, of the global batch (Z this rank's
    rows; the partial Grams and row counts summed over the ranks, differentiably)."""
    count = pdist.global_count(Z.shape[0], Z.device)
    return pdist.all_reduce_sum(Z.T @ Z) / count


@torch.no_grad()
def knn_indices(A: Tensor, n_neighbors: int, block: int = 1024, columns: Tensor | None = None,
                row_offset: int = 0) -> Tensor:
    """(B, n_neighbors) indices of each row's nearest other rows, in row blocks (O(block B)).

    ``columns``: the points the neighbours are drawn from (default A itself), where row i of
    A is column ``row_offset + i`` (not its own neighbour): under torch.distributed a rank's
    rows against the gathered batch."""
    columns = A if columns is None else columns
    out = []
    for start in range(0, len(A), block):
        dist = torch.cdist(A[start:start + block], columns)
        rows = torch.arange(dist.shape[0], device=A.device)
        dist[rows, rows + start + row_offset] = float("inf")  # not itself
        out.append(dist.topk(n_neighbors, dim=1, largest=False).indices)
    return torch.cat(out)


def knn_ratio_cut(Z: Tensor, neighbors: Tensor) -> Tensor:
    """The ratio cut of the kNN graph S_ij = 1 for j in N(i), divided by its total weight:
    ``mean_i mean_{j in N(i)} ||z_i - z_j||^2``. (The cut of S equals that of the symmetric
    (S + S^T) / 2, so no symmetrisation is needed.) Under torch.distributed: Z this rank's
    rows, ``neighbors`` indices into the gathered batch, the mean over the global batch."""
    Z_all = pdist.all_gather(Z)
    local = (Z.unsqueeze(1) - Z_all[neighbors]).square().sum(-1).mean()
    return pdist.global_mean(local, len(Z), pdist.global_count(len(Z), Z.device))


def default_hidden(input_dim: int) -> tuple[int, ...]:
    """The mlp's hidden widths for ``hidden=None``, from the width d of what f maps: w = the
    power of two at or above 4 d, clipped to [128, 512]; two layers of w for d <= 256, else
    (w, w, w / 2). It gives the widths of the recipes measured on each canonical set: (128, 128)
    for two circles (d = 2), (256, 256) for 8x8 digits, (512, 512, 256) for 28x28 images
    (Fashion-MNIST); SpectralNet's is ``hidden=(1024, 1024, 512)``, about 90 times the
    arithmetic of (128, 128) per point on a 2-D input."""
    d = max(1, int(input_dim))
    width = min(512, max(128, 1 << math.ceil(math.log2(4 * d))))
    return (width, width) if d <= 256 else (width, width, width // 2)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whiten(Z: Tensor, jitter: float | None = None, gram: Tensor | None = None) -> Tensor:
    """``Z R^-1`` with ``R^T R = Z^T Z / B`` (Cholesky): the batch's embedding with exactly
    orthonormal columns (``W^T W / B = I``) spanning the same space; differentiable.

    Not centred, on purpose: the constant vector (the trivial eigenvector of every graph
    Laplacian) stays available as one column, as in spectral clustering's k eigenvectors,
    so the other k - 1 carry the clusters; centred, k-means would weigh a k-th, smooth
    within-cluster eigenvector as much as the cluster indicators (two circles: NMI 0).
    ``jitter`` (relative to the mean diagonal; default 10 machine epsilons of Z's dtype)
    keeps R invertible. ``gram``: ``Z^T Z / B`` if at hand (:func:`batch_gram` under
    torch.distributed, where R comes from the global batch)."""
    if jitter is None:
        jitter = 10 * torch.finfo(Z.dtype).eps
    return torch.linalg.solve_triangular(_gram_cholesky(Z, jitter, gram), Z.T, upper=False).T


def _gram_cholesky(Z: Tensor, jitter: float, gram: Tensor | None = None) -> Tensor:
    """Cholesky factor of ``Z^T Z / n`` (+ ``jitter`` x its mean diagonal), or a clear error."""
    gram = Z.T @ Z / Z.shape[0] if gram is None else gram
    eye = torch.eye(Z.shape[1], dtype=Z.dtype, device=Z.device)
    L, info = torch.linalg.cholesky_ex(gram + jitter * gram.diagonal().mean().detach() * eye)
    if int(info) != 0:
        raise FloatingPointError(
            "RSM: Z^T Z of the embedding is not positive definite: the embedding collapsed "
            "(e.g. constant or duplicated data, or too large a learning rate) or is not finite")
    return L


def rsm_loss(A: Tensor, Z: Tensor, sigma: Tensor | float | None = None,
             neighbors: Tensor | None = None, penalty_weight: float = 1.0,
             whiten_cut: bool = True) -> dict[str, Tensor]:
    """RSM's loss terms for one batch: the normalised ratio cut of the graph on A (RBF with
    bandwidth ``sigma``, or the kNN graph given by ``neighbors``) of Z (of :func:`whiten`'s
    Z when ``whiten_cut``), and the weighted penalty ``lambda ||Z^T Z / B - I||^2`` on Z.

    Under torch.distributed (DESIGN §6) A and Z are this rank's rows of the global batch,
    ``neighbors`` index the gathered batch, and both terms are those of the global batch, on
    every rank: the whitening and the penalty from the summed Gram, the RBF cut from the
    rectangular streaming op (these rows against the gathered batch) with the cut and the
    degrees summed over the ranks."""
    gram = batch_gram(Z)
    Zc = whiten(Z, gram=gram) if whiten_cut else Z
    if neighbors is not None:
        cut = knn_ratio_cut(Zc, neighbors)
    elif pdist.is_distributed():
        cut = _rbf_cut_of_global_batch(A, Zc, sigma)
    else:
        cut = ops.rbf_ratio_cut(A, Zc, sigma, normalization="degree")
    return {"cut": cut, "penalty": penalty_weight * orthonormality_penalty(Z, gram)}


def _rbf_cut_of_global_batch(A: Tensor, Z: Tensor, sigma) -> Tensor:
    """The degree-normalised RBF ratio cut of the global batch, each rank holding its rows A, Z,
    with every pair of samples computed once over all ranks: this rank's own block by the
    square op (whose symmetry halves it), and of the block with each other rank one half --
    these rows against the first half of its rows when this rank comes first, else the second
    half of these rows against all of its rows (the two halves tile the block) -- by the
    rectangular op, counted twice (S is symmetric). Each rank does 1/W of the one-process
    work; the cut and the degree sum are summed over the ranks."""
    A_all, sizes = pdist.gather_rows(A)
    Z_all = pdist.all_gather(Z)
    me, starts = pdist.rank(), [sum(sizes[:r]) for r in range(len(sizes))]
    cut, degrees = ops.rbf_ratio_cut(A, Z, sigma, normalization="sum", return_degrees=True)
    total = degrees.sum()
    for other, (start, size) in enumerate(zip(starts, sizes)):
        if other == me:
            continue
        if me < other:
            rows, cols = slice(None), slice(start, start + size // 2)
        else:
            rows, cols = slice(len(A) // 2, None), slice(start, start + size)
        part, part_degrees = ops.rbf_ratio_cut_rows(A[rows], Z[rows], A_all[cols], Z_all[cols],
                                                    sigma, zero_diagonal=False)
        cut, total = cut + 2 * part, total + 2 * part_degrees.sum()
    cut, total = pdist.all_reduce_sum(cut), pdist.all_reduce_sum(total)
    return cut / torch.where(total > 0, total, torch.ones_like(total))


class RSM(DeepClusterer):
    """Robust spectral map (RSM), as a scikit-learn style clusterer.

    Args:
        n_clusters: k, the number of clusters.
        embedding_dim: width of z (default: k, as in spectral clustering).
        arch: "mlp" (``hidden``, then k) or "conv" (the 28x28 conv encoder of
            :mod:`pydeepclust.nn`, then ``hidden[-1]`` (default 512) and k).
        hidden: hidden widths of the mlp. Default None: from the width d of f's input,
            :func:`default_hidden` ((128, 128) for 2-D points, (256, 256) for 8x8 images,
            (512, 512, 256) for 28x28 images); SpectralNet's is ``(1024, 1024, 512)``.
        kernel: "knn" (default; S_ij = 1 for the m nearest neighbours of i in the batch, m
            drawn per batch from ``n_neighbors_range``; the authors' second kernel type) or
            "rbf" (S_ij = exp(-||a_i - a_j||^2 / 2 sigma^2), sigma random per batch, through
            the streaming op). Why knn by default: the exact ratio-cut eigenvectors of the
            RBF graph of scikit-learn's digits localise on low-degree outliers at every
            bandwidth (k-means NMI 0.01 for sigma = 1, 2, 3, 6x the knn scale), those of the
            kNN graph score 0.87 / 0.86 / 0.84 (m = 5 / 10 / 20); on two circles both give
            1.00 (the RBF graph up to 3x the knn scale). ``benchmarks/rsm_choices.py graph``.
        bandwidth_range: (low, high) of the random factor of sigma; sigma = factor * scale.
        bandwidth_scale: "knn" (default: the median distance to the ``n_neighbors``-th
            nearest point of the batch, a local scale that does not bridge nested clusters),
            "median" (median pairwise distance), or a positive number.
        bandwidth_distribution: "uniform" or "log-uniform" draws of the factor.
        n_neighbors: the neighbour that sets the "knn" scale.
        n_neighbors_range: (low, high) range of m for ``kernel="knn"``.
        affinity_on: "input" (the graph is built on the flattened x) or "autoencoder" (on
            the code of an autoencoder pretrained on X, as SpectralNet does for images; the
            network f still maps x).
        network_input: "raw" (f maps x) or "autoencoder" (f maps the autoencoder code, as
            SpectralNet does on MNIST; the autoencoder's encoder is then part of the model and
            of its checkpoint, and f is an mlp). Much cheaper for big images and batches.
        autoencoder: a pretrained :class:`~pydeepclust.models.autoencoder.Autoencoder` for
            ``affinity_on="autoencoder"`` or ``network_input="autoencoder"``, built with
            ``latent_dim`` and ``autoencoder_hidden`` (None: pretrain one for
            ``pretrain_epochs``).
        penalty_weight: lambda of ``lambda ||Z^T Z / B - I||_F^2`` on f's raw output. Default
            0 because ``whiten_cut`` already makes the cut scale-free and the penalty, measured,
            fights the subspace search (two circles, 400 full-batch steps, seeds 0/1/2: NMI
            1.00 / 1.00 / 1.00 with 0, 0.29 / 1.00 / 1.00 with 0.01, 0.00 with 1). The paper's
            loss is ``whiten_cut=False, penalty_weight=1``.
        whiten_cut: take the cut of the batch-whitened embedding ``Z R^-1``
            (``R^T R = Z^T Z / B``, Cholesky, differentiated through; see :func:`whiten`)
            rather than of Z itself; the penalty still acts on Z, so f's own output stays
            orthonormal. The cut of ``Z R^-1`` depends only on Z's column space (a
            generalised Rayleigh quotient): shrinking a column cannot lower it, so no
            collapse whatever lambda is. Default True, our change to the paper's loss
            (False): with the literal loss the network settles on smooth, nearly linear
            maps of x whose cut is already tiny, and the pull towards the indicator
            vectors, proportional to the small absolute eigengap, is weak (two circles,
            full batch, 3 seeds: NMI 0.00 with lambda = 1 after 300 steps; 0.29-0.36 with
            lambda = 0.01 after 400 and 1.00 after 800); with it and lambda = 0 the same
            runs reach NMI 1.00 in 400 steps (``benchmarks/rsm_choices.py loss``).
        epochs, batch_size, lr: Adam on the network; batches are shuffled, the last short
            batch is dropped when n > batch_size (a tiny batch makes a poor graph).
            ``batch_size=None`` (default): min(n, 16,384), the whole data set up to the batch
            of the Fashion-MNIST recipe: the kNN graph of a batch is the data's graph only when
            the batch is dense enough (two circles in batches of 1,024 of 3,000 points: NMI
            0.00). ``epochs=None`` (default): enough epochs for 800 optimizer steps
            (``DEFAULT_STEPS``; ceil(800 / (n // batch_size)) epochs), at most 80 when n is
            above 16,384 (``MAX_DEFAULT_EPOCHS``: there each step sees fresh points, and 80
            epochs of Fashion-MNIST, 240 steps, met the paper's numbers), but never fewer than
            240 steps (``MIN_DEFAULT_STEPS``: 16,385-32,767 points make one step per epoch). Two circles need the
            800 steps (seeds 0-4 all NMI 1.00; with 400, two of five end at 0.3-0.5); a fixed
            epoch count would give a small data set a few dozen steps (the former default, 50
            epochs of 1,024-point batches, gave two circles 100 steps and NMI 0.00) and a
            large one needlessly many. ``lr=None`` (default): 3e-3 when f's input has at
            most 256 features (the small networks of :func:`default_hidden`; 400 steps on two
            circles, seed 2: NMI 0.51 with 1e-3, 1.00 with 3e-3; digits, seed 0: 0.856 /
            0.860), 1e-3 above (the Fashion-MNIST recipe's, 0.601; not re-measured with these
            defaults). The fitted values are ``batch_size_``, ``epochs_`` and ``lr_``.
        n_init: k-means starts on the embedding.
        random_state: seeds the network, the batches, the bandwidths and k-means.
        device: "cpu", "cuda" or None (cuda when available).
        verbose: progress bar with the loss terms.
        checkpoint_path, checkpoint_every: save the model (labels included) every that many
            epochs, and at the end (and the autoencoder pretrained here, before the first
            epoch); ``fit(X, resume=True)`` continues from that checkpoint.
        distributed: data-parallel training over torch.distributed (see
            :mod:`pydeepclust.distributed`): None (default) when a process group of more than
            one rank is initialised (e.g. under ``torchrun``), True to require one, False to
            train alone on every rank. Every rank passes the same X; ``batch_size`` is the
            global batch (divisible by the number of ranks; the default is rounded down to a
            multiple of it), and each rank computes its share of every step's loss on the
            global batch: the summed Gram for the whitening and the penalty, its rows' kNN
            neighbours and RBF cut (:func:`pydeepclust.ops.rbf_ratio_cut_rows`) against the
            gathered batch. Rank 0 writes the checkpoints.
        precision: "fp32" (default) or "bf16": the networks' forward passes under
            ``torch.autocast`` in bfloat16, the losses in float32 (the fused ops compute in
            float32 whatever they are given). Meant for GPUs; on this repository's 2-core Xeon
            (AMX bfloat16 units) a training step measured 1.2-1.9x faster
            (``benchmarks/precision_speed.py``); CPUs without bfloat16 units may be slower.

    Attributes after ``fit``: ``labels_``, ``cluster_centers_`` (k-means centres in the
    embedding), ``whitening_`` (k x k: ``transform(X) = f(X) @ whitening_`` has orthonormal
    columns over the training data when ``whiten_cut``, as the cut saw it; identity
    otherwise), ``history_`` (mean loss terms per epoch), ``network_``, ``batch_size_``,
    ``epochs_`` and ``lr_`` (the values used, after the defaults).
    """

    _min_samples = 2  # a graph (kernel) between samples

    def __init__(self, n_clusters: int = 10, embedding_dim: int | None = None,
                 arch: str = "mlp", hidden: Sequence[int] | None = None,
                 kernel: str = "knn", bandwidth_range: tuple[float, float] = (0.5, 2.0),
                 bandwidth_scale: str | float = "knn", bandwidth_distribution: str = "uniform",
                 n_neighbors: int = 7, n_neighbors_range: tuple[int, int] = (5, 10),
                 affinity_on: str = "input", network_input: str = "raw",
                 autoencoder: Autoencoder | None = None, latent_dim: int = 10,
                 autoencoder_hidden: Sequence[int] = (500, 500, 2000), pretrain_epochs: int = 20,
                 penalty_weight: float = 0.0,
                 whiten_cut: bool = True,
                 epochs: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, n_init: int = 10,
                 random_state: int | None = 0, device: str | None = None, verbose: bool = False,
                 checkpoint_path: str | None = None, checkpoint_every: int = 10,
                 distributed: bool | None = None, precision: str = "fp32"):
        self.n_clusters = n_clusters
        self.embedding_dim = embedding_dim
        self.arch = arch
        self.hidden = hidden
        self.kernel = kernel
        self.bandwidth_range = bandwidth_range
        self.bandwidth_scale = bandwidth_scale
        self.bandwidth_distribution = bandwidth_distribution
        self.n_neighbors = n_neighbors
        self.n_neighbors_range = n_neighbors_range
        self.affinity_on = affinity_on
        self.network_input = network_input
        self.autoencoder = autoencoder
        self.latent_dim = latent_dim
        self.autoencoder_hidden = autoencoder_hidden
        self.pretrain_epochs = pretrain_epochs
        self.penalty_weight = penalty_weight
        self.whiten_cut = whiten_cut
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_init = n_init
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.distributed = distributed
        self.precision = precision

    # -- parameters and networks --------------------------------------------------------

    def _check_params(self, n_samples: int) -> None:
        self._check_integers("n_clusters", minimum=2)
        if self.batch_size is not None:
            self._check_integers("batch_size", minimum=2)
        if self.epochs is not None:
            self._check_integers("epochs")
        self._check_integers("n_init")
        self._check_integers("pretrain_epochs", minimum=0)
        self._check_checkpoint_params()
        if self.kernel not in KERNELS:
            raise ValueError(f"RSM: kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.affinity_on not in AFFINITY_INPUTS:
            raise ValueError(f"RSM: affinity_on must be one of {AFFINITY_INPUTS}, got "
                             f"{self.affinity_on!r}")
        if self.network_input not in NETWORK_INPUTS:
            raise ValueError(f"RSM: network_input must be one of {NETWORK_INPUTS}, got "
                             f"{self.network_input!r}")
        if self.network_input == "autoencoder" and self.arch != "mlp":
            raise ValueError("RSM: network_input='autoencoder' needs arch='mlp' (the code is a "
                             "vector)")
        if self.lr is not None:
            self._check_numbers("lr")
        self._check_numbers("penalty_weight", strict=False)
        if self.penalty_weight == 0 and not self.whiten_cut:
            raise ValueError("RSM: penalty_weight=0 needs whiten_cut=True (without either, "
                             "Z = 0 minimises the cut)")
        low, high = _pair(self.bandwidth_range, "bandwidth_range")
        if not 0 < low <= high < float("inf"):
            raise ValueError(f"RSM: bandwidth_range must satisfy 0 < low <= high, got "
                             f"{self.bandwidth_range!r}")
        if not (self.bandwidth_scale in ("knn", "median") or (
                isinstance(self.bandwidth_scale, numbers.Real)
                and not isinstance(self.bandwidth_scale, bool)
                and 0 < self.bandwidth_scale < float("inf"))):
            raise ValueError(f"RSM: bandwidth_scale must be 'knn', 'median' or a positive number, "
                             f"got {self.bandwidth_scale!r}")
        if self.bandwidth_distribution not in BANDWIDTH_DISTRIBUTIONS:
            raise ValueError(f"RSM: bandwidth_distribution must be one of "
                             f"{BANDWIDTH_DISTRIBUTIONS}, got {self.bandwidth_distribution!r}")
        m_low, m_high = _pair(self.n_neighbors_range, "n_neighbors_range")
        batch = self._batch_size(n_samples)
        if self.kernel == "knn" and not (_is_int(m_low) and _is_int(m_high)
                                         and 1 <= m_low <= m_high < batch):
            raise ValueError(f"RSM: n_neighbors_range must be integers 1 <= low <= high < the "
                             f"batch size {batch}, got {self.n_neighbors_range!r}")
        if self.kernel == "rbf" and self.bandwidth_scale == "knn" and not (
                _is_int(self.n_neighbors) and 1 <= self.n_neighbors < batch):
            raise ValueError(f"RSM: n_neighbors must be an integer 1 <= n_neighbors < the batch "
                             f"size {batch}, got {self.n_neighbors!r}")
        if self.autoencoder is not None and not isinstance(self.autoencoder, Autoencoder):
            raise TypeError(f"RSM: autoencoder must be a pydeepclust Autoencoder or None, got "
                            f"{type(self.autoencoder).__name__}")

    def _batch_size(self, n_samples: int) -> int:
        """The (global) batch size used for n samples: ``batch_size``, or min(n, 16,384) for
        None, rounded down to a multiple of the number of ranks under torch.distributed."""
        if self.batch_size is not None:
            return min(self.batch_size, n_samples)
        size = min(n_samples, MAX_DEFAULT_BATCH)
        return size - size % pdist.world_size()

    def _epochs(self, n_samples: int) -> int:
        """``epochs``, or for None enough epochs for ``DEFAULT_STEPS`` optimizer steps, at most
        ``MAX_DEFAULT_EPOCHS`` -- unless that leaves fewer than ``MIN_DEFAULT_STEPS`` steps (sets
        just above one batch have one step per epoch)."""
        if self.epochs is not None:
            return self.epochs
        steps_per_epoch = n_samples // self._batch_size(n_samples)  # short last batch dropped
        epochs = math.ceil(DEFAULT_STEPS / steps_per_epoch)
        if n_samples <= MAX_DEFAULT_BATCH:
            return epochs
        return min(epochs, max(MAX_DEFAULT_EPOCHS, math.ceil(MIN_DEFAULT_STEPS / steps_per_epoch)))

    def _input_dim(self, sample_shape) -> int:
        """The width of what f maps: the flattened sample, or the autoencoder code."""
        return self.latent_dim if self.network_input == "autoencoder" else int(np.prod(sample_shape))

    def _build(self, sample_shape) -> None:
        if self.embedding_dim is not None:
            self._check_integers("embedding_dim")
        k = self.n_clusters if self.embedding_dim is None else self.embedding_dim
        d = self._input_dim(sample_shape)
        hidden = list(default_hidden(d) if self.hidden is None
                      else check_widths(self.hidden, "RSM: hidden"))
        self.autoencoder_ = None
        with self._seeded():
            if self.network_input == "autoencoder":
                self.autoencoder_ = self._new_autoencoder(sample_shape)
                d = self.latent_dim
            if self.arch == "mlp":
                net = nn.Sequential(nn.Flatten(), mlp([d, *hidden, k]))
            elif self.arch == "conv":
                width = hidden[-1] if hidden and self.hidden is not None else 512
                net = nn.Sequential(ConvEncoder28(width, channels=_channels(sample_shape)),
                                    nn.ReLU(), nn.Linear(width, k))
            else:
                raise ValueError(f"RSM: arch must be 'mlp' or 'conv', got {self.arch!r}")
        self.network_ = net.to(self._device())

    def _new_autoencoder(self, sample_shape) -> Autoencoder:
        """An (untrained) autoencoder of ``latent_dim`` and ``autoencoder_hidden``."""
        net = Autoencoder(sample_shape, self.latent_dim, "mlp",
                          check_widths(self.autoencoder_hidden, "RSM: autoencoder_hidden"))
        return net.to(self._device()).eval()

    def _modules(self) -> dict[str, nn.Module]:
        if self.autoencoder_ is None:
            return {"network": self.network_}
        return {"network": self.network_, "autoencoder": self.autoencoder_}

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"cluster_centers_": self.cluster_centers_, "whitening_": self.whitening_}

    # -- training ---------------------------------------------------------------------------

    def _fit(self, X: Tensor) -> None:
        self._check_params(len(X))
        if self.arch == "conv" and tuple(X.shape[-2:]) != (28, 28):
            raise ValueError(f"RSM: arch='conv' needs 28x28 images, got samples of shape "
                             f"{tuple(X.shape[1:])}")
        self._build(tuple(X.shape[1:]))
        device = self._device()
        self.history_ = []
        resumed = self._resumed()
        if resumed:
            if "coder" in resumed["modules"]:  # weights loaded next
                with self._seeded(offset=5):
                    self._coder = self._new_autoencoder(tuple(X.shape[1:]))
            self._resume_model(resumed)
        A, X = self._training_inputs(X)
        self.lr_ = self.lr if self.lr is not None else (
            3e-3 if self._input_dim(tuple(X.shape[1:])) <= 256 else 1e-3)
        optimizers = {"network": torch.optim.Adam(self.network_.parameters(), lr=self.lr_)}
        generators = {"batches": self._generator(offset=1), "draws": self._generator(offset=2)}
        start = self._resume_loop(resumed, optimizers, generators) if resumed else 0
        self.batch_size_, self.epochs_ = self._batch_size(len(X)), self._epochs(len(X))
        self._check_global_batch(self.batch_size_)
        if self.checkpoint_path and start == 0 and "autoencoder" in (self.affinity_on,
                                                                     self.network_input):
            # the pretrained autoencoder, so that a resumed fit does not pretrain it again
            self._checkpoint("training", 0, optimizers, generators, fitted=False)
        bar = self._progress(range(start, self.epochs_), desc="RSM", total=self.epochs_ - start)
        for epoch in bar:
            self.network_.train()
            sums = {"cut": 0.0, "penalty": 0.0}
            steps = 0
            for idx in self._minibatches(len(X), self.batch_size_, generators["batches"],
                                         drop_last=True):
                idx = idx[pdist.rank_rows(len(idx))]  # this rank's share of the global batch
                x, a = X[idx].to(device), A[idx].to(device)
                parts = self._batch_loss(x, a, generators["draws"])
                loss = parts["cut"] + parts["penalty"]
                self._check_loss(loss, epoch, parts)
                optimizers["network"].zero_grad(set_to_none=True)
                loss.backward()
                pdist.average_gradients(self.network_.parameters())
                optimizers["network"].step()
                for name, value in parts.items():
                    sums[name] += float(value.detach())
                steps += 1
            self.history_.append({name: value / steps for name, value in sums.items()})
            self._check_ranks_in_sync(f"RSM epoch {epoch}")
            if hasattr(bar, "set_postfix"):
                bar.set_postfix({n: f"{v:.3g}" for n, v in self.history_[-1].items()})
            if self._checkpoint_due(epoch) and epoch + 1 < self.epochs_:
                self._cluster(X)  # draws from no training generator
                self._checkpoint("training", epoch + 1, optimizers, generators)
        self._cluster(X)  # the same again when resumed from the final checkpoint
        if self.checkpoint_path:
            self._checkpoint("training", self.epochs_, optimizers, generators)
        self.__dict__.pop("_coder", None)

    def _checkpoint_modules(self) -> dict[str, nn.Module]:
        """With the modules, the autoencoder pretrained here for the graph alone."""
        coder = getattr(self, "_coder", None)
        return self._modules() if coder is None else {**self._modules(), "coder": coder}

    def _training_inputs(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """(what the graph is built on, what f maps): flattened x or the autoencoder code."""
        needs_code = "autoencoder" in (self.affinity_on, self.network_input)
        codes = self._autoencoder_codes(X) if needs_code else None
        A = codes if self.affinity_on == "autoencoder" else X.reshape(len(X), -1)
        return A, codes if self.network_input == "autoencoder" else X

    def _autoencoder_codes(self, X: Tensor) -> Tensor:
        if self.autoencoder is not None:
            net = copy.deepcopy(self.autoencoder)  # the caller's network stays where it is
            if tuple(net.sample_shape) != tuple(X.shape[1:]):
                raise ValueError(f"RSM: autoencoder was built for samples of shape "
                                 f"{net.sample_shape}, X has {tuple(X.shape[1:])}")
        elif self._resumed():  # pretrained before the checkpoint: autoencoder_ or _coder
            net = self.autoencoder_ if self.autoencoder_ is not None else self._coder
        else:
            net = pretrain_autoencoder(X, latent_dim=self.latent_dim,
                                       hidden=tuple(self.autoencoder_hidden),
                                       epochs=self.pretrain_epochs, batch_size=256,
                                       random_state=self._int_seed(offset=4), device=self.device,
                                       verbose=self.verbose)
            if self.autoencoder_ is None:  # not part of the model: kept for checkpoints
                self._coder = net
        if self.autoencoder_ is not None and net is not self.autoencoder_:
            try:  # part of the model: keep a copy of its weights
                self.autoencoder_.load_state_dict(net.state_dict())
            except RuntimeError as err:
                raise ValueError("RSM: the given autoencoder does not match latent_dim="
                                 f"{self.latent_dim}, autoencoder_hidden="
                                 f"{tuple(self.autoencoder_hidden)}: {err}") from None
        net = net.to(self._device()).eval()
        with torch.no_grad():
            return self._embed_in_batches(net.embed, X).cpu()

    def _batch_loss(self, x: Tensor, a: Tensor, draws: torch.Generator) -> dict[str, Tensor]:
        """The loss terms of one batch (under torch.distributed: of the global batch, x and a
        this rank's rows of it; the graph's random draws are the same on every rank)."""
        with self._autocast():
            z = self.network_(x).to(x.dtype)  # the loss (Gram, Cholesky, cut) in x's dtype
        if self.kernel == "knn":
            low, high = self.n_neighbors_range
            m = int(torch.randint(low, high + 1, (1,), generator=draws))
            a_all, sizes = pdist.gather_rows(a)
            neighbors = knn_indices(a, m, columns=a_all, row_offset=sum(sizes[:pdist.rank()]))
            del a_all
            return rsm_loss(a, z, neighbors=neighbors, penalty_weight=self.penalty_weight,
                            whiten_cut=self.whiten_cut)
        return rsm_loss(a, z, self._bandwidth(a, draws), penalty_weight=self.penalty_weight,
                        whiten_cut=self.whiten_cut)

    def _bandwidth(self, a: Tensor, draws: torch.Generator) -> Tensor:
        """The batch's random RBF bandwidth, drawn from the whole (gathered) batch."""
        low, high = self.bandwidth_range
        return ops.sample_bandwidths(pdist.all_gather(a), low, high, scale=self.bandwidth_scale,
                                     distribution=self.bandwidth_distribution, generator=draws,
                                     max_points=512, n_neighbors=self.n_neighbors)

    def _cluster(self, inputs: Tensor) -> None:
        """Whitening of the training embedding, k-means on it; labels_ = nearest centre.
        Under torch.distributed rank 0 computes both and every rank gets its values."""
        self.network_.eval()
        with torch.no_grad():
            Z = self._embed_in_batches(self.network_, inputs)
            eye = torch.eye(Z.shape[1], dtype=Z.dtype, device=Z.device)
            self.whitening_ = pdist.broadcast_(self._whitening(Z) if self.whiten_cut else eye)
            Z = Z @ self.whitening_
        centers = torch.zeros(self.n_clusters, Z.shape[1], device=Z.device)
        if pdist.rank() == 0:
            km = KMeans(self.n_clusters, n_init=self.n_init,
                        random_state=self._int_seed(offset=3))
            km.fit(Z.cpu().double().numpy())
            centers = torch.as_tensor(km.cluster_centers_, dtype=torch.float32, device=Z.device)
        self.cluster_centers_ = pdist.broadcast_(centers)
        self.labels_ = self._nearest(Z).cpu().numpy()

    @staticmethod
    def _whitening(Z: Tensor) -> Tensor:
        """R^-1 with ``R^T R = Z^T Z / n`` (float32). The Gram is factored in float32 as
        always, and only where that fails in float64: uncentred data far from the origin
        (scikit-learn's checks fit on points around (100, 100) with spread 1) give columns
        with a large common offset whose small spread float32 loses, so that the float32 Gram
        is numerically singular although Z has full rank."""
        try:
            L = _gram_cholesky(Z, jitter=0.0)
        except FloatingPointError:
            L = _gram_cholesky(Z.double(), jitter=0.0)
        eye = torch.eye(Z.shape[1], dtype=L.dtype, device=Z.device)
        return torch.linalg.solve_triangular(L, eye, upper=False).T.to(Z.dtype)

    # -- inference ----------------------------------------------------------------------------

    def _nearest(self, Z: Tensor) -> Tensor:
        return torch.cdist(Z, self.cluster_centers_).argmin(dim=1)

    @torch.no_grad()
    def _transform(self, X: Tensor) -> Tensor:
        self.network_.eval()
        if self.autoencoder_ is not None:
            Z = self._embed_in_batches(lambda x: self.network_(self.autoencoder_.embed(x)), X)
        else:
            Z = self._embed_in_batches(self.network_, X)
        return Z @ self.whitening_

    def _predict(self, X: Tensor) -> Tensor:
        return self._nearest(self._transform(X))


def _pair(value, name: str) -> tuple:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(f"RSM: {name} must be a (low, high) pair, got {value!r}") from None
    return low, high


def _channels(sample_shape) -> int:
    return sample_shape[0] if len(sample_shape) == 3 else 1


# -- command line -----------------------------------------------------------------------------


def add_cli_arguments(p) -> None:
    p.add_argument("--arch", default="mlp", choices=("mlp", "conv"))
    p.add_argument("--hidden", default=None,
                   help="hidden widths of the mlp (default: from the input width, "
                        "rsm.default_hidden; SpectralNet: 1024,1024,512)")
    p.add_argument("--embedding-dim", type=int, default=None, help="width of z (default: k)")
    p.add_argument("--kernel", default="knn", choices=KERNELS)
    p.add_argument("--bandwidth-range", default="0.5,2.0",
                   help="range of the random factor of the RBF bandwidth")
    p.add_argument("--bandwidth-scale", default="knn",
                   help="'knn', 'median' or a number: what the factor multiplies")
    p.add_argument("--n-neighbors", type=int, default=7, help="neighbour of the 'knn' scale")
    p.add_argument("--n-neighbors-range", default="5,10",
                   help="range of m for --kernel knn")
    p.add_argument("--affinity-on", default="input", choices=AFFINITY_INPUTS)
    p.add_argument("--network-input", default="raw", choices=NETWORK_INPUTS)
    p.add_argument("--latent-dim", type=int, default=10,
                   help="autoencoder code size (--affinity-on / --network-input autoencoder)")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--penalty-weight", type=float, default=0.0,
                   help="lambda (the paper: 1, with --no-whiten-cut)")
    p.add_argument("--no-whiten-cut", action="store_true",
                   help="the paper's literal loss: the cut of Z, not of the whitened Z")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"default: enough for {DEFAULT_STEPS} optimizer steps, at most "
                        f"{MAX_DEFAULT_EPOCHS} epochs above {MAX_DEFAULT_BATCH} points")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"default: min(n, {MAX_DEFAULT_BATCH})")
    p.add_argument("--lr", type=float, default=None,
                   help="default: 3e-3 for inputs of <= 256 features, else 1e-3")
    p.add_argument("--n-init", type=int, default=10, help="k-means starts on z")


def from_cli(args, dataset) -> RSM:
    scale = args.bandwidth_scale
    if scale not in ("knn", "median"):
        try:
            scale = float(scale)
        except ValueError:
            raise SystemExit(f"--bandwidth-scale must be 'knn', 'median' or a number, got {scale!r}")
    low, high = (float(v) for v in args.bandwidth_range.split(","))
    m_low, m_high = (int(v) for v in args.n_neighbors_range.split(","))
    return RSM(n_clusters=args.k, embedding_dim=args.embedding_dim,
               arch=args.arch, hidden=None if args.hidden is None else tuple(
                   int(h) for h in args.hidden.split(",") if h.strip()),
               kernel=args.kernel, bandwidth_range=(low, high), bandwidth_scale=scale,
               n_neighbors=args.n_neighbors, n_neighbors_range=(m_low, m_high),
               affinity_on=args.affinity_on, network_input=args.network_input,
               latent_dim=args.latent_dim,
               pretrain_epochs=args.pretrain_epochs, penalty_weight=args.penalty_weight,
               whiten_cut=not args.no_whiten_cut,
               epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, n_init=args.n_init,
               random_state=args.seed, device=args.device, verbose=not args.quiet)


def cli_outputs(model: RSM, X, dataset, out_dir: str) -> dict[str, str]:
    """The first two embedding dimensions, coloured by cluster."""
    from pydeepclust import viz

    Z = model.transform(X)
    return {"embedding": viz.plot_scores(
        Z, model.labels_, os.path.join(out_dir, "embedding.png"),
        title=f"RSM embedding of {dataset.name} (first two dimensions)")}
