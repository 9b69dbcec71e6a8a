"""Shared fixtures: every op test runs on each available device and both float dtypes."""

import pytest
import torch

import pydeepclust.ops as ops

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
    ),
]
DTYPES = [torch.float32, torch.float64]
# Tests of the raw torch.ops.pydeepclust.* ops (CI fails earlier if the extension did not build).
needs_extension = pytest.mark.skipif(not ops.extension_available(), reason="extension not built")
# Backends worth comparing: the native kernels (when built) and the references.
BACKENDS = [
    pytest.param("extension", marks=needs_extension),
    "reference",
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=BACKENDS)
def backend(request):
    with ops.use_backend(request.param):
        yield request.param


def tolerances(dtype):
    """(rtol, atol) for comparing a kernel with its reference."""
    return (1e-5, 1e-5) if dtype == torch.float32 else (1e-12, 1e-12)
