"""Degree-weighted kernels and streaming degrees: extension vs pure-torch reference.

    python -m pytest benchmarks/bench_degree.py --benchmark-only \
        --benchmark-json=benchmarks/results/degree.json
    python benchmarks/report.py benchmarks/results/degree.json

``kernel_degrees`` (streaming, never an n x n matrix) is also timed against the
dense route (degrees from the materialised kernel matrix) under the group
"degrees"; there ``impl`` is "extension" for streaming and "reference" for dense.
"""

import pytest
import torch

import pydeepclust.ops as ops
from benchmarks.conftest import run_case

SHAPES = [(64, 512, 64), (1, 8192, 64)]


def shape_id(shape):
    return "B={} n={} d={}".format(*shape)


@pytest.mark.parametrize("mode", ["forward", "forward+backward"])
@pytest.mark.parametrize("kernel", ["rbf", "linear"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_degree_weighted_kernel(benchmark, device, impl, shape, kernel, mode):
    B = shape[0]
    X = torch.rand(shape, device=device, requires_grad=mode != "forward")
    sigma = torch.full((B,), 2.0, device=device) if kernel == "rbf" else None

    def step():
        P, d = ops.degree_weighted_kernel(X, kernel, sigma)
        if mode == "forward":
            return P
        return torch.autograd.grad(P.square().sum() + d.sum(), X)[0]

    # least work: the Gram product and P written (forward); the backward reads grad_P and P
    # and does one more (n x n) @ (n x d) product.
    _, n, d = shape
    fwd = (4 * (B * n * d + B * n * n + B * n), 2 * B * n * n * d)
    bytes_, flops = fwd if mode == "forward" else (fwd[0] + 4 * (2 * B * n * n + B * n * d),
                                                   2 * fwd[1])
    with torch.set_grad_enabled(mode != "forward"):
        run_case(benchmark, f"degree_weighted_kernel {kernel} {mode} {shape_id(shape)}", device,
                 step, rounds=5 if shape[1] == 8192 else None, bytes=bytes_, flops=flops)


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_degrees_streaming_vs_dense(benchmark, device, impl, shape, kernel):
    """Streaming kernel_degrees (extension) vs the degrees of the dense reference matrix."""
    if impl == "tuned":
        pytest.skip("streaming vs dense compares two routes, not two backends")
    B = shape[0]
    X = torch.rand(shape, device=device)
    sigma = torch.full((B,), 2.0, device=device) if kernel == "rbf" else None
    if impl == "extension":
        fn = lambda: ops.kernel_degrees(X, kernel=kernel, sigma=sigma)  # noqa: E731
    else:
        fn = lambda: ops.degree_weighted_kernel(X, kernel, sigma)[1]  # noqa: E731
    _, n, d = shape
    # rbf: every pair's distance (a Gram product); linear: X (X^T 1), O(nd)
    flops = 2 * B * n * n * d if kernel == "rbf" else 4 * B * n * d
    run_case(benchmark, f"degrees {kernel} streaming-vs-dense {shape_id(shape)}", device, fn,
             rounds=5 if shape[1] == 8192 else None, bytes=4 * B * n * (d + 1), flops=flops)
