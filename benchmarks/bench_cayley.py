"""Benchmarks of the Cayley retraction: native op vs the plain-torch Woodbury step vs the
fixed-point Cayley loop with n x n matrices (Li, Li & Todorovic 2020: 2 and 5 iterations).

    python -m pytest benchmarks/bench_cayley.py --benchmark-only \
        --benchmark-json=benchmarks/results/cayley.json
    python benchmarks/report.py benchmarks/results/cayley.json
"""

import pytest
import torch

import pydeepclust.ops as ops
from benchmarks.conftest import run_case
from pydeepclust.ops import reference

SHAPES = [(256, 10), (1024, 40), (4096, 64), (256, 64, 8)]


def case(shape, device):
    g = torch.Generator().manual_seed(0)
    X = torch.linalg.qr(torch.randn(*shape, generator=g)).Q.to(device)
    G = torch.randn(*shape, generator=g).to(device)
    G = G / torch.linalg.matrix_norm(G, keepdim=True)
    name = "x".join(map(str, shape)) if len(shape) == 2 else f"B={shape[0]} of {shape[1]}x{shape[2]}"
    return X, G, torch.tensor(0.1, device=device), f"cayley_retraction {name}"


def limits(shape):
    """Least traffic (X, G read, Y written) and flops (the Woodbury step's products:
    X^T X, X^T G, G^T G, then Y from X and G times p x p matrices: 10 n p^2 per matrix)."""
    B, n, p = shape if len(shape) == 3 else (1, *shape)
    return dict(bytes=12 * B * n * p, flops=10 * B * n * p * p)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cayley_retraction(benchmark, device, impl, shape):
    X, G, tau, group = case(shape, device)
    run_case(benchmark, group, device, lambda: ops.cayley_retraction(X, G, tau), **limits(shape))


@pytest.mark.parametrize("impl", ["fixed-point x2", "fixed-point x5"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cayley_fixed_point(benchmark, device, impl, shape):
    X, G, tau, group = case(shape, device)
    iterations = int(impl[-1])
    run_case(benchmark, group, device,
             lambda: reference.cayley_fixed_point(X, G, tau, iterations), **limits(shape))
