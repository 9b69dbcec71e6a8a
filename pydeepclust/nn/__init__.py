"""Encoders and decoders shared by the models.

* :func:`mlp` — fully connected stacks (e.g. the D-500-500-2000-d autoencoder of DEC/DCN/ACe/DeC).
* :class:`ConvEncoder28` / :class:`ConvDecoder28` — the ClusterGAN-like pair for 28×28 images
  that the GenKSC authors use.
* :func:`autoencoder` — picks one of the two for an input shape.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from torch import nn


def check_widths(widths, name: str) -> tuple[int, ...]:
    """``widths`` (a sequence of layer widths) as a tuple of positive ints, or a ValueError
    naming the parameter: a string like "16" would otherwise read as widths 1 and 6."""
    try:
        items = None if isinstance(widths, (str, bytes)) else list(widths)
    except TypeError:
        items = None
    if items is None or not all(
            isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 1 for w in items):
        raise ValueError(f"{name} must be a sequence of positive integer widths, e.g. "
                         f"(500, 500, 2000), got {widths!r}")
    return tuple(int(w) for w in items)


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU,
        final_activation: nn.Module | None = None, batch_norm: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them."""
    sizes = check_widths(sizes, "mlp: sizes")
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes must hold at least two widths, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation())
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


class ConvEncoder28(nn.Module):
    """(n, 1, 28, 28) -> (n, out_dim): Conv(1,64,4,2,1) LReLU Conv(64,128,4,2,1) LReLU Linear."""

    def __init__(self, out_dim: int = 1024, channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 64, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(128 * 7 * 7, out_dim),
        )

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], -1, 28, 28))


class ConvDecoder28(nn.Module):
    """(n, in_dim) -> (n, channels, 28, 28) in [0, 1]: the mirror of :class:`ConvEncoder28`."""

    def __init__(self, in_dim: int = 1024, channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, z):
        return self.net(z)


def autoencoder(input_shape: Sequence[int], latent_dim: int, arch: str = "auto",
                hidden: Sequence[int] = (500, 500, 2000)) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder for samples of ``input_shape`` (without the batch dimension).

    ``arch="conv"`` needs 28×28 images; ``"mlp"`` flattens; ``"auto"`` takes conv for
    28×28 images and mlp otherwise. Decoders end in a sigmoid (inputs in [0, 1]) for
    conv, and are linear for mlp.
    """
    shape = tuple(int(s) for s in input_shape)
    is_28 = shape[-2:] == (28, 28) and len(shape) in (2, 3)
    if arch == "auto":
        arch = "conv" if is_28 else "mlp"
    if arch == "conv":
        if not is_28:
            raise ValueError(f"arch='conv' needs 28x28 images, got sample shape {shape}")
        channels = shape[0] if len(shape) == 3 else 1
        return ConvEncoder28(latent_dim, channels), ConvDecoder28(latent_dim, channels)
    if arch != "mlp":
        raise ValueError(f"arch must be 'auto', 'conv' or 'mlp', got {arch!r}")
    d = 1
    for s in shape:
        d *= s
    sizes = [d, *check_widths(hidden, "hidden"), latent_dim]
    encoder = nn.Sequential(nn.Flatten(), mlp(sizes))
    decoder = nn.Sequential(mlp(sizes[::-1]), nn.Unflatten(1, shape))
    return encoder, decoder


__all__ = ["ConvDecoder28", "ConvEncoder28", "autoencoder", "check_widths", "mlp"]
