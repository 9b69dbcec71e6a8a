"""Random affine augmentation: exact rotations, shifts and shears against index arithmetic,
identity at zero strength, seeded draws within their bounds, shapes, devices, bad input."""

import pytest
import torch

from pydeepclust.data import affine_images, random_affine


def _zeros(n):
    return torch.zeros(n, dtype=torch.float64)


def _transform(images, angle=0.0, shear=0.0, shift=(0.0, 0.0)):
    n = images.shape[0]
    return affine_images(images, torch.full((n,), float(angle)), torch.full((n,), float(shear)),
                         torch.tensor([shift], dtype=torch.float64).repeat(n, 1))


@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 3, 6, 6), (1, 1, 4, 9)])
def test_zero_transform_is_the_identity(shape, device, dtype):
    images = torch.rand(shape, dtype=dtype, device=device)
    out = _transform(images)
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    torch.testing.assert_close(out, images, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 2), (-2, 1), (3, -3)])
def test_integer_shift_moves_pixels_and_fills_zeros(dx, dy, device, dtype):
    images = torch.rand(2, 8, 7, dtype=dtype, device=device)
    expected = torch.zeros_like(images)
    h, w = images.shape[1:]
    # output pixel (r, c) shows input pixel (r - dy, c - dx): x to the right, y down
    expected[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    torch.testing.assert_close(_transform(images, shift=(dx, dy)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
@pytest.mark.parametrize("size", [5, 6])
def test_quarter_rotations_are_rot90(quarter_turns, size, device, dtype):
    images = torch.rand(3, 2, size, size, dtype=dtype, device=device)
    expected = torch.rot90(images, quarter_turns, dims=(-2, -1))  # counter-clockwise on screen
    torch.testing.assert_close(_transform(images, angle=90.0 * quarter_turns), expected,
                               rtol=0, atol=1e-5)


def test_shear_slides_rows_by_their_offset_from_the_centre(device):
    images = torch.zeros(1, 5, 5, device=device)
    images[0, 3, 2] = 1.0  # one row below the centre
    out = _transform(images, shear=45.0)
    assert out[0, 3, 3] == pytest.approx(1.0, abs=1e-6) and out.sum() == pytest.approx(1.0)


def test_random_affine_is_seeded(device):
    images = torch.rand(16, 1, 9, 9, device=device)
    out, again, other = (random_affine(images, torch.Generator().manual_seed(seed))
                         for seed in (3, 3, 4))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    assert not torch.equal(out, other) and not torch.equal(out, images)


def test_random_shifts_stay_within_translate(device):
    images = torch.zeros(64, 21, 21, device=device)
    images[:, 10, 10] = 1.0  # a point at the centre
    out = random_affine(images, torch.Generator().manual_seed(3), degrees=0, translate=0.1,
                        shear=0)
    # bilinear sampling of a pure shift keeps the mass and moves the centre of mass exactly
    torch.testing.assert_close(out.sum(dim=(1, 2)), torch.ones(64, device=device))
    grid = torch.arange(21.0, device=device) - 10
    moved_x = (out.sum(dim=1) * grid).sum(dim=1)
    moved_y = (out.sum(dim=2) * grid).sum(dim=1)
    assert moved_x.abs().max() <= 2.1 + 1e-5 and moved_y.abs().max() <= 2.1 + 1e-5
    assert moved_x.abs().max() > 1.0  # the shifts do use their range
    assert len(torch.unique(moved_x.round(decimals=3))) > 32  # one draw per image


def test_zero_strength_random_affine_is_the_identity():
    images = torch.rand(4, 1, 6, 6)
    out = random_affine(images, torch.Generator().manual_seed(0), degrees=0, translate=0, shear=0)
    torch.testing.assert_close(out, images, rtol=0, atol=1e-6)


def test_empty_batch():
    assert random_affine(torch.zeros(0, 8, 8)).shape == (0, 8, 8)
    assert _transform(torch.zeros(0, 2, 4, 4)).shape == (0, 2, 4, 4)


@pytest.mark.parametrize("images, kwargs, error, match", [
    (torch.zeros(4, 64), {}, ValueError, "images"),
    (torch.zeros(2, 1, 1, 8, 8), {}, ValueError, "images"),
    (torch.zeros(4, 8, 8, dtype=torch.int64), {}, TypeError, "float32 or float64"),
    (torch.zeros(4, 8, 8, dtype=torch.float16), {}, TypeError, "float32 or float64, got torch.f"),
    (torch.zeros(4, 0, 0), {}, ValueError, "H, W >= 1"),
    (torch.zeros(4, 8, 8), dict(generator=5), TypeError, "generator must be a torch.Generator"),
    (torch.zeros(4, 8, 8), dict(degrees=-1), ValueError, "degrees"),
    (torch.zeros(4, 8, 8), dict(translate=1.5), ValueError, "translate"),
    (torch.zeros(4, 8, 8), dict(shear=90), ValueError, "shear"),
    (torch.zeros(4, 8, 8), dict(degrees=True), ValueError, "degrees"),
])
def test_bad_input(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        random_affine(images, **kwargs)


@pytest.mark.parametrize("angle, shear, shift, match", [
    (torch.zeros(3), torch.zeros(4), torch.zeros(4, 2), "angle"),
    (torch.zeros(4), 0.0, torch.zeros(4, 2), "shear"),
    (torch.zeros(4), torch.zeros(4), torch.zeros(4), "shift"),
    (torch.tensor([0.0, float("nan"), 0.0, 0.0]), torch.zeros(4), torch.zeros(4, 2),
     "angle holds NaN or inf"),
    (torch.zeros(4), torch.zeros(4), torch.full((4, 2), float("inf")), "shift holds NaN or inf"),
])
def test_affine_images_checks_its_parameters(angle, shear, shift, match):
    with pytest.raises(ValueError, match=match):
        affine_images(torch.zeros(4, 8, 8), angle, shear, shift)


def test_affine_images_takes_real_parameters_only():
    with pytest.raises(TypeError, match="angle must hold real numbers, got torch.complex64"):
        affine_images(torch.zeros(4, 8, 8), torch.zeros(4, dtype=torch.complex64),
                      torch.zeros(4), torch.zeros(4, 2))
