"""Shared fixtures: every op test runs on each available device and both float dtypes."""

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

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


@pytest.fixture(scope="module")
def one_thread():
    """One torch and BLAS thread for a module of tiny models, for which thread start-up and
    spinning (badly so on a shared, loaded machine) cost far more than they save
    (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def noisy_blobs():
    """Three separated 2-D blobs plus four N(0, 1) noise columns, 240 rows: (X, y)."""
    rng = np.random.default_rng(0)
    y = np.arange(240) % 3
    centers = np.array([[0.0, 4.0], [3.5, -2.0], [-3.5, -2.0]])
    X = np.hstack([centers[y] + 0.5 * rng.standard_normal((240, 2)),
                   rng.standard_normal((240, 4))]).astype(np.float32)
    return X, y


def tolerances(dtype):
    """(rtol, atol) for comparing a kernel with its reference."""
    return (1e-5, 1e-5) if dtype == torch.float32 else (1e-12, 1e-12)
