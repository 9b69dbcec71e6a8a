"""Fused cosine-to-simplex assignment: extension vs pure-torch reference.

    python -m pytest benchmarks/bench_simplex.py --benchmark-only \
        --benchmark-json=benchmarks/results/simplex.json
    python benchmarks/report.py benchmarks/results/simplex.json
"""

import pytest
import torch

import pydeepclust.ops as ops
from benchmarks.conftest import run_case


@pytest.mark.parametrize("mode", ["forward", "forward+backward"])
@pytest.mark.parametrize("k", [3, 10, 50])
@pytest.mark.parametrize("n", [10**4, 10**5, 10**6])
def test_cosine_simplex_assign(benchmark, device, impl, n, k, mode):
    codes = ops.simplex_codes(k, device=device)
    E = torch.randn(n, ops.code_width(k), device=device, requires_grad=mode != "forward")

    def step():
        dist, _ = ops.cosine_simplex_assign(E, codes, check_finite=False)
        if mode == "forward":
            return dist
        return torch.autograd.grad(dist.sum(), E)[0]

    # least traffic: E read, dist and label written; backward: E and label read again, the
    # gradient written. Flops: one dot product per row and code.
    m = E.shape[1]
    fwd_bytes, fwd_flops = 4 * n * m + 12 * n, 2 * n * k * m
    bytes_, flops = ((fwd_bytes, fwd_flops) if mode == "forward"
                     else (fwd_bytes + 8 * n * m + 8 * n, fwd_flops + 8 * n * m))
    with torch.set_grad_enabled(mode != "forward"):
        run_case(benchmark, f"cosine_simplex_assign {mode} n={n:.0e} k={k}", device, step,
                 rounds=20 if n == 10**6 else None, bytes=bytes_, flops=flops)


@pytest.mark.parametrize("k", [10, 50])
@pytest.mark.parametrize("n", [10**5])
def test_soft_memberships(benchmark, device, impl, n, k):
    codes = ops.simplex_codes(k, device=device)
    E = torch.randn(n, ops.code_width(k), device=device)
    m = E.shape[1]
    run_case(benchmark, f"soft_memberships n={n:.0e} k={k}", device,
             lambda: ops.soft_memberships(E, codes, check_finite=False),
             bytes=4 * n * (m + k), flops=2 * n * k * m)
