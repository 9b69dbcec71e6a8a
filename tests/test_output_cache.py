"""The CPU output cache (csrc/cpu/output_cache.cpp): outputs of 4 MiB and more reuse the
buffers that earlier outputs released, within PYDEEPCLUST_CPU_OUTPUT_CACHE_MB."""

import io
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import pydeepclust.ops as ops
from tests.conftest import needs_extension

pytestmark = needs_extension

MIB = 1 << 20
N, K = 200_000, 10  # the gradient: 200,000 x 9 float32 = 6.9 MiB, cached as 8 MiB


def _grad(E, codes):
    Eg = E.clone().requires_grad_()
    dist, _ = ops.cosine_simplex_assign(Eg, codes)
    return torch.autograd.grad(dist.sum(), Eg)[0]


@pytest.fixture
def empty_cache():
    ops.release_cpu_output_cache()
    yield
    ops.release_cpu_output_cache()


def test_freed_output_is_reused_and_overwritten(empty_cache):
    codes = ops.simplex_codes(K)
    E1, E2 = torch.randn(N, K - 1), torch.randn(N, K - 1)
    first = _grad(E1, codes)
    ptr = first.data_ptr()
    del first
    assert ops.cpu_output_cache_bytes() == 8 * MIB  # the gradient (the forward's are < 4 MiB)
    second = _grad(E2, codes)
    assert second.data_ptr() == ptr
    # every entry written again: nothing of E1's gradient is left in the reused buffer
    with ops.use_backend("reference"):
        expected = _grad(E2, codes)
    torch.testing.assert_close(second, expected)


def test_zero_filled_outputs_start_from_zero(empty_cache):
    # rbf_ratio_cut's backward accumulates into a cached buffer: stale values would add up
    X, Z = torch.randn(2048, 700, dtype=torch.float64), torch.randn(2048, 3, dtype=torch.float64)
    sigma = torch.tensor(3.0, dtype=torch.float64)

    def grad():
        Xg = X.clone().requires_grad_()
        return torch.autograd.grad(ops.rbf_ratio_cut(Xg, Z, sigma), Xg)[0]

    first = grad()
    del first
    assert ops.cpu_output_cache_bytes() > 0
    again = grad()
    with ops.use_backend("reference"):
        expected = grad()
    torch.testing.assert_close(again, expected)


def _assign_case(E):
    return ops.cosine_simplex_assign(E, ops.simplex_codes(4, dtype=E.dtype))


def _memberships_case(E):
    return (ops.soft_memberships(E, ops.simplex_codes(10)),)


def _degree_case(X):
    Xg = X.clone().requires_grad_()
    P, degrees, _ = ops.degree_weighted_kernel(Xg, "rbf", 1.5, return_kernel=True)
    grad = torch.autograd.grad((P * P).sum() + degrees.sum(), Xg)[0]
    return P.detach(), grad


def _cayley_case(G):
    Q = torch.linalg.qr(torch.randn(G.shape, dtype=G.dtype,
                                    generator=torch.Generator().manual_seed(1))).Q
    return (ops.cayley_retraction(Q, G, 0.1),)


def _ratio_cut_rows_case(X):
    Xg, Xc = X[:1400].clone().requires_grad_(), X[1400:].clone().requires_grad_()
    Z = torch.sin(X[:, :3] * 0.1)  # a fixed embedding of the inputs
    cut, _ = ops.rbf_ratio_cut_rows(Xg, Z[:1400], Xc, Z[1400:], 60.0)
    return torch.autograd.grad(cut, (Xg, Xc))


# op: (the call, its input shape and dtype); every case makes at least one output >= 4 MiB
REUSE_CASES = {
    "assign": (_assign_case, (600_000, 3), torch.float64),           # dist, label 4.8 MB
    "memberships": (_memberships_case, (200_000, 9), torch.float32),  # 8 MB
    "degree kernel": (_degree_case, (1, 1100, 8), torch.float32),     # P and the backward's W
    "cayley": (_cayley_case, (1100, 32, 32), torch.float32),          # the fused path's Y
    "ratio cut rows": (_ratio_cut_rows_case, (2800, 784), torch.float32),  # both gradients
}


@pytest.mark.parametrize("name", list(REUSE_CASES))
def test_reused_buffers_are_written_in_full(name, empty_cache):
    """Outputs poisoned (NaN, or -7 for labels) and released, then the op on other inputs:
    it must get those buffers back and leave nothing of them (nor of its temporaries from
    the first call) in its results."""
    call, shape, dtype = REUSE_CASES[name]
    first = call(torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(2)))
    large = {t.data_ptr() for t in first if t.nbytes >= 4 * MIB}
    assert large, "the case must make an output of 4 MiB or more"
    for t in first:
        t.fill_(float("nan") if t.is_floating_point() else -7)
    del first, t
    X = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    again = call(X)
    assert large & {t.data_ptr() for t in again}, "no released buffer was reused"
    with ops.use_backend("reference"):
        expected = call(X)
    for got, want in zip(again, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_release_frees_everything(empty_cache):
    codes = ops.simplex_codes(K)
    _grad(torch.randn(N, K - 1), codes)
    held = ops.cpu_output_cache_bytes()
    assert held > 0 and held % (2 * MIB) == 0
    assert ops.release_cpu_output_cache() == held
    assert ops.cpu_output_cache_bytes() == 0


def test_small_outputs_bypass_the_cache(empty_cache):
    codes = ops.simplex_codes(K)
    _grad(torch.randn(1000, K - 1), codes)
    assert ops.cpu_output_cache_bytes() == 0


def test_cached_tensor_behaves_like_any_tensor(empty_cache, tmp_path):
    codes = ops.simplex_codes(K)
    g = _grad(torch.randn(N, K - 1), codes)
    copy = g.clone()
    buffer = io.BytesIO()
    torch.save(g, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer), copy)
    g.resize_(2 * N, K - 1)  # a larger storage, from the same allocator
    torch.testing.assert_close(g[:N], copy)
    g.share_memory_()
    assert g.is_shared()
    torch.testing.assert_close(g[:N], copy)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


CHURN = """
    import torch, pydeepclust.ops as ops
    codes = ops.simplex_codes(10)
    for n in (200_000, 300_000, 400_000, 500_000):  # four sizes: each its own buffer
        E = torch.randn(n, 9).requires_grad_()
        d, _ = ops.cosine_simplex_assign(E, codes)
        torch.autograd.grad(d.sum(), E)
    print(ops.cpu_output_cache_bytes())
"""


@pytest.mark.parametrize("limit_mb", [0, 16])
def test_limit_from_environment(limit_mb):
    out = _run(CHURN, PYDEEPCLUST_CPU_OUTPUT_CACHE_MB=str(limit_mb))
    assert out.returncode == 0, out.stderr
    held = int(out.stdout.split()[-1])
    assert held <= limit_mb * MIB
    if limit_mb:
        assert held > 0


def test_bad_limit_is_a_clear_error():
    out = _run(CHURN, PYDEEPCLUST_CPU_OUTPUT_CACHE_MB="lots")
    assert out.returncode != 0
    assert "PYDEEPCLUST_CPU_OUTPUT_CACHE_MB must be a whole number of MiB" in out.stderr
