"""ACe/DeC on DCN (Miklautz et al., IJCAI 2021), and DCN (Yang et al., ICML 2017) itself.

Both train a pretrained autoencoder jointly with a k-means objective in its embedding; both
update centroids and assignments by mini-batch k-means (Sculley 2010) after every network
step instead of DCN's alternation, as the ACe/DeC paper does (its SP Sec. 1.7).

* DCN: ``lam/2 * ||z - mu_k||^2 + ||x - dec(z)||^2`` (eq. 4), with the trade-off ``lam``.
* ACe/DeC: eq. (5), ``||V^T z - V^T mu_k||^2_{beta_cs} + ||V^T z - V^T mu||^2_{beta_ss}
  + ||x - dec(V V^T z)||^2`` with ``||h||^2_beta = sum_i beta_i^2 h_i^2``, ``beta_cs =
  sigmoid(b)``, ``beta_ss = 1 - beta_cs`` and no trade-off hyperparameter.

Unlike the authors' library: V is kept orthogonal by a polar retraction after every step
(:func:`retract_orthogonal`), a centroid with no points in a batch keeps its position
(:func:`minibatch_kmeans_update`), and every random choice (network init, batches, the split,
k-means) is drawn from ``random_state``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor

from pydeepclust import distributed as pdist
from pydeepclust.models.autoencoder import (Autoencoder, AutoencoderClusterer,
                                            add_autoencoder_arguments, augment_normalized,
                                            cli_model_name, parse_hidden, reconstruction_loss)

__all__ = ["ACeDeC", "DCN", "acedec_loss", "minibatch_kmeans_update", "optimal_beta_logits",
           "retract_orthogonal"]


# A dimension without cluster structure has beta_cs = s / (c + s) just above 1/2 (its
# within-cluster spread c is barely below its total spread s): the hardening of the soft
# beta into cluster and shared space (the paper's SP Sec. 1.4) gives the shared space every
# dimension whose beta_ss lies within this margin of 1/2, as the authors' library does
# (ClustPy ``_get_P(shared_space_variation=0.05)``).
SHARED_SPACE_VARIATION = 0.05

# -- the pieces, as plain functions (tested one by one) ------------------------------------


def weighted_sq_distance(h: Tensor, g: Tensor, beta: Tensor) -> Tensor:
    """eq. (2): ``sum_i beta[i]^2 (h[i] - g[i])^2`` over the last dimension."""
    return (beta.pow(2) * (h - g).pow(2)).sum(dim=-1)


def acedec_loss(x: Tensor, z: Tensor, decoder, V: Tensor, b: Tensor, centroids: Tensor,
                labels: Tensor, shared_center: Tensor, reduction: str = "mean"):
    """eq. (5) of the ACe/DeC paper on a batch; returns ``(loss, {term: value})``.

    ``z`` (n, d) the embeddings of ``x``, ``centroids`` (k, d) and ``shared_center`` (d,) in
    the embedding (not rotated) space, ``labels`` (n,) the assignments. ``reduction="sum"``
    is eq. (5) literally; "mean" divides every term by n (the training loss).
    """
    beta_cs = torch.sigmoid(b)
    rotated = z @ V  # row i is V^T z_i
    cluster = weighted_sq_distance(rotated, centroids[labels] @ V, beta_cs)
    shared = weighted_sq_distance(rotated, shared_center @ V, 1 - beta_cs)
    rec = (x - decoder(z @ V @ V.T)).pow(2).reshape(len(x), -1).sum(dim=1)
    reduce = {"sum": torch.sum, "mean": torch.mean}.get(reduction)
    if reduce is None:
        raise ValueError(f"acedec_loss: reduction must be 'sum' or 'mean', got {reduction!r}")
    parts = {"cluster": reduce(cluster), "shared": reduce(shared), "reconstruction": reduce(rec)}
    return parts["cluster"] + parts["shared"] + parts["reconstruction"], parts


@torch.no_grad()
def minibatch_kmeans_update(centroids: Tensor, counts: Tensor, z: Tensor, labels: Tensor) -> None:
    """Sculley's mini-batch k-means step, in place.

    Per centroid, the learning rate 1/count over all points it has been given makes it the
    running mean of its points (the batch's points folded in at once, which equals Sculley's
    point-by-point update). A centroid with no point in the batch is left exactly where it is.
    Under torch.distributed z and labels are this rank's rows of the global batch: the counts
    and sums are summed over the ranks, so every rank makes the same update.
    """
    batch_counts = torch.bincount(labels, minlength=len(centroids)).to(counts.dtype)
    sums = torch.zeros_like(centroids).index_add_(0, labels, z.to(centroids.dtype))
    batch_counts, sums = pdist.all_reduce_sum(batch_counts), pdist.all_reduce_sum(sums)
    counts += batch_counts
    present = batch_counts > 0
    step = (sums[present] - batch_counts[present, None] * centroids[present])
    centroids[present] += step / counts[present, None]


@torch.no_grad()
def retract_orthogonal(V: Tensor) -> None:
    """Replace V, in place, by the nearest orthogonal matrix (polar factor ``U W^T`` of its SVD).

    Run after each optimiser step: V stays on the orthogonal group, so ``V V^T = I`` and V is
    the pure rotation the paper intends (its linear-AE analysis shows the reconstruction
    forces this; a deep decoder does not, and without it V drifts).
    """
    U, _, Wh = torch.linalg.svd(V)
    V.copy_(U @ Wh)


@torch.no_grad()
def optimal_beta_logits(rotated: Tensor, cluster_targets: Tensor, shared_target: Tensor,
                        limit: float = 15.0) -> Tensor:
    """b minimising eq. (5)'s cluster + shared terms for fixed V, assignments and centres.

    ``rotated`` (n, d) is ``V^T z``, ``cluster_targets`` (n, d) each point's rotated centroid,
    ``shared_target`` (d,) the rotated shared centre. Per dimension the terms are
    ``beta^2 c + (1 - beta)^2 s`` (c, s: mean squared distance to the own centroid and to the
    shared centre), least at ``beta = s / (c + s)``, i.e. ``b = log(s / c)``; clipped to
    ``+-limit`` so that sigmoid keeps a gradient where a dimension has no spread at all.
    """
    if rotated.dim() != 2 or not rotated.is_floating_point() or len(rotated) == 0:
        raise ValueError("optimal_beta_logits: rotated must be a non-empty floating (n, d) "
                         f"tensor, got {rotated.dtype} of shape {tuple(rotated.shape)}")
    if cluster_targets.shape != rotated.shape:
        raise ValueError(f"optimal_beta_logits: cluster_targets must have rotated's shape "
                         f"{tuple(rotated.shape)}, got {tuple(cluster_targets.shape)}")
    if shared_target.shape != rotated.shape[1:]:
        raise ValueError(f"optimal_beta_logits: shared_target must have shape "
                         f"({rotated.shape[1]},), got {tuple(shared_target.shape)}")
    c = (rotated - cluster_targets).pow(2).mean(dim=0)
    s = (rotated - shared_target).pow(2).mean(dim=0)
    # spreads below rounding level of the largest one count as none: such a dimension gets
    # b = 0 (no preference) rather than a ratio of rounding errors
    floor = torch.finfo(s.dtype).eps * s.max().clamp(min=torch.finfo(s.dtype).tiny)
    return (torch.log(s + floor) - torch.log(c + floor)).clamp(-limit, limit)


def random_orthogonal(d: int, generator: torch.Generator) -> Tensor:
    """A Haar-random d x d orthogonal matrix (QR of a Gaussian, signs fixed by diag(R))."""
    Q, R = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return (Q * torch.sign(torch.diagonal(R))).float()


# -- the estimators ------------------------------------------------------------------------


class _CentroidDeepClusterer(AutoencoderClusterer):
    """Pretrained autoencoder + k-means loss trained jointly, centroids by mini-batch k-means.

    Subclasses define ``_init_clustering(Z)``, ``_assignment_space(z)`` (where Euclidean
    distances are the assignment metric), ``_assign(z)``, ``_clustering_loss(x, z, labels)``
    and ``_extra_parameters()``; this class runs pretraining, the joint epochs (on data
    normalised by the autoencoder) and the final assignment.
    """

    def _check_params(self) -> None:
        name = type(self).__name__
        self._check_integers("epochs", minimum=0)
        self._check_numbers("clustering_lr")
        if not isinstance(self.final_recluster, bool):
            raise ValueError(f"{name}: final_recluster must be True or False, "
                             f"got {self.final_recluster!r}")

    def _fit(self, X: Tensor) -> None:
        self._check_params()
        self._check_checkpoint_params()
        self._check_global_batch(self.batch_size)
        self._pretrained_autoencoder(X)  # resumed, or skipped when resuming the clustering
        resumed = self._resumed("clustering")
        if resumed:
            self._resume_model(resumed)  # V_ and b_ first: the optimizer holds them
        else:
            self._init_clustering(self._embed(X))
            for tensor in self._fitted_tensors().values():  # rank 0's start on every rank
                pdist.broadcast_(tensor)
        optimizers = {"optimizer": self._optimizer()}
        generators = {"batches": self._generator(offset=4)}
        if resumed:
            start = self._resume_loop(resumed, optimizers, generators)
        else:  # the pretrained network and the start: the costly part
            start = 0
            self._save_checkpoint(X, 0, optimizers, generators)
        X_train = self._training_data(self.autoencoder_.normalize(X))  # losses in its units
        for epoch in self._progress(range(start, self.epochs), "clustering"):
            self._clustering_epoch(X_train, optimizers["optimizer"], generators["batches"], epoch)
            self._check_ranks_in_sync(f"{type(self).__name__} epoch {epoch}")
            if self._checkpoint_due(epoch) and epoch + 1 < self.epochs:
                self._save_checkpoint(X, epoch + 1, optimizers, generators)
        self.autoencoder_.eval()
        with torch.no_grad():
            Z = self._embed(X)
            if self.final_recluster:
                self._recluster(Z)  # the same again when resumed from the final checkpoint
            self.labels_ = self._assign(Z).cpu().numpy()
        if self.checkpoint_path:
            self._checkpoint("clustering", self.epochs, optimizers, generators)

    def _save_checkpoint(self, X: Tensor, epoch: int, optimizers: dict, generators: dict) -> None:
        """With ``checkpoint_path``: the labels of X under the current network and centroids,
        then the checkpoint of clustering epoch ``epoch`` (no randomness is drawn, so
        checkpoints do not change the result)."""
        if self.checkpoint_path:
            with torch.no_grad():
                self.labels_ = self._assign(self._embed(X)).cpu().numpy()
            self._checkpoint("clustering", epoch, optimizers, generators)

    def _load_fitted_tensors(self, tensors) -> None:
        super()._load_fitted_tensors(tensors)
        for param in self._extra_parameters():  # trained on when a fit resumes
            param.requires_grad_(True)

    def _recluster(self, Z: Tensor) -> None:
        """k-means (10 starts) on the final embedding, in the metric of the assignments; the
        centroids become the means of its clusters (so ``predict`` reproduces ``labels_``)."""
        labels = torch.as_tensor(self._kmeans(self._assignment_space(Z), offset=6), device=Z.device)
        self.centroids_, self.centroid_counts_ = self._cluster_means(Z, labels)

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([{"params": self.autoencoder_.parameters()},
                                 {"params": self._extra_parameters()}], lr=self.clustering_lr,
                                fused=True)

    def _clustering_epoch(self, X: Tensor, optimizer, generator: torch.Generator,
                          epoch: int) -> None:
        """One pass over X (already normalised by the autoencoder): per batch, assign, one
        step on the loss, then the centroid update.

        With ``augmentation_invariance`` (the paper's §2.2, as the authors' library does it)
        the loss is the mean of the loss on the batch and on a random affine copy of it whose
        samples keep the original's assignments (so each augmented image is pulled to its
        original's centroid, and reconstructs itself); centroids follow the originals.

        Under torch.distributed every rank takes its rows of each global batch, the loss terms
        are means over the global batch (:func:`pydeepclust.distributed.global_mean`), the
        gradients are averaged, and the centroid update sums the ranks' counts and sums: the
        same step as one process on the whole batch."""
        net, device = self.autoencoder_.train(), self._device()
        for idx in self._minibatches(len(X), self.batch_size, generator):
            rows = pdist.rank_rows(len(idx))
            x = X[idx[rows]].to(device)
            z = self._encode(x)
            labels = self._assign(z.detach())
            loss, parts = self._clustering_loss(x, z, labels)
            if self.augmentation_invariance:  # drawn for the whole batch: the same on every rank
                x_aug = augment_normalized(net, X[idx].to(device), generator)[rows]
                loss_aug, parts_aug = self._clustering_loss(x_aug, self._encode(x_aug), labels)
                loss = (loss + loss_aug) / 2
                parts = {**parts, **{f"{k} (augmented)": v for k, v in parts_aug.items()}}
            loss = pdist.global_mean(loss, len(x), len(idx))
            if pdist.is_distributed():  # the reported terms, in one collective
                means = pdist.global_mean(torch.stack([v.detach() for v in parts.values()]),
                                          len(x), len(idx))
                parts = dict(zip(parts, means))
            self._check_loss(loss, epoch, parts)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            pdist.average_gradients(p for group in optimizer.param_groups for p in group["params"])
            optimizer.step()
            self._after_step()
            self._update_centroids(z.detach(), labels)

    def _encode(self, x: Tensor) -> Tensor:
        """The training network's code of x (in bfloat16 autocast with ``precision="bf16"``;
        the losses stay in x's dtype)."""
        with self._autocast():
            return self.autoencoder_.encode(x).to(x.dtype)

    def _decode(self, z: Tensor) -> Tensor:
        with self._autocast():
            return self.autoencoder_.decode(z).to(z.dtype)

    def _update_centroids(self, z: Tensor, labels: Tensor) -> None:
        minibatch_kmeans_update(self.centroids_, self.centroid_counts_, z, labels)

    def _after_step(self) -> None:
        pass

    def _kmeans(self, features: Tensor, offset: int) -> np.ndarray:
        km = KMeans(self.n_clusters, n_init=10, random_state=self._int_seed(offset))
        return km.fit_predict(features.cpu().double().numpy())

    def _cluster_means(self, Z: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Centroids (in the embedding space) and sizes of the clusters ``labels``."""
        counts = torch.bincount(labels, minlength=self.n_clusters).to(Z.dtype)
        sums = torch.zeros(self.n_clusters, Z.shape[1], device=Z.device).index_add_(0, labels, Z)
        return sums / counts.clamp(min=1)[:, None], counts

    def _predict(self, X: Tensor) -> Tensor:
        return self._assign(self._embed(X))

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"centroids_": self.centroids_, "centroid_counts_": self.centroid_counts_}


class DCN(_CentroidDeepClusterer):
    """DCN: autoencoder + ``lam/2`` times the k-means loss in its embedding (Yang et al., 2017).

    Parameters as :class:`ACeDeC`, plus ``lam`` (the trade-off λ of eq. 4; the ACe/DeC paper
    reports λ = 0.1, 1 and 10).
    """

    def __init__(self, n_clusters: int = 10, lam: float = 1.0, latent_dim: int | None = None,
                 arch: str = "mlp", hidden: Sequence[int] | None = None,
                 autoencoder: Autoencoder | None = None, pretrain_epochs: int = 50,
                 epochs: int = 50, batch_size: int = 256, lr: float = 1e-3,
                 clustering_lr: float = 1e-4, random_state: int | None = 0,
                 device: str | None = None, verbose: bool = False, standardize: bool = False,
                 final_recluster: bool = False, augmentation_invariance: bool = False,
                 checkpoint_path: str | None = None, checkpoint_every: int = 10,
                 distributed: bool | None = None, precision: str = "fp32"):
        super().__init__(n_clusters, latent_dim, arch, hidden, autoencoder, pretrain_epochs,
                         batch_size, lr, random_state, device, verbose, standardize,
                         augmentation_invariance)
        self.lam = lam
        self.epochs = epochs
        self.clustering_lr = clustering_lr
        self.final_recluster = final_recluster
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.distributed = distributed
        self.precision = precision

    def _check_params(self) -> None:
        super()._check_params()
        self._check_numbers("lam")

    def _init_clustering(self, Z: Tensor) -> None:
        labels = torch.as_tensor(self._kmeans(Z, offset=3), device=Z.device)
        self.centroids_, self.centroid_counts_ = self._cluster_means(Z, labels)

    def _extra_parameters(self) -> list[Tensor]:
        return []

    def _assignment_space(self, z: Tensor) -> Tensor:
        return z

    def _assign(self, z: Tensor) -> Tensor:
        return torch.cdist(z, self.centroids_).argmin(dim=1)

    def _clustering_loss(self, x: Tensor, z: Tensor, labels: Tensor):
        compression = (z - self.centroids_[labels]).pow(2).sum(dim=1).mean()
        rec = reconstruction_loss(x, self._decode(z))
        return self.lam / 2 * compression + rec, {"compression": compression, "reconstruction": rec}

    def _transform(self, X: Tensor) -> Tensor:
        return self._embed(X)


class ACeDeC(_CentroidDeepClusterer):
    """ACe/DeC on DCN: a cluster space and a shared space in the autoencoder's embedding.

    Parameters:
        n_clusters: k.
        latent_dim, arch, hidden: the autoencoder. Default None for both: from the data
            (:func:`~pydeepclust.models.autoencoder.default_architecture`): the paper's
            D-500-500-2000-10 network, except for vector data of at most 32 features, which
            gets the single linear layer with d = D the paper uses on SYNTH-25 (there, seed 0,
            one thread: the deep 10-dimensional network NMI 0.962 in 224 s, the linear layer
            0.999 in 8 s, 0.999 on seeds 0-4; ``benchmarks/defaults_check.py``).
        autoencoder: a pretrained :class:`~pydeepclust.models.autoencoder.Autoencoder` to start
            from (a copy is trained), or None to pretrain one for ``pretrain_epochs`` with ``lr``.
        epochs, clustering_lr, batch_size: the joint training (Adam).
        init: "subkmeans" (default; the authors' library): Sub-K-Means on the embedding
            gives V and the clusters, and β is set to its optimum for them; "random" (the
            paper's §2.2 text): random orthogonal V and split, k-means in the cluster space,
            then ``init_steps`` full-batch Adam steps (lr ``init_lr``) on V and b with the
            network fixed, β finally set to its optimum.
        n_init: starts of Sub-K-Means, or random starts (the lowest cluster + shared loss
            is kept).
        standardize: the autoencoder pretrained here sees X z-scored (global mean and std).
        final_recluster: labels from k-means (10 starts) on the final embedding, in the
            assignment metric; the centroids become its cluster means (the authors' library).
        augmentation_invariance: the paper's optional augmentation (§2.2) for images (X of
            shape (n, H, W) or (n, C, H, W)): a randomly rotated, shifted and sheared copy of
            each batch (:func:`~pydeepclust.data.random_affine`) is pulled to the centroids of
            the originals; the autoencoder pretrained here also sees augmented images.
        random_state: seeds everything; the same value gives the same labels.
        checkpoint_path, checkpoint_every: save the training state every that many
            pretraining epochs and at their end, and the model (labels included) after the
            start, every that many clustering epochs, and at the end; ``fit(X, resume=True)``
            continues from that checkpoint (a run killed during clustering does not pretrain
            again).
        distributed: data-parallel training over torch.distributed (see
            :mod:`pydeepclust.distributed`): None (default) when a process group of more than
            one rank is initialised (e.g. under ``torchrun``), True to require one, False to
            train alone on every rank. Every rank passes the same X; ``batch_size`` is the
            global batch (divisible by the number of ranks). Pretraining and the clustering
            epochs take each rank's rows of every batch with the loss of the whole batch
            and averaged gradients; the mini-batch k-means update sums the ranks' counts and
            sums; the start (k-means, Sub-K-Means) is rank 0's. Rank 0 writes the checkpoints.
        precision: "fp32" (default) or "bf16": the networks' forward passes under
            ``torch.autocast`` in bfloat16, the losses in float32 (the fused ops compute in
            float32 whatever they are given). Meant for GPUs; on this repository's 2-core Xeon
            (AMX bfloat16 units) a training step measured 1.2-1.9x faster
            (``benchmarks/precision_speed.py``); CPUs without bfloat16 units may be slower.

    Fitted attributes: ``labels_``, ``V_`` (d x d, orthogonal), ``beta_cs_`` (numpy, in (0, 1)),
    ``cluster_dims_`` (rotated dimensions with beta_cs > 0.55, the authors' hardening,
    highest first), ``shared_dims_``, ``centroids_``, ``shared_center_``, ``autoencoder_``.
    """

    def __init__(self, n_clusters: int = 10, latent_dim: int | None = None, arch: str = "mlp",
                 hidden: Sequence[int] | None = None, autoencoder: Autoencoder | None = None,
                 pretrain_epochs: int = 50, epochs: int = 50, batch_size: int = 256,
                 lr: float = 1e-3, clustering_lr: float = 1e-4, n_init: int = 10,
                 init_steps: int = 1000, init_lr: float = 1e-2, init: str = "subkmeans",
                 random_state: int | None = 0, device: str | None = None,
                 verbose: bool = False, standardize: bool = False, final_recluster: bool = False,
                 augmentation_invariance: bool = False, checkpoint_path: str | None = None,
                 checkpoint_every: int = 10, distributed: bool | None = None,
                 precision: str = "fp32"):
        super().__init__(n_clusters, latent_dim, arch, hidden, autoencoder, pretrain_epochs,
                         batch_size, lr, random_state, device, verbose, standardize,
                         augmentation_invariance)
        self.epochs = epochs
        self.clustering_lr = clustering_lr
        self.final_recluster = final_recluster
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.distributed = distributed
        self.precision = precision
        self.n_init = n_init
        self.init_steps = init_steps
        self.init_lr = init_lr
        self.init = init

    def _check_params(self) -> None:
        super()._check_params()
        self._check_integers("n_init")
        self._check_integers("init_steps", minimum=0)
        self._check_numbers("init_lr")
        if self.init not in ("subkmeans", "random"):
            raise ValueError(f"ACeDeC: init must be 'subkmeans' or 'random', got {self.init!r}")
        if self.latent_dim is not None and self.latent_dim < 2:
            raise ValueError(f"ACeDeC: latent_dim must be >= 2 (a cluster and a shared space), "
                             f"got {self.latent_dim!r}")

    # -- training ---------------------------------------------------------------------------

    def _init_clustering(self, Z: Tensor) -> None:
        if self.init == "subkmeans":
            self._init_from_subkmeans(Z)
        else:
            self._init_random(Z)

    def _init_from_subkmeans(self, Z: Tensor) -> None:
        """The authors' library's start (NrKmeans with one clustered and one noise space):
        Sub-K-Means on the embedding (``n_init`` starts) gives V and the clusters; b is then
        the exact minimiser of the cluster + shared terms for that V and those clusters
        (:func:`optimal_beta_logits`), which is what §2.2's training of V and β with the network
        fixed aims at: Sub-K-Means' V already minimises the clustered + noise space costs over
        rotations, and Adam steps on V and b from it moved the rotation away (measured on
        SYNTH-25 with the code before this start: the two cluster dimensions' β went from 0.73
        to 0.82 after 100 steps at lr 1e-2 and back to 0.60 after 1000, where their optimum
        is 0.94, and the loss stayed above the closed form's). Sub-K-Means' own split of the
        dimensions is not used: the optimal β makes it."""
        from pydeepclust.models.subkmeans import SubKMeans

        device = Z.device
        skm = SubKMeans(self.n_clusters, n_init=self.n_init,
                        random_state=self._int_seed(offset=5)).fit(Z.cpu().numpy())
        V = skm.V_.to(device=device, dtype=Z.dtype).clone()
        retract_orthogonal(V)
        labels = torch.as_tensor(skm.labels_, device=device).long()
        centroids, counts = self._cluster_means(Z, labels)
        shared_center = Z.mean(dim=0)
        b = optimal_beta_logits(Z @ V, centroids[labels] @ V, shared_center @ V)
        self.V_, self.b_ = V.requires_grad_(True), b.requires_grad_(True)
        self.centroids_, self.centroid_counts_ = centroids, counts
        self.shared_center_ = shared_center
        self.shared_count_ = torch.tensor(float(len(Z)), device=device)

    def _train_space_parameters(self, Z, labels, V, b, centroids) -> Tensor:
        """``init_steps`` full-batch Adam steps on V and b (the rest fixed), then b set to its
        optimum for the final V; returns the final loss."""
        # The reconstruction term is left out here: with V orthogonal, V V^T = I, so it
        # depends neither on V (its gradient is normal to the orthogonal group, which the
        # retraction removes) nor on b.
        shared_center = Z.mean(dim=0)
        optimizer = torch.optim.Adam([V, b], lr=self.init_lr)
        for _ in range(self.init_steps):
            loss, parts = self._space_terms(Z, labels, V, b, centroids, shared_center)
            self._check_loss(loss, 0, parts)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            retract_orthogonal(V)
        with torch.no_grad():
            b.copy_(optimal_beta_logits(Z @ V, centroids[labels] @ V, shared_center @ V))
            loss, _ = self._space_terms(Z, labels, V, b, centroids, shared_center)
        return loss

    def _init_random(self, Z: Tensor) -> None:
        """§2.2, ``n_init`` times, keeping the start of the lowest cluster + shared loss: random
        orthogonal V, random split, k-means in the cluster space, then V and b trained with the
        network, centroids and assignments fixed (``init_steps`` Adam steps, b finally set to
        its optimum for the V reached)."""
        d, device = Z.shape[1], Z.device
        generator = self._generator(offset=5)
        best = None
        for start in range(self.n_init):
            V = random_orthogonal(d, generator).to(device).requires_grad_(True)
            in_cluster_space = torch.randperm(d, generator=generator)[: max(1, d // 2)]
            b = -torch.ones(d, dtype=Z.dtype)
            b[in_cluster_space] = 1.0
            b = b.to(device).requires_grad_(True)
            with torch.no_grad():
                cluster_coords = (Z @ V)[:, in_cluster_space.to(device)]
            labels = torch.as_tensor(self._kmeans(cluster_coords, offset=100 + start),
                                     device=device)
            centroids, counts = self._cluster_means(Z, labels)
            loss = self._train_space_parameters(Z, labels, V, b, centroids)
            if best is None or float(loss) < best[0]:
                best = (float(loss), V, b, centroids, counts)
        _, self.V_, self.b_, self.centroids_, self.centroid_counts_ = best
        self.shared_center_ = Z.mean(dim=0)
        self.shared_count_ = torch.tensor(float(len(Z)), device=device)

    @staticmethod
    def _space_terms(z, labels, V, b, centroids, shared_center):
        """The cluster and shared terms of eq. (5), batch means."""
        beta_cs = torch.sigmoid(b)
        rotated = z @ V
        cluster = weighted_sq_distance(rotated, centroids[labels] @ V, beta_cs).mean()
        shared = weighted_sq_distance(rotated, shared_center @ V, 1 - beta_cs).mean()
        return cluster + shared, {"cluster": cluster, "shared": shared}

    def _extra_parameters(self) -> list[Tensor]:
        return [self.V_, self.b_]

    def _assignment_space(self, z: Tensor) -> Tensor:
        """V^T z scaled by beta_cs: Euclidean distances here are the assignment metric."""
        return z @ self.V_.detach() * torch.sigmoid(self.b_.detach())

    def _assign(self, z: Tensor) -> Tensor:
        centers = self._assignment_space(self.centroids_)
        return torch.cdist(self._assignment_space(z), centers).argmin(dim=1)

    def _clustering_loss(self, x: Tensor, z: Tensor, labels: Tensor):
        return acedec_loss(x, z, self._decode, self.V_, self.b_, self.centroids_,
                           labels, self.shared_center_)

    def _after_step(self) -> None:
        retract_orthogonal(self.V_)

    def _update_centroids(self, z: Tensor, labels: Tensor) -> None:
        super()._update_centroids(z, labels)
        # The shared space has one cluster: its centre is the running mean of all points.
        minibatch_kmeans_update(self.shared_center_[None], self.shared_count_.view(1), z,
                                torch.zeros_like(labels))

    # -- fitted state -----------------------------------------------------------------------

    @property
    def beta_cs_(self) -> np.ndarray:
        return torch.sigmoid(self.b_.detach()).cpu().numpy()

    @property
    def beta_ss_(self) -> np.ndarray:
        return 1 - self.beta_cs_

    @property
    def cluster_dims_(self) -> np.ndarray:
        """The rotated dimensions of the cluster space, those with beta_cs > 0.5 +
        ``SHARED_SPACE_VARIATION``, highest beta_cs first (at least one, and at least one is
        left to the shared space)."""
        order = np.argsort(-self.beta_cs_, kind="stable")
        n_cluster = int(np.clip((self.beta_cs_ > 0.5 + SHARED_SPACE_VARIATION).sum(),
                                1, len(order) - 1))
        return order[:n_cluster]

    @property
    def shared_dims_(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.beta_cs_)), self.cluster_dims_)

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {**super()._fitted_tensors(), "V_": self.V_, "b_": self.b_,
                "shared_center_": self.shared_center_, "shared_count_": self.shared_count_}

    # -- embeddings and interpretability ----------------------------------------------------

    def _transform(self, X: Tensor) -> Tensor:
        """V^T z: the rotated embedding; columns ``cluster_dims_`` and ``shared_dims_``."""
        return self._embed(X) @ self.V_.detach()

    def cluster_space(self, X) -> np.ndarray:
        """Coordinates in the cluster space, columns in ``cluster_dims_`` order."""
        return self.transform(X)[:, self.cluster_dims_]

    def shared_space(self, X) -> np.ndarray:
        """Coordinates in the shared space, columns in ``shared_dims_`` order."""
        return self.transform(X)[:, self.shared_dims_]

    @torch.no_grad()
    def decode_rotated(self, rotated) -> np.ndarray:
        """Decode points given in the rotated space (rows V^T z): ``dec(V y)`` in the data's
        units (mapped back from the autoencoder's normalised ones)."""
        y = torch.as_tensor(np.asarray(rotated), dtype=torch.float32, device=self._device())
        net = self.autoencoder_
        return self._embed_in_batches(lambda v: net.denormalize(net.decode(v)),
                                      y @ self.V_.detach().T).cpu().numpy()

    def reconstruct(self, X, space: str = "both") -> np.ndarray:
        """Reconstructions of X from one space only (Fig. 1b): the other space's coordinates
        are set to those of the data mean, so only the chosen space's information remains."""
        if space not in ("both", "cluster", "shared"):
            raise ValueError(f"ACeDeC.reconstruct: space must be 'both', 'cluster' or 'shared', "
                             f"got {space!r}")
        rotated = self.transform(X)
        mean = (self.shared_center_ @ self.V_.detach()).cpu().numpy()
        if space != "both":
            replaced = self.shared_dims_ if space == "cluster" else self.cluster_dims_
            rotated[:, replaced] = mean[replaced]
        return self.decode_rotated(rotated)

    def shared_pc1(self, X) -> tuple[np.ndarray, np.ndarray]:
        """First principal component of the shared space: (direction in the rotated space,
        the scores of X along it)."""
        rotated = self.transform(X)
        shared = rotated[:, self.shared_dims_].astype(np.float64)
        shared -= shared.mean(axis=0)
        _, _, Wt = np.linalg.svd(shared, full_matrices=False)
        direction = np.zeros(rotated.shape[1])
        direction[self.shared_dims_] = Wt[0]
        return direction, shared @ Wt[0]

    def traversal(self, X, n_steps: int = 9) -> np.ndarray:
        """Fig. 3: per cluster (row) its centroid's cluster-space coordinates fixed, the
        shared space moved along its first principal component over the 5th..95th percentile
        of X's scores (columns). Returns decoded samples of shape (k, n_steps, ...)."""
        direction, scores = self.shared_pc1(X)
        steps = np.linspace(*np.percentile(scores, [5, 95]), n_steps)
        mean = (self.shared_center_ @ self.V_.detach()).cpu().numpy()
        centers = (self.centroids_ @ self.V_.detach()).cpu().numpy()
        grid = np.repeat(mean[None, None], len(centers), axis=0).repeat(n_steps, axis=1)
        grid[:, :, self.cluster_dims_] = centers[:, None, self.cluster_dims_]
        grid += steps[None, :, None] * direction[None, None]
        decoded = self.decode_rotated(grid.reshape(-1, grid.shape[-1]))
        return decoded.reshape(len(centers), n_steps, *decoded.shape[1:])


# -- command line ---------------------------------------------------------------------------


def add_cli_arguments(parser) -> None:
    add_autoencoder_arguments(parser)
    parser.add_argument("--epochs", type=int, default=50, help="joint clustering epochs")
    parser.add_argument("--clustering-lr", type=float, default=1e-4)
    parser.add_argument("--final-recluster", action="store_true",
                        help="labels from k-means on the final embedding (the authors' library)")
    if cli_model_name(parser) == "dcn":
        parser.add_argument("--lam", type=float, default=1.0, help="trade-off lambda of eq. (4)")


def from_cli(args, dataset):
    common = dict(n_clusters=args.k, latent_dim=args.latent_dim,
                  arch=args.arch, hidden=parse_hidden(args.hidden),
                  pretrain_epochs=args.pretrain_epochs, epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, clustering_lr=args.clustering_lr,
                  random_state=args.seed, device=args.device, verbose=not args.quiet,
                  standardize=args.standardize, final_recluster=args.final_recluster,
                  augmentation_invariance=args.augment)
    if args.model == "dcn":
        return DCN(lam=args.lam, **common)
    return ACeDeC(**common)


def cli_outputs(model, X, dataset, out_dir) -> dict[str, str]:
    from pydeepclust.viz import plot_scores, save_image_grid

    files = {}
    if not isinstance(model, ACeDeC):
        return files
    direction, pc1 = model.shared_pc1(X)
    top = model.transform(X)[:, model.cluster_dims_[0]]
    files["cluster_dim_vs_shared_pc1"] = plot_scores(
        np.stack([pc1, top], axis=1), model.labels_,
        os.path.join(out_dir, "cluster_dim_vs_shared_pc1.png"),
        title=f"ACe/DeC: top cluster dim (beta_cs={model.beta_cs_[model.cluster_dims_[0]]:.2f})",
        xlabel="shared space PC1", ylabel=f"cluster dim {model.cluster_dims_[0]}")
    if dataset.image_shape is not None:
        sample = X[:10]
        files["reconstructions"] = save_image_grid(
            np.stack([sample, *(model.reconstruct(sample, s) for s in ("both", "cluster",
                                                                          "shared"))]),
            os.path.join(out_dir, "reconstructions.png"),
            row_labels=["input", "both", "cluster only", "shared only"],
            title="ACe/DeC reconstructions by space")
        files["shared_pc1_traversal"] = save_image_grid(
            model.traversal(X), os.path.join(out_dir, "shared_pc1_traversal.png"),
            row_labels=[f"cluster {c}" for c in range(model.n_clusters)],
            title="shared PC1 traversal, cluster coordinates fixed")
    return files
