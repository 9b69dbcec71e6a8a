"""Per-call overhead: how many ATen ops one call of each op launches (CPU, torch.profiler).

The bounds are what the code launches now (torch 2.14); an extra op or two fails the test, so
per-call host work cannot creep back unnoticed. A new torch version may change the counts of
composite ops (``isfinite`` is five ATen calls here): re-measure with ``aten_ops`` and
update the table if it does. Host syncs (``aten::_local_scalar_dense``) are bounded too:
with ``check_finite`` an op reads back all its value checks at once; without, none (the
RBF ops' CPU kernels keep their own cheap ``sigma > 0`` check: no device is involved).
"""

from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import pydeepclust.ops as ops
from tests.conftest import needs_extension

pytestmark = needs_extension


def aten_ops(fn) -> Counter:
    fn()  # warm: lazy initialisation is not per-call work
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(e.name for e in prof.events() if e.name.startswith("aten::"))


def _cases(device="cpu"):
    torch.manual_seed(0)
    codes = ops.simplex_codes(10, device=device)
    E = torch.randn(64, 9, device=device)
    Eg = E.clone().requires_grad_()
    X, Z = torch.randn(32, 5, device=device), torch.randn(32, 3, device=device)
    Q = torch.linalg.qr(torch.randn(32, 4, device=device)).Q
    G = torch.randn(32, 4, device=device)
    sigma = torch.tensor(1.0, device=device)
    # name: (call, most ATen ops, most host syncs)
    return {
        "assign": (lambda: ops.cosine_simplex_assign(E, codes, check_finite=False), 6, 0),
        "assign checked": (lambda: ops.cosine_simplex_assign(E, codes), 46, 1),
        "assign fwd+bwd": (lambda: torch.autograd.grad(
            ops.cosine_simplex_assign(Eg, codes, check_finite=False)[0].sum(), Eg), 23, 0),
        "memberships": (lambda: ops.soft_memberships(E, codes, check_finite=False), 4, 0),
        "ratio cut checked": (lambda: ops.rbf_ratio_cut(X, Z, sigma), 146, 2),
        "ratio cut": (lambda: ops.rbf_ratio_cut(X, Z, sigma, check_finite=False), 99, 1),
        "affinity checked": (lambda: ops.rbf_affinity(X, sigma), 81, 2),
        "degrees checked": (lambda: ops.kernel_degrees(X, kernel="rbf", sigma=1.0), 60, 1),
        "degrees": (lambda: ops.kernel_degrees(X, kernel="rbf", sigma=1.0, check_finite=False),
                    39, 0),
        "degree-weighted kernel": (lambda: ops.degree_weighted_kernel(X, "rbf", 1.0), 66, 1),
        "cayley": (lambda: ops.cayley_retraction(Q, G, 0.1), 15, 0),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_aten_ops_per_call(name):
    fn, most_ops, most_syncs = _cases()[name]
    with ops.use_backend("extension"):
        counts = aten_ops(fn)
    total = sum(counts.values())
    assert total <= most_ops, f"{name}: {total} ATen ops (bound {most_ops}): {dict(counts)}"
    syncs = counts["aten::_local_scalar_dense"]
    assert syncs <= most_syncs, f"{name}: {syncs} host syncs (bound {most_syncs})"


def test_expanded_gradient_not_copied():
    """The backward of dist.sum() reads the expanded gradient in place (no contiguous copy)."""
    E = torch.randn(256, 9, requires_grad=True)
    codes = ops.simplex_codes(10)
    with ops.use_backend("extension"):
        dist, _ = ops.cosine_simplex_assign(E, codes, check_finite=False)
        counts = aten_ops(lambda: torch.autograd.grad(dist.sum(), E, retain_graph=True))
    assert counts["aten::clone"] == 0 and counts["aten::contiguous"] == 0, dict(counts)


SYNC_FREE = ["assign", "assign fwd+bwd", "memberships", "ratio cut", "degrees", "cayley"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("name", SYNC_FREE)
def test_no_host_sync_on_cuda(name):
    """With check_finite=False (Cayley: without check_orthonormal) a call never waits for the
    GPU: torch's sync debug mode turns any synchronising call into an error."""
    fn = _cases("cuda")[name][0]
    with ops.use_backend("extension"):
        fn()  # warm: lazy initialisation may sync once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
