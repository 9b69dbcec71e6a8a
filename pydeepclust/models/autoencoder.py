"""Autoencoder pretraining shared by the models that start from one (DCN, ACe/DeC, AE + k-means).

Pretrain once with :func:`pretrain_autoencoder` and hand the result to several clusterers
through their ``autoencoder=`` parameter, as the experiments of the ACe/DeC paper do (every
method starts from the same ten pretrained networks). A clusterer trains its own deep copy,
so the pretrained network stays untouched and can be handed on.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pydeepclust import distributed as pdist
from pydeepclust.data.augment import random_affine
from pydeepclust.models.base import DeepClusterer, to_device_if_fits
from pydeepclust.nn import ConvDecoder28, check_widths
from pydeepclust.nn import autoencoder as build_encoder_decoder


class Autoencoder(nn.Module):
    """An encoder/decoder pair for samples of ``sample_shape``, with the data's shape recorded.

    ``arch``: "mlp" (the D-500-500-2000-d network of DEC/DCN/ACe/DeC; ``hidden=()`` gives the
    single linear layer of the paper's SYNTH-25 runs), "conv" (28x28 images) or "auto".

    The network works on ``normalize(x) = (x - input_shift) / input_scale`` (buffers, saved with
    the weights; 0 and 1 unless :meth:`standardize_to` set them): the clusterers normalise data
    where it enters and :meth:`denormalize` decoder outputs where they leave, so every loss is
    measured in the normalised units, exactly as if the data had been z-scored beforehand.
    """

    def __init__(self, sample_shape: Sequence[int], latent_dim: int = 10, arch: str = "mlp",
                 hidden: Sequence[int] = (500, 500, 2000)):
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, numbers.Integral) or \
                latent_dim < 1:
            raise ValueError(f"Autoencoder: latent_dim must be a positive integer, got {latent_dim!r}")
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.latent_dim = int(latent_dim)
        hidden = check_widths(hidden, "Autoencoder: hidden")
        self.encoder, self.decoder = build_encoder_decoder(self.sample_shape, self.latent_dim, arch,
                                                           hidden)
        self.register_buffer("input_shift", torch.zeros(()))
        self.register_buffer("input_scale", torch.ones(()))
        linears = [m for m in self.modules() if isinstance(m, nn.Linear)]
        if len(linears) == 2 and not hidden:
            # The single linear layer (SYNTH-25): start from an orthogonal encoder and its
            # transpose as decoder, zero biases. A linear AE's reconstruction fixes the
            # encoder only up to an invertible map, and the default init leaves one with a
            # condition number ~2 that scrambles k-means geometry (k-means / Sub-K-Means NMI
            # 1.00 on raw SYNTH-25, 0.05 on such an embedding); the orthogonal start is already
            # a perfect reconstruction (d = D), so pretraining keeps it an isometry, as the
            # paper's linear-AE analysis (its SP Sec. 1.6: V orthogonal) assumes.
            encoder, decoder = linears
            with torch.no_grad():
                nn.init.orthogonal_(encoder.weight)
                decoder.weight.copy_(encoder.weight.T)
                encoder.bias.zero_()
                decoder.bias.zero_()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the input scaling existed hold an unscaled network
        state_dict.setdefault(prefix + "input_shift", torch.zeros(()))
        state_dict.setdefault(prefix + "input_scale", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def standardize_to(self, X: Tensor) -> "Autoencoder":
        """Take the global mean and standard deviation of ``X`` as the input shift and scale
        (one number each, as ClustPy's examples z-score images: pixel ratios are kept)."""
        if isinstance(self.decoder, ConvDecoder28):
            raise ValueError("Autoencoder: the conv decoder ends in a sigmoid and needs inputs in "
                             "[0, 1]; standardize the input of an mlp autoencoder only")
        std = float(X.std())
        if not std > 0:
            raise ValueError("Autoencoder: cannot standardize constant data (standard deviation 0)")
        self.input_shift.fill_(float(X.mean()))
        self.input_scale.fill_(std)
        return self

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.input_shift.to(x.device)) / self.input_scale.to(x.device)

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.input_scale.to(x.device) + self.input_shift.to(x.device)

    @property
    def is_standardized(self) -> bool:
        return bool(self.input_shift != 0 or self.input_scale != 1)

    def encode(self, x: Tensor) -> Tensor:
        """The embedding of normalised input (see :meth:`normalize`; :meth:`embed` takes raw)."""
        return self.encoder(x)

    def embed(self, x: Tensor) -> Tensor:
        """The embedding of raw input."""
        return self.encoder(self.normalize(x))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of normalised input, in normalised units."""
        return self.decoder(self.encoder(x))


# Vector data up to this many features gets the single linear layer d = D (an isometry at the
# start, see Autoencoder) when latent_dim and hidden are left at None.
MAX_LINEAR_FEATURES = 32


def default_architecture(sample_shape, latent_dim=None, hidden=None) -> tuple[int, tuple]:
    """(latent_dim, hidden) of the autoencoder for samples of ``sample_shape`` when either is
    None: for low-dimensional vector data (D = prod(sample_shape) <= 32 features) the single
    linear layer with d = D that the ACe/DeC paper trains on SYNTH-25 (its start is an
    isometry, so the embedding is the data rotated and nothing is lost), otherwise the
    D-500-500-2000-10 network of DEC/DCN/ACe/DeC. A deep 10-dimensional bottleneck on
    SYNTH-25 (27 features: two cluster dimensions beside 25 noise dimensions of about the same
    variance) has no reason to keep the cluster dimensions. A value given is kept."""
    features = int(np.prod(sample_shape))
    linear = features <= MAX_LINEAR_FEATURES and len(tuple(sample_shape)) == 1
    if latent_dim is None:
        no_hidden = hidden is None or (isinstance(hidden, Sequence) and len(hidden) == 0)
        latent_dim = features if linear and no_hidden else 10
    if hidden is None:
        hidden = () if linear and latent_dim == features else (500, 500, 2000)
    return latent_dim, hidden


def reconstruction_loss(x: Tensor, x_hat: Tensor) -> Tensor:
    """Squared error summed over a sample's features, averaged over the batch.

    A per-sample sum (not a per-feature mean) because eq. (5) of the ACe/DeC paper adds the
    clustering terms to ``||x - x_hat||^2`` unweighted; the pretraining uses the same scale.
    """
    return (x - x_hat).pow(2).reshape(len(x), -1).sum(dim=1).mean()


def augment_normalized(net: Autoencoder, x: Tensor, generator: torch.Generator) -> Tensor:
    """:func:`~pydeepclust.data.random_affine` of a batch in ``net``'s normalised units:
    augmented in the data's own units (so pixels moved in are black), normalised again."""
    return net.normalize(random_affine(net.denormalize(x), generator))


def autoencoder_optimizer(net: Autoencoder, lr: float) -> torch.optim.Optimizer:
    """The pretraining optimizer: Adam, fused (one kernel for all parameters, 3x faster steps
    than foreach on the CPU)."""
    return torch.optim.Adam(net.parameters(), lr=lr, fused=True)


def train_autoencoder(net: Autoencoder, X: Tensor, epochs: int, batch_size: int, lr: float,
                      generator: torch.Generator, device: torch.device, progress=None,
                      check_loss=None, corruption: float = 0.0, augment: bool = False,
                      optimizer: torch.optim.Optimizer | None = None, start_epoch: int = 0,
                      after_epoch=None, autocast=contextlib.nullcontext) -> Autoencoder:
    """Adam on the reconstruction loss, shuffled mini-batches drawn from ``generator``.

    Resumable: ``optimizer`` (default: :func:`autoencoder_optimizer` with ``lr``, for ``net``
    already on ``device``), ``start_epoch`` (the epochs done before) and
    ``after_epoch(epoch, optimizer)``, called after each epoch (checkpoints). ``autocast``: a
    context factory for the network's forward pass (e.g. bfloat16 ``torch.autocast``; the loss
    is computed in float32).

    ``augment``: every batch is a fresh random rotation/shift/shear of the images
    (:func:`augment_normalized`; X must hold images, (n, H, W) or (n, C, H, W)), as the
    authors' library pretrains when augmentation invariance is asked for.

    Under torch.distributed (see :mod:`pydeepclust.distributed`) every rank passes the same X
    and takes its rows of each batch; the loss is the mean over the whole batch, the
    gradients are averaged: the same steps as one process.

    ``corruption`` > 0 trains a denoising autoencoder (the stacked denoising AE of DEC, whose
    pretraining the ACe/DeC paper follows): that fraction of each input's features is zeroed
    (dropout, drawn from ``generator``) and the clean input is reconstructed. Zeroed in the
    network's normalised units: for a standardized network that is the data's mean.
    """
    if not 0.0 <= corruption < 1.0:
        raise ValueError(f"train_autoencoder: corruption must lie in [0, 1), got {corruption!r}")
    net.to(device).train()
    X = to_device_if_fits(net.normalize(X), device)
    if optimizer is None:
        optimizer = autoencoder_optimizer(net, lr)
    epoch_iter = range(start_epoch, epochs)
    if progress is not None:
        epoch_iter = progress(epoch_iter, "pretraining")
    for epoch in epoch_iter:
        for idx in torch.randperm(len(X), generator=generator).split(batch_size):
            # under torch.distributed: this rank's rows, random draws made for the whole batch
            rows = pdist.rank_rows(len(idx))
            if augment:
                x = augment_normalized(net, X[idx].to(device), generator)[rows]
            else:
                x = X[idx[rows]].to(device)
            x_in = x
            if corruption > 0:
                keep = torch.rand((len(idx), *x.shape[1:]), generator=generator)[rows]
                x_in = x * (keep >= corruption).to(device) / (1 - corruption)
            with autocast():
                recon = net(x_in).to(x.dtype)
            loss = pdist.global_mean(reconstruction_loss(x, recon), len(x), len(idx))
            if check_loss is not None:
                check_loss(loss, epoch, {"reconstruction": loss})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            pdist.average_gradients(net.parameters())
            optimizer.step()
        if after_epoch is not None:
            after_epoch(epoch, optimizer)
    return net.eval()


class AutoencoderClusterer(DeepClusterer):
    """Base of the estimators that start from a pretrained autoencoder.

    Its parameters are the ones every such model shares; ``autoencoder`` is an
    :class:`Autoencoder` pretrained elsewhere (used as a deep copy) or None to pretrain one
    here for ``pretrain_epochs``. ``standardize``: the network pretrained here sees the data
    z-scored by its global mean and standard deviation (:meth:`Autoencoder.standardize_to`;
    a given ``autoencoder`` keeps the scaling it was pretrained with). ``augmentation_invariance``:
    the network pretrained here sees randomly rotated, shifted and sheared images
    (:func:`~pydeepclust.data.random_affine`; X must be (n, H, W) or (n, C, H, W)); the
    clustering models also use it in their clustering loss. Instantiated directly, it only
    pretrains (see :func:`pretrain_autoencoder`).
    """

    def __init__(self, n_clusters: int = 1, latent_dim: int = 10, arch: str = "mlp",
                 hidden: Sequence[int] = (500, 500, 2000), autoencoder: Autoencoder | None = None,
                 pretrain_epochs: int = 50, batch_size: int = 256, lr: float = 1e-3,
                 random_state: int | None = 0, device: str | None = None, verbose: bool = False,
                 standardize: bool = False, augmentation_invariance: bool = False):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden = hidden
        self.autoencoder = autoencoder
        self.pretrain_epochs = pretrain_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.standardize = standardize
        self.augmentation_invariance = augmentation_invariance

    def _check_common_params(self) -> None:
        name = type(self).__name__
        self._check_integers("n_clusters", "batch_size")
        self._check_integers("pretrain_epochs", minimum=0)
        self._check_numbers("lr")
        if self.autoencoder is not None and not isinstance(self.autoencoder, Autoencoder):
            raise TypeError(f"{name}: autoencoder must be a pydeepclust Autoencoder or None, "
                            f"got {type(self.autoencoder).__name__}")
        for flag in ("standardize", "augmentation_invariance"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{name}: {flag} must be True or False, "
                                 f"got {getattr(self, flag)!r}")
        if self.standardize and self.autoencoder is not None and not self.autoencoder.is_standardized:
            raise ValueError(f"{name}: standardize=True applies to a network pretrained here; the "
                             "given autoencoder was trained on unscaled data (pretrain it with "
                             "pretrain_autoencoder(..., standardize=True))")

    def _architecture(self, sample_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """(latent_dim, hidden) after the defaults: see :func:`default_architecture`."""
        return default_architecture(sample_shape, self.latent_dim, self.hidden)

    def _build(self, sample_shape: tuple[int, ...]) -> None:
        latent_dim, hidden = self._architecture(sample_shape)
        with self._seeded(offset=1):
            self.autoencoder_ = Autoencoder(sample_shape, latent_dim, self.arch, hidden)
        self.autoencoder_.to(self._device())

    def _modules(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.autoencoder_}

    def _pretrained_autoencoder(self, X: Tensor) -> Autoencoder:
        """Set ``autoencoder_``: a copy of the given network, or a new one pretrained on X."""
        self._check_common_params()
        if self.augmentation_invariance and X.dim() < 3:
            raise ValueError(f"{type(self).__name__}: augmentation_invariance needs images: X of "
                             f"shape (n, H, W) or (n, C, H, W), got {tuple(X.shape)} (reshape "
                             "flat samples to their image shape)")
        if self.autoencoder is not None:
            if tuple(self.autoencoder.sample_shape) != tuple(X.shape[1:]):
                raise ValueError(
                    f"{type(self).__name__}: autoencoder was built for samples of shape "
                    f"{self.autoencoder.sample_shape}, X has {tuple(X.shape[1:])}")
            self.autoencoder_ = copy.deepcopy(self.autoencoder).to(self._device()).eval()
            return self.autoencoder_
        self._build(tuple(X.shape[1:]))
        if self.standardize:
            self.autoencoder_.standardize_to(X)
        if self._resumed() and not self._resumed("pretraining"):
            return self.autoencoder_.eval()  # pretrained before: the weights are loaded later
        return self._pretrain(X)

    def _pretrain(self, X: Tensor) -> Autoencoder:
        """Pretrain ``autoencoder_`` on X; with ``checkpoint_path`` (a parameter of the models
        that have it) resumably: a checkpoint every ``checkpoint_every`` epochs and at the end
        (phase "pretraining")."""
        net, resumed = self.autoencoder_, self._resumed("pretraining")
        checkpoints = bool(getattr(self, "checkpoint_path", None))
        if resumed:
            self._resume_model(resumed)
        optimizer = autoencoder_optimizer(net.to(self._device()), self.lr)
        generator = self._generator(offset=2)
        start = self._resume_loop(resumed, {"optimizer": optimizer},
                                  {"batches": generator}) if resumed else 0

        def after_epoch(epoch: int, optimizer) -> None:
            if checkpoints and (self._checkpoint_due(epoch) or epoch + 1 == self.pretrain_epochs):
                self._checkpoint("pretraining", epoch + 1, {"optimizer": optimizer},
                                 {"batches": generator}, fitted=False)

        return train_autoencoder(net, X, self.pretrain_epochs, self.batch_size, self.lr,
                                 generator, self._device(), self._progress, self._check_loss,
                                 augment=self.augmentation_invariance, optimizer=optimizer,
                                 start_epoch=start, after_epoch=after_epoch,
                                 autocast=self._autocast)

    @torch.no_grad()
    def _embed(self, X: Tensor) -> Tensor:
        """Embeddings of raw data (normalised on the way in)."""
        return self._embed_in_batches(self.autoencoder_.embed, X)


def pretrain_autoencoder(X, latent_dim: int = 10, arch: str = "mlp",
                         hidden: Sequence[int] = (500, 500, 2000), epochs: int = 50,
                         batch_size: int = 256, lr: float = 1e-3, random_state: int | None = 0,
                         device: str | None = None, verbose: bool = False,
                         standardize: bool = False,
                         augmentation_invariance: bool = False,
                         checkpoint_path: str | None = None,
                         checkpoint_every: int = 10) -> Autoencoder:
    """Build and pretrain an :class:`Autoencoder` on ``X`` (squared error, Adam), reproducible
    with ``random_state``; pass the result as ``autoencoder=`` to several clusterers. A
    clusterer given the same settings and no autoencoder pretrains the identical network.
    ``standardize``: train on X z-scored by its global mean and std (kept in the network).
    ``augmentation_invariance``: train on randomly rotated, shifted and sheared images (X of
    shape (n, H, W) or (n, C, H, W)). ``checkpoint_path``: save the pretraining there every
    ``checkpoint_every`` epochs and, when the file exists, continue from it (a cut-off
    pretraining resumes; the network is the one an uninterrupted call gives)."""
    if checkpoint_path is not None:
        from pydeepclust.models.baselines import AEKMeans  # it builds on this module

        model = AEKMeans(n_clusters=1, n_init=1, latent_dim=latent_dim, arch=arch, hidden=hidden,
                         pretrain_epochs=epochs, batch_size=batch_size, lr=lr,
                         random_state=random_state, device=device, verbose=verbose,
                         standardize=standardize, augmentation_invariance=augmentation_invariance,
                         checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every)
        return model.fit(X, resume=True).autoencoder_
    holder = AutoencoderClusterer(latent_dim=latent_dim, arch=arch, hidden=hidden,
                                  pretrain_epochs=epochs, batch_size=batch_size, lr=lr,
                                  random_state=random_state, device=device, verbose=verbose,
                                  standardize=standardize,
                                  augmentation_invariance=augmentation_invariance)
    holder._check_common_types()
    return holder._pretrained_autoencoder(holder._check_X(X, fitting=True))


# -- command line: the options every autoencoder-based model shares -------------------------


def cli_model_name(parser) -> str:
    """The model a ``fit`` sub-parser is for (its last word: ``... fit dcn`` -> "dcn")."""
    return parser.prog.split()[-1]


def add_autoencoder_arguments(parser) -> None:
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="embedding size d (default: D for vector data of <= 32 features, "
                             "else 10)")
    parser.add_argument("--arch", default="mlp", choices=("mlp", "conv", "auto"),
                        help="autoencoder: fully connected (paper) or conv for 28x28 images")
    parser.add_argument("--hidden", default=None,
                        help="hidden widths of the mlp autoencoder ('' = one linear layer; "
                             "default: one linear layer for vector data of <= 32 features, "
                             "else 500,500,2000)")
    parser.add_argument("--pretrain-epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate")
    parser.add_argument("--standardize", action="store_true",
                        help="z-score the input by its global mean and std (mlp only)")
    parser.add_argument("--augment", action="store_true",
                        help="augmentation invariance (image data): pretrain on randomly "
                             "rotated/shifted/sheared images; DCN and ACe/DeC also pull each "
                             "augmented image to its original's centroid (the paper's §2.2)")


def parse_hidden(text: str | None) -> tuple[int, ...] | None:
    """"500,500,2000" -> (500, 500, 2000); "" -> () (a single linear layer); None -> None
    (the model's default, :func:`default_architecture`)."""
    if text is None:
        return None
    return tuple(int(w) for w in text.split(",") if w.strip())
