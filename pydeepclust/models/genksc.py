"""Generative kernel spectral clustering (GenKSC; Winant, Achten & Suykens).

Per mini-batch, with features Φ = φ(x) (n × d_f) and U (d_f × s, UᵀU = I):

* linear-kernel degrees ``d = Φ(Φᵀ1)`` in O(n d_f) (no n × n kernel matrix),
* weighted centring ``Φc = Φ − Σ d_i⁻¹φ_i / Σ d_i⁻¹`` and scores ``E = Φc U``,
* loss (eq. 3) ``η_ksc [−½ Σ d_i⁻¹‖e_i‖² + ½ Σ ‖φc_i‖²] / n
  + η_rec Σ ‖x_i − ψ(UUᵀφc_i)‖² / n + η_cl Σ min_c d_cos(e_i[:m], s_c) / n``
  with the cluster term off for ``warmup_epochs`` epochs.

U is trained with :class:`pydeepclust.optim.CayleyAdam` and stays orthonormal (the
authors' script silently trains it with AdamW). Labels are the nearest simplex
code by cosine of the first ``code_width(k)`` scores, with the centring and
degrees of the whole training set.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np
import torch
from torch import Tensor, nn

import pydeepclust.ops as ops
from pydeepclust import distributed as pdist
from pydeepclust.models.base import DeepClusterer
from pydeepclust.nn import autoencoder
from pydeepclust.optim import CayleyAdam


# The defaults of warmup_epochs (as a fraction of epochs), batch_size, lr and lr_stiefel by
# architecture (see GenKSC): the authors' for the conv net on 28x28 images, the measured small
# set setting for the mlp (README, GenKSC results: digits 0/1/2).
CONV_DEFAULTS = dict(warmup_fraction=1 / 15, batch_size=256, lr=1e-4, lr_stiefel=1e-4)
MLP_DEFAULTS = dict(warmup_fraction=1 / 3, batch_size=64, lr=1e-3, lr_stiefel=1e-3)


class GenKSC(DeepClusterer):
    """Generative kernel spectral clustering, a scikit-learn style estimator.

    Args:
        n_clusters: k >= 2.
        n_components: s, the score dimension (U is d_f × s); default max(10, code_width(k)).
            Must be at least code_width(k) (k − 1, or 2 for k = 2) and below feature_dim.
        feature_dim: d_f, the encoder's output width; default 1024 (conv) or 256 (mlp).
        arch: ``"auto"`` (conv for 28×28 images, mlp otherwise), ``"conv"`` or ``"mlp"``.
        hidden: hidden widths of the mlp encoder (mirrored in the decoder).
        eta_ksc, eta_rec, eta_cl: weights of the KSC, reconstruction and cluster terms
            (paper: η_rec = η_cl = 1 on MNIST012; 0.001 and 0.008 on Fashion-MNIST).
        warmup_epochs: epochs without the cluster term (paper: 10 on MNIST012, 32 on FMNIST).
        epochs, batch_size, lr, lr_stiefel, weight_decay: the training length, the batch, the
            learning rates (AdamW on the networks, CayleyAdam on U) and AdamW's weight decay.
            ``warmup_epochs``, ``batch_size``, ``lr`` and ``lr_stiefel`` default to None: set
            by the architecture the data gets (``MLP_DEFAULTS`` / ``CONV_DEFAULTS``). The conv
            net (28x28 images, MNIST-size sets) gets the authors' settings: batch 256, lr 1e-4
            for both, warm-up epochs / 15 (10 of 150, the paper's MNIST012). The mlp (vectors
            and small images: hundreds to thousands of points) gets batch 64, lr 1e-3 for
            both and warm-up epochs / 3 (50 of 150): with the authors' settings a 537-point set
            gets 2 steps an epoch, 300 in all at lr 1e-4, and stops short (digits 0/1/2, seeds
            0-2: NMI 0.68 / 0.65 / 0.64 in 3 s, where these give 0.95 / 0.79 / 0.77, 0.83 ±
            0.06 over seeds 0-4, in 8 s on one thread; ``benchmarks/defaults_check.py``; the
            same setting over ten seeds in the README: 0.76 ± 0.08). The fitted values are
            ``warmup_epochs_``, ``batch_size_``, ``lr_``, ``lr_stiefel_``.
        align_codes: at the end of the warm-up, rotate U within its span (U <- U R, R
            orthogonal, so UᵀU = I still holds) so that the k-means centres of the training
            scores point along the simplex codes (orthogonal Procrustes). Without it the
            cluster loss starts from an arbitrary rotation of the scores and can lock two
            clusters onto one code; ``False`` gives the paper's procedure exactly.
        degree_floor: degrees are clamped below at ``degree_floor × mean |d|`` (zero
            gradient where clamped) — a linear kernel on signed features can give degrees
            ≤ 0, whose inverse would blow up.
        random_state, device, verbose: the seed, the device (None: CUDA when available),
            a tqdm progress bar.
        checkpoint_path, checkpoint_every: save the model every that many epochs and at
            the end; ``fit(X, resume=True)`` continues from that checkpoint.
        distributed: data-parallel training over torch.distributed (see
            :mod:`pydeepclust.distributed`): None (default) when a process group of more than
            one rank is initialised (e.g. under ``torchrun``), True to require one, False to
            train alone on every rank. Every rank passes the same X; ``batch_size`` is the
            global batch (divisible by the number of ranks) and every step's loss is that of
            the global batch (see :meth:`losses`); U's Cayley step follows the averaged
            gradient, the code alignment is rank 0's. The conv decoder's batch norm keeps
            per-rank statistics (torch's SyncBatchNorm runs on CUDA only). Rank 0 writes the
            checkpoints.
        precision: "fp32" (default) or "bf16": the networks' forward passes under
            ``torch.autocast`` in bfloat16, the losses in float32 (the fused ops compute in
            float32 whatever they are given). Meant for GPUs; on this repository's 2-core Xeon
            (AMX bfloat16 units) a training step measured 1.2-1.9x faster
            (``benchmarks/precision_speed.py``); CPUs without bfloat16 units may be slower.

    Attributes after ``fit``: ``labels_``, ``codes_`` (k × m simplex codes), ``U_``,
    ``center_`` (weighted centre of the training features),
    ``history_`` (mean loss terms per epoch).
    """

    _min_samples = 2  # a graph (kernel) between samples

    def __init__(self, n_clusters: int = 3, n_components: int | None = None,
                 feature_dim: int | None = None, arch: str = "auto", hidden=(256, 256),
                 eta_ksc: float = 1.0, eta_rec: float = 1.0, eta_cl: float = 1.0,
                 warmup_epochs: int | None = None, epochs: int = 150,
                 batch_size: int | None = None, lr: float | None = None,
                 lr_stiefel: float | None = None, weight_decay: float = 1e-2,
                 align_codes: bool = True, degree_floor: float = 1e-3, random_state: int | None = None,
                 device: str | None = None, verbose: bool = True,
                 checkpoint_path: str | None = None, checkpoint_every: int = 10,
                 distributed: bool | None = None, precision: str = "fp32"):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.feature_dim = feature_dim
        self.arch = arch
        self.hidden = hidden
        self.eta_ksc = eta_ksc
        self.eta_rec = eta_rec
        self.eta_cl = eta_cl
        self.warmup_epochs = warmup_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_stiefel = lr_stiefel
        self.weight_decay = weight_decay
        self.align_codes = align_codes
        self.degree_floor = degree_floor
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.distributed = distributed
        self.precision = precision

    # -- configuration ---------------------------------------------------------

    def _resolved(self, sample_shape) -> tuple[int, int, str]:
        """(s, d_f, arch) after defaults, with clear errors for impossible settings."""
        self._check_integers("n_clusters", minimum=2)
        k = int(self.n_clusters)
        m = ops.code_width(k)
        is_28 = tuple(sample_shape[-2:]) == (28, 28)
        arch = self.arch if self.arch != "auto" else ("conv" if is_28 else "mlp")
        if self.feature_dim is not None:
            self._check_integers("feature_dim")
        d_f = self.feature_dim if self.feature_dim is not None else (
            1024 if arch == "conv" else 256)
        s = self.n_components if self.n_components is not None else max(10, m)
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < m:
            raise ValueError(
                f"GenKSC: n_components (s) must be an integer >= code_width(k) = {m} for "
                f"n_clusters={k}, got {s!r}"
            )
        if s >= d_f:
            raise ValueError(f"GenKSC: n_components={s} must be below feature_dim={d_f}")
        self._check_integers("epochs")
        if self.warmup_epochs is not None:
            self._check_integers("warmup_epochs", minimum=0)
        if self.batch_size is not None:
            self._check_integers("batch_size", minimum=2)  # degrees need several samples
        self._check_numbers(*(name for name in ("lr", "lr_stiefel")
                              if getattr(self, name) is not None))
        self._check_numbers("eta_ksc", "eta_rec", "eta_cl", "weight_decay", strict=False)
        return s, d_f, arch

    def _schedule(self, arch: str) -> dict:
        """warmup_epochs, batch_size, lr and lr_stiefel after the defaults for ``arch``."""
        defaults = CONV_DEFAULTS if arch == "conv" else MLP_DEFAULTS
        out = {name: getattr(self, name) if getattr(self, name) is not None else value
               for name, value in defaults.items() if name != "warmup_fraction"}
        out["warmup_epochs"] = (self.warmup_epochs if self.warmup_epochs is not None
                                else round(self.epochs * defaults["warmup_fraction"]))
        return out

    def _build(self, sample_shape) -> None:
        s, d_f, arch = self._resolved(sample_shape)
        for name, value in self._schedule(arch).items():
            setattr(self, name + "_", value)
        device = self._device()
        with self._seeded():
            self.encoder_, self.decoder_ = autoencoder(sample_shape, d_f, arch=arch,
                                                       hidden=self.hidden)
            q, _ = torch.linalg.qr(torch.randn(d_f, s, dtype=torch.float64))
        self.encoder_.to(device)
        self.decoder_.to(device)
        self.U_ = nn.Parameter(q.to(device=device, dtype=torch.float32))
        self.codes_ = ops.simplex_codes(self.n_clusters, device=device)

    def _modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder_, "decoder": self.decoder_}

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {"U_": self.U_.detach(), "center_": self.center_}

    def _load_fitted_tensors(self, tensors):
        super()._load_fitted_tensors(tensors)
        self.U_ = nn.Parameter(self.U_)

    # -- the loss ------------------------------------------------------------------

    def _degrees(self, phi: Tensor, global_rows: int | None = None) -> tuple[Tensor, float]:
        """Linear-kernel degrees ``φ_i · Σ_j φ_j`` (O(n d_f)) and the clamp floor for them.
        ``global_rows``: under torch.distributed phi holds this rank's rows of a global batch
        of that many rows, and Σ_j φ_j and the mean ``|d|`` of the floor run over all of it."""
        # non-finite features surface below, in GenKSC's own words
        if global_rows is not None and pdist.is_distributed():
            degrees = phi @ pdist.all_reduce_sum(phi.sum(0))
            scale = float(pdist.all_reduce_sum(degrees.detach().abs().sum())) / global_rows
        else:
            degrees = ops.kernel_degrees(phi, kernel="linear", check_finite=False)
            scale = float(degrees.detach().abs().mean())
        if not math.isfinite(scale):
            raise FloatingPointError(
                "GenKSC: the encoder's features became non-finite (mean |degree| = "
                f"{scale}); lower the learning rate or rescale the data (e.g. to [0, 1])"
            )
        return degrees, self.degree_floor * max(scale, 1e-12)

    def losses(self, x: Tensor, with_cluster: bool = True) -> dict[str, Tensor]:
        """The loss terms of eq. (3) on one batch (means over the batch). Under
        torch.distributed x is this rank's share of the global batch and the terms are the
        global batch's, on every rank (DESIGN §6): the degrees against the summed features,
        the floor from the summed ``|d|``, the weighted centre from the summed Σwφ and Σw, and the
        means over all ranks' rows."""
        n = x.shape[0]
        total = pdist.global_count(n, x.device)
        with self._autocast():
            phi = self.encoder_(x).to(x.dtype)  # the loss terms in the data's dtype
        degrees, floor = self._degrees(phi, global_rows=total)
        w = ops.inverse_degrees(degrees, nonpositive="clamp", eps=floor)
        if pdist.is_distributed():
            center = pdist.all_reduce_sum((w.unsqueeze(1) * phi).sum(0)) / \
                pdist.all_reduce_sum(w.sum())
        else:
            center = ops.weighted_center(phi, degrees, nonpositive="clamp", eps=floor,
                                         check_finite=False)
        phi_c = phi - center
        scores = phi_c @ self.U_
        ksc = (-0.5 * (w * scores.pow(2).sum(1)).sum() + 0.5 * phi_c.pow(2).sum()) / n
        # conv decoders return (n, C, H, W) also for (n, H, W) samples: compare like with like
        with self._autocast():
            recon = self.decoder_(scores @ self.U_.T).to(x.dtype).reshape(x.shape)
        rec = (x - recon).pow(2).reshape(n, -1).sum(1).mean()
        parts = {"ksc": ksc, "rec": rec}
        if with_cluster:
            m = self.codes_.shape[1]
            dist, _ = ops.cosine_simplex_assign(scores[:, :m], self.codes_)
            parts["cl"] = dist.mean()
        return {k: pdist.global_mean(v, n, total) for k, v in parts.items()}

    def _total(self, parts: dict[str, Tensor]) -> Tensor:
        total = self.eta_ksc * parts["ksc"] + self.eta_rec * parts["rec"]
        if "cl" in parts:
            total = total + self.eta_cl * parts["cl"]
        return total

    # -- training --------------------------------------------------------------------

    def _fit(self, X: Tensor) -> None:
        self._check_checkpoint_params()
        self._build(tuple(X.shape[1:]))
        self._check_global_batch(self.batch_size_)
        device = self._device()
        self.history_ = []
        resumed = self._resumed()
        if resumed:
            self._resume_model(resumed)  # U_ first: the optimizer holds it
        nets = list(self.encoder_.parameters()) + list(self.decoder_.parameters())
        optimizers = {"networks": torch.optim.AdamW(nets, lr=self.lr_,
                                                    weight_decay=self.weight_decay),
                      "U": CayleyAdam([self.U_], lr=self.lr_stiefel_)}
        generators = {"batches": self._generator(offset=1)}
        start = self._resume_loop(resumed, optimizers, generators) if resumed else 0
        X_train = self._training_data(X)
        epochs = self._progress(range(start, self.epochs), desc="GenKSC",
                                total=self.epochs - start)
        for epoch in epochs:
            self.encoder_.train()
            self.decoder_.train()
            with_cluster = epoch >= self.warmup_epochs_
            sums: dict[str, float] = {}
            batches = 0
            for idx in self._minibatches(len(X), self.batch_size_, generators["batches"],
                                         drop_last=True):
                idx = idx[pdist.rank_rows(len(idx))]  # this rank's share of the global batch
                parts = self.losses(X_train[idx].to(device), with_cluster)
                loss = self._total(parts)
                self._check_loss(loss, epoch, parts)
                for opt in optimizers.values():
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                pdist.average_gradients([*nets, self.U_])
                for opt in optimizers.values():
                    opt.step()
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                batches += 1
            means = {k: v / batches for k, v in sums.items()}
            self.history_.append(means)
            if hasattr(epochs, "set_postfix"):
                epochs.set_postfix({k: f"{v:.3g}" for k, v in means.items()})
            self._finalize(X_train)
            if self.align_codes and epoch + 1 == self.warmup_epochs_:
                self._align_codes(X_train)
            self._check_ranks_in_sync(f"GenKSC epoch {epoch}")
            if self._checkpoint_due(epoch) or (self.checkpoint_path and epoch + 1 == self.epochs):
                self._checkpoint("training", epoch + 1, optimizers, generators)

    def _finalize(self, X: Tensor) -> None:
        """Centre and degrees of the whole training set; labels of the training data."""
        self.encoder_.eval()
        self.decoder_.eval()
        with torch.no_grad():
            phi = self._embed_in_batches(self.encoder_, X)
            degrees, floor = self._degrees(phi)
            self.center_ = ops.weighted_center(phi, degrees, nonpositive="clamp", eps=floor,
                                               check_finite=False)
            self.labels_ = self._assign(phi).cpu().numpy()

    def _align_codes(self, X: Tensor) -> None:
        """Rotate U so that k-means centres of the scores point along the simplex codes."""
        from scipy.optimize import linear_sum_assignment
        from sklearn.cluster import KMeans

        with torch.no_grad():
            scores = self._scores_from_features(self._features(X)).double().cpu()
            km = KMeans(self.n_clusters, n_init=10, random_state=self._int_seed(2))
            centers = torch.as_tensor(km.fit(scores.numpy()).cluster_centers_)
            centers = centers / centers.norm(dim=1, keepdim=True).clamp_min(1e-12)
            codes = torch.zeros_like(centers)
            codes[:, : self.codes_.shape[1]] = self.codes_.double().cpu()
            # match centres to codes, then the orthogonal R minimising ||centers R - codes||
            _, order = linear_sum_assignment(-(centers @ codes.T).numpy())
            u, _, vh = torch.linalg.svd(centers.T @ codes[order])
            rotation = (u @ vh).to(self.U_)
            self.U_.copy_(self.U_ @ rotation)
            pdist.broadcast_(self.U_)  # rank 0's rotation on every rank

    # -- inference -------------------------------------------------------------------

    def _scores_from_features(self, phi: Tensor) -> Tensor:
        return (phi - self.center_) @ self.U_

    def _assign(self, phi: Tensor) -> Tensor:
        scores = self._scores_from_features(phi)
        _, label = ops.cosine_simplex_assign(scores[:, : self.codes_.shape[1]], self.codes_)
        return label

    def _features(self, X: Tensor) -> Tensor:
        self.encoder_.eval()
        return self._embed_in_batches(self.encoder_, X)

    def _predict(self, X: Tensor) -> Tensor:
        return self._assign(self._features(X))

    def _transform(self, X: Tensor) -> Tensor:
        """Score variables e = Uᵀ(φ(x) − c), shape (n, s)."""
        return self._scores_from_features(self._features(X))

    def soft_memberships(self, X) -> "torch.Tensor":
        """Soft KSC memberships (n, k) of samples, from their first code_width(k) scores."""
        scores = torch.as_tensor(self.transform(X))
        return ops.soft_memberships(scores[:, : self.codes_.shape[1]], self.codes_.cpu())

    def average_membership_strength(self, X) -> float:
        """AMS of the clustering of ``X`` (model selection, Langone et al. 2013)."""
        return float(ops.average_membership_strength(self.soft_memberships(X)))

    # -- generation and interpretability ---------------------------------------------------

    def generate(self, scores) -> Tensor:
        """Decode score vectors ``e*`` (n, s) (or their first columns) into samples ``ψ(U e*)``."""
        scores = torch.as_tensor(scores, dtype=torch.float32, device=self._device())
        s = self.U_.shape[1]
        if scores.dim() != 2 or scores.shape[1] > s or scores.shape[1] < 1:
            raise ValueError(f"generate: scores must have shape (n, <= {s}), got {tuple(scores.shape)}")
        if scores.shape[1] < s:
            scores = torch.nn.functional.pad(scores, (0, s - scores.shape[1]))
        self.decoder_.eval()
        with torch.no_grad():
            return self.decoder_(scores @ self.U_.T).reshape(-1, *self.sample_shape_).cpu()

    def traversal_scores(self, X, steps: int = 8, extrapolate: float = 1.5) -> Tensor:
        """Score vectors along each cluster direction, shape (k, steps, s).

        Row c goes from the origin along code s_c to ``extrapolate`` times the farthest
        projection of the cluster's training points on s_c (beyond the cluster's
        prototype: the paper's way to exaggerate what defines the cluster).
        """
        if steps < 2:
            raise ValueError(f"traversal_scores: steps must be >= 2, got {steps}")
        scores = torch.as_tensor(self.transform(X))
        labels = torch.as_tensor(self.predict(X))
        codes = self.codes_.cpu()
        k, m = codes.shape
        out = torch.zeros(k, steps, scores.shape[1])
        for c in range(k):
            proj = scores[labels == c, :m] @ codes[c]
            reach = float(proj.max()) if proj.numel() else float((scores[:, :m] @ codes[c]).abs().max())
            t = torch.linspace(0, extrapolate * reach, steps)
            out[c, :, :m] = t.unsqueeze(1) * codes[c]
        return out

    def component_traversal_scores(self, X, components=None, steps: int = 8,
                                   spread: float = 3.0, cluster: int | None = None) -> Tensor:
        """Scores along higher components j >= code_width(k): shape (len(components), steps, s),
        from −spread·std to +spread·std around the mean score of X, or, with ``cluster``,
        around the mean score of that cluster's points (std within the cluster): the global
        mean lies between the clusters and decodes to a blur, a cluster's mean to one of its
        typical samples, so that the component's effect shows on a real-looking item."""
        scores = torch.as_tensor(self.transform(X))
        m, s = self.codes_.shape[1], scores.shape[1]
        components = list(range(m, s)) if components is None else list(components)
        if any(not 0 <= j < s for j in components):
            raise ValueError(f"component_traversal_scores: components must lie in [0, {s})")
        if cluster is not None:
            if not 0 <= cluster < self.n_clusters:
                raise ValueError(f"component_traversal_scores: cluster must lie in "
                                 f"[0, {self.n_clusters}), got {cluster!r}")
            members = torch.as_tensor(self.predict(X)) == cluster
            if members.sum() < 2:
                raise ValueError(f"component_traversal_scores: cluster {cluster} has fewer "
                                 "than two points in X")
            scores = scores[members]
        mean, std = scores.mean(0), scores.std(0)
        out = mean.repeat(len(components), steps, 1)
        t = torch.linspace(-spread, spread, steps)
        for row, j in enumerate(components):
            out[row, :, j] = mean[j] + t * std[j]
        return out


# -- command line hooks (python -m pydeepclust fit genksc ...) ----------------------------

# Settings for 28×28 image sets follow the paper (Fashion-MNIST: s = 40, η_rec = 0.001,
# η_cl = 0.008, 32 warm-up epochs) and the authors' defaults (batch 256, d_f 1024, lr 1e-4);
# the small sets (digits, synthetic) get the estimator's defaults (its mlp ones, written out
# as "small" for benchmarks/genksc_choices.py).
CLI_PRESETS = {
    "image28": dict(feature_dim=1024, eta_rec=0.001, eta_cl=0.008, warmup_epochs=32,
                    epochs=150, batch_size=256, lr=1e-4, lr_stiefel=1e-4),
    "small": dict(feature_dim=256, eta_rec=1.0, eta_cl=1.0, warmup_epochs=50, epochs=150,
                  batch_size=64, lr=1e-3, lr_stiefel=1e-3),
}


def add_cli_arguments(p) -> None:
    p.add_argument("--s", type=int, default=None,
                   help="score dimension n_components (default: 40 for k=10 images, else 10)")
    p.add_argument("--feature-dim", type=int, default=None, help="encoder output width d_f")
    p.add_argument("--arch", default="auto", choices=["auto", "conv", "mlp"])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None, help="epochs without the cluster loss")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (networks)")
    p.add_argument("--lr-stiefel", type=float, default=None, help="CayleyAdam learning rate (U)")
    p.add_argument("--eta-ksc", type=float, default=1.0, help="weight of the KSC term")
    p.add_argument("--eta-rec", type=float, default=None, help="weight of the reconstruction")
    p.add_argument("--eta-cl", type=float, default=None, help="weight of the cluster loss")


def from_cli(args, dataset) -> GenKSC:
    k = args.k
    preset = dict(CLI_PRESETS["image28"]) if dataset.image_shape == (28, 28) else {}
    overrides = {"feature_dim": args.feature_dim, "epochs": args.epochs,
                 "warmup_epochs": args.warmup, "batch_size": args.batch_size, "lr": args.lr,
                 "lr_stiefel": args.lr_stiefel, "eta_rec": args.eta_rec, "eta_cl": args.eta_cl}
    preset.update({key: v for key, v in overrides.items() if v is not None})
    s = args.s if args.s is not None else (
        40 if dataset.image_shape == (28, 28) and k == 10 else max(10, ops.code_width(k)))
    return GenKSC(n_clusters=k, n_components=s, arch=args.arch, eta_ksc=args.eta_ksc,
                  random_state=args.seed, device=args.device, verbose=not args.quiet, **preset)


def cli_outputs(model: GenKSC, X, dataset, out_dir: str) -> dict[str, str]:
    """The score plot, and for image data the cluster and higher-component traversals, as
    PNG files."""
    from pydeepclust import viz  # matplotlib: imported only when drawing

    names = dataset.class_names
    files = {}
    if dataset.image_shape is not None:
        files.update(_traversal_pictures(model, X, out_dir))
    scores = model.transform(X)
    files["scores"] = viz.plot_scores(
        scores, model.labels_, os.path.join(out_dir, "scores.png"), codes=model.codes_.cpu(),
        title=f"GenKSC scores on {dataset.name}" + (f" ({len(names)} classes)" if names else ""))
    return files


def _traversal_pictures(model: GenKSC, X, out_dir: str) -> dict[str, str]:
    from pydeepclust import viz

    k = model.n_clusters
    files = {}
    trav = model.traversal_scores(X, steps=9, extrapolate=1.5)
    images = model.generate(trav.reshape(-1, trav.shape[-1])).reshape(k, 9, *model.sample_shape_)
    files["traversals"] = viz.save_image_grid(
        images.numpy(), os.path.join(out_dir, "traversals.png"),
        row_labels=[f"s{c}" for c in range(k)],
        title="along each cluster code, to 1.5x the farthest training point")
    largest = int(np.bincount(model.labels_, minlength=k).argmax())
    comps = model.component_traversal_scores(X, steps=9, cluster=largest)[:8]
    if len(comps):
        imgs = model.generate(comps.reshape(-1, comps.shape[-1])).reshape(
            len(comps), 9, *model.sample_shape_)
        m = model.codes_.shape[1]
        files["components"] = viz.save_image_grid(
            imgs.numpy(), os.path.join(out_dir, "components.png"),
            row_labels=[f"e{m + j + 1}" for j in range(len(comps))],
            title=f"higher score components around cluster {largest}'s mean, ± 3 std")
    return files
