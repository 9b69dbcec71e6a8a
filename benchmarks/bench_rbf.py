"""RBF ratio cut (loss + gradients w.r.t. X and Z): streaming kernel vs dense reference.

    python -m pytest benchmarks/bench_rbf.py --benchmark-only \
        --benchmark-json=benchmarks/results/rbf.json
    python benchmarks/report.py benchmarks/results/rbf.json

Peak memory (a separate script, each case in a child process):
    python -m benchmarks.memory_rbf
"""

import pytest
import torch

import pydeepclust.ops as ops
from benchmarks.conftest import run_case


@pytest.mark.parametrize("n", [1024, 4096, 16384])
def test_rbf_ratio_cut_forward_backward(benchmark, device, impl, n):
    d, k = 784, 10
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g).to(device).requires_grad_()
    Z = torch.randn(n, k, generator=g).to(device).requires_grad_()
    sigma = ops.sample_bandwidths(X.detach(), generator=g)

    def step():
        loss = ops.rbf_ratio_cut(X, Z, sigma)
        return torch.autograd.grad(loss, (X, Z))

    # large cases: few rounds (the dense reference needs ~7 n x n float32 buffers: 7.5 GB at 16384)
    # least work: Gram products for S (forward, and again in the backward), S [Z, 1], and the
    # backward's W X; X and Z read, their gradients written.
    run_case(benchmark, f"rbf_ratio_cut fwd+bwd n={n} d={d} k={k}", device, step,
             rounds={1024: None, 4096: 3, 16384: 1}[n], bytes=8 * n * (d + k),
             flops=6 * n * n * d + 2 * n * n * (k + 1))


@pytest.mark.parametrize("m", [4096, 16384])
def test_rbf_ratio_cut_rows_forward_backward(benchmark, device, impl, m):
    """One rank's share of a 2-rank data-parallel step: m / 2 rows against all m columns,
    gradients for all four inputs (rows and gathered columns)."""
    d, k, n = 784, 10, m // 2
    g = torch.Generator().manual_seed(0)
    Xc = torch.randn(m, d, generator=g).to(device).requires_grad_()
    Zc = torch.randn(m, k, generator=g).to(device).requires_grad_()
    X = Xc.detach()[:n].clone().requires_grad_()
    Z = Zc.detach()[:n].clone().requires_grad_()
    sigma = ops.sample_bandwidths(Xc.detach(), generator=g)

    def step():
        cut, degree = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, row_offset=0)
        return torch.autograd.grad(cut / degree.sum(), (X, Z, Xc, Zc))

    # least work: the Gram tiles X Xc^T (forward and backward), S [Zc, 1, q], S^T [Z, 1],
    # and W Xc, W^T X; the four inputs read, their gradients written.
    run_case(benchmark, f"rbf_ratio_cut_rows fwd+bwd n={n} m={m} d={d} k={k}", device, step,
             rounds={4096: 3, 16384: 1}[m], bytes=8 * (n + m) * (d + k),
             flops=8 * n * m * d + 6 * n * m * (k + 1))


@pytest.mark.parametrize("B, n", [(64, 256), (1, 2048)])
def test_rbf_affinity(benchmark, device, impl, B, n):
    X = torch.randn(B, n, 64, device=device)
    sigma = ops.sample_bandwidths(X)
    run_case(benchmark, f"rbf_affinity B={B} n={n} d=64", device, lambda: ops.rbf_affinity(X, sigma),
             bytes=4 * B * n * (64 + n), flops=2 * B * n * n * 64)
