"""Random affine augmentation of image batches, on the batch's device.

The ACe/DeC paper's optional augmentation (its §2.2: "random rotation and shifts") as the
authors' library applies it to MNIST-like images: torchvision's ``RandomAffine(degrees=16,
translate=(0.1, 0.1), shear=8, fill=0)``, here drawn per image from a ``torch.Generator`` and
applied to the whole batch at once with ``affine_grid``/``grid_sample`` (bilinear, zeros
outside the image), so it runs where the data is and needs no torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["affine_images", "random_affine"]


def _as_nchw(images: Tensor, fn: str) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{fn}: images must be a tensor of shape (n, H, W) or (n, C, H, W), "
                         f"got {shape}")
    if images.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: images must be float32 or float64, got {images.dtype}")
    if 0 in images.shape[-2:]:
        raise ValueError(f"{fn}: images must have H, W >= 1, got shape {tuple(images.shape)}")
    return images.unsqueeze(1) if images.dim() == 3 else images


def affine_images(images: Tensor, angle: Tensor, shear: Tensor, shift: Tensor) -> Tensor:
    """Rotate by ``angle`` (degrees, counter-clockwise as displayed with row 0 on top), shear
    along x by ``shear`` (degrees) and shift by ``shift`` (n, 2) pixels (x right, y down),
    each image about its centre; pixels from outside the image are 0.

    ``images`` (n, H, W) or (n, C, H, W); ``angle`` and ``shear`` (n,). Same shape out.
    """
    x = _as_nchw(images, "affine_images")
    n, _, h, w = x.shape
    for name, value, shape in (("angle", angle, (n,)), ("shear", shear, (n,)),
                               ("shift", shift, (n, 2))):
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"affine_images: {name} must be a tensor of shape {shape} (one per "
                             f"image), got {got}")
        if value.dtype not in (torch.float32, torch.float64, torch.int32, torch.int64):
            raise TypeError(f"affine_images: {name} must hold real numbers, got {value.dtype}")
        if value.numel() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"affine_images: {name} holds NaN or inf")
    if n == 0:
        return images.clone()
    kw = dict(device=x.device, dtype=x.dtype)
    a = torch.deg2rad(angle.to(**kw))
    s = torch.deg2rad(shear.to(**kw))
    # forward map in pixel units (y down): rotation (its sign makes "counter-clockwise" on
    # screen) after an x-shear; the sampling grid needs its inverse
    rot = torch.stack([torch.stack([a.cos(), a.sin()], -1),
                       torch.stack([-a.sin(), a.cos()], -1)], -2)
    shr = torch.zeros(n, 2, 2, **kw)
    shr[:, 0, 0] = 1
    shr[:, 0, 1] = torch.tan(s)
    shr[:, 1, 1] = 1
    inverse = torch.linalg.inv(rot @ shr)
    to_pixels = torch.tensor([w / 2, h / 2], **kw)
    # normalised grid coordinates p_n: pixels p = to_pixels * p_n; input = M^-1 (p - t)
    theta = torch.empty(n, 2, 3, **kw)
    theta[:, :, :2] = inverse * to_pixels[None, None, :] / to_pixels[None, :, None]
    theta[:, :, 2] = -(inverse @ shift.to(**kw)[:, :, None])[:, :, 0] / to_pixels
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(images.shape)


def random_affine(images: Tensor, generator: torch.Generator | None = None,
                  degrees: float = 16.0, translate: float = 0.1, shear: float = 8.0) -> Tensor:
    """Each image rotated by U(-degrees, degrees), sheared along x by U(-shear, shear) degrees
    and shifted by up to ``translate`` of its width/height in each direction (the defaults
    are the authors' library's augmentation for MNIST-like images).

    The draws come from ``generator`` (a CPU generator: same seed, same images on every
    device). Pixels moved in from outside are 0: augment data in its original units (black
    background), before any standardisation.
    """
    for name, value, top in (("degrees", degrees, 180.0), ("translate", translate, 1.0),
                             ("shear", shear, 89.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 <= value <= top):
            raise ValueError(f"random_affine: {name} must be a number in [0, {top:g}], "
                             f"got {value!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"random_affine: generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    x = _as_nchw(images, "random_affine")
    n, _, h, w = x.shape
    draws = torch.rand(n, 4, generator=generator, dtype=torch.float64) * 2 - 1  # U(-1, 1)
    angle = draws[:, 0] * degrees
    shear_deg = draws[:, 1] * shear
    shift = draws[:, 2:] * torch.tensor([translate * w, translate * h], dtype=torch.float64)
    return affine_images(images, angle, shear_deg, shift)

