"""Cosine-to-simplex assignment, soft memberships and AMS: kernels vs references."""


import numpy as np
import pytest
import torch

import pydeepclust.ops as ops
from pydeepclust.ops import reference
from tests.conftest import needs_extension, tolerances



def scores(n, k, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, ops.code_width(k), generator=g, dtype=dtype).to(device)


def clear_margin(E, codes, dtype):
    """Rows whose best and second-best cosines differ enough for labels to be unambiguous."""
    cos, _ = reference._cosines(E.double(), codes.double())
    if cos.shape[-1] < 2:
        return torch.ones(cos.shape[:-1], dtype=torch.bool, device=E.device)
    top = cos.topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]) > (1e-4 if dtype == torch.float32 else 1e-10)


# ---------------------------------------------------------------- codes


@pytest.mark.parametrize("k", [2, 3, 4, 10, 50, 100])
def test_simplex_codes_are_a_regular_simplex(k):
    codes = ops.simplex_codes(k, dtype=torch.float64)
    assert codes.shape == (k, ops.code_width(k))
    gram = codes @ codes.T
    expected = torch.full((k, k), -1.0 / (k - 1), dtype=torch.float64)
    expected.fill_diagonal_(1.0)
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(codes.sum(0), torch.zeros(codes.shape[1], dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_simplex_codes_k2_uses_two_score_dims():
    assert ops.simplex_codes(2).tolist() == [[1.0, 0.0], [-1.0, 0.0]]


@pytest.mark.parametrize("k", [2, 3, 10])
def test_max_nearest_distance_is_attained_and_never_exceeded(k):
    codes = ops.simplex_codes(k, dtype=torch.float64)
    E = torch.randn(20000, codes.shape[1], dtype=torch.float64)
    dist, _ = ops.cosine_simplex_assign(E, codes, normalize=False)
    bound = ops.max_nearest_distance(k)
    assert dist.max() <= bound + 1e-12
    worst = torch.tensor([[0.0, 1.0]], dtype=torch.float64) if k == 2 else -codes[:1]
    d, _ = ops.cosine_simplex_assign(worst, codes)  # normalised: exactly 1
    torch.testing.assert_close(d, torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("k", [1, 0, -3, 2.5, True])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k"):
        ops.simplex_codes(k)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.bool])
def test_codes_only_in_the_supported_float_dtypes(dtype):
    with pytest.raises(TypeError, match="simplex_codes: dtype must be torch.float32 or"):
        ops.simplex_codes(3, dtype=dtype)


# ---------------------------------------------------------------- assignment


@pytest.mark.parametrize("n", [0, 1, 7, 100_000])
@pytest.mark.parametrize("k", [2, 3, 10, 50])
def test_assign_matches_reference(n, k, dtype, device):
    if n == 100_000 and k == 50 and device.type == "cpu" and dtype == torch.float64:
        n = 30_000  # keep the float64 reference's (n, k) temporaries small
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    E = scores(n, k, dtype, device)
    with ops.use_backend("auto"):
        dist, label = ops.cosine_simplex_assign(E, codes)
    ref_dist, ref_label = reference.cosine_simplex_assign(E, codes, 1 / ops.max_nearest_distance(k))
    rtol, atol = tolerances(dtype)
    assert dist.shape == (n,) and label.shape == (n,) and label.dtype == torch.int64
    torch.testing.assert_close(dist, ref_dist, rtol=rtol, atol=atol)
    ok = clear_margin(E, codes, dtype)
    assert torch.equal(label[ok], ref_label[ok])


def test_assign_non_contiguous_and_batched(dtype, device):
    k = 10
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    wide = torch.randn(500, 3 * ops.code_width(k), dtype=dtype, device=device)
    cases = {
        "column slice": wide[:, : ops.code_width(k)],
        "strided columns": wide[:, ::3],
        "transposed": torch.randn(ops.code_width(k), 300, dtype=dtype, device=device).T,
        "batched": torch.randn(4, 6, ops.code_width(k), dtype=dtype, device=device),
        "batched strided": torch.randn(4, 6, 2 * ops.code_width(k), dtype=dtype,
                                        device=device)[..., ::2].transpose(0, 1),
    }
    for name, E in cases.items():
        assert name == "batched" or not E.is_contiguous()
        dist, label = ops.cosine_simplex_assign(E, codes)
        ref_dist, ref_label = ops.cosine_simplex_assign(E.contiguous(), codes)
        with ops.use_backend("reference"):
            ref_dist2, _ = ops.cosine_simplex_assign(E, codes)
        assert dist.shape == E.shape[:-1], name
        torch.testing.assert_close(dist, ref_dist, msg=name)
        torch.testing.assert_close(dist, ref_dist2, msg=name)
        assert torch.equal(label, ref_label), name


def test_assign_gradient_matches_reference(dtype, device):
    k = 10
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    E = scores(2000, k, dtype, device).requires_grad_()
    weights = torch.rand(2000, dtype=dtype, device=device)
    dist, _ = ops.cosine_simplex_assign(E, codes)
    (grad,) = torch.autograd.grad((dist * weights).sum(), E)
    with ops.use_backend("reference"):
        ref_dist, _ = ops.cosine_simplex_assign(E, codes)
    (ref_grad,) = torch.autograd.grad((ref_dist * weights).sum(), E)
    ok = clear_margin(E.detach(), codes, dtype)
    rtol, atol = tolerances(dtype)
    torch.testing.assert_close(grad[ok], ref_grad[ok], rtol=rtol * 10, atol=atol * 10)


@pytest.mark.parametrize("n", [1, 31, 33, 100])
def test_row_blocks_at_large_k_match_reference(n, dtype, device):
    # The CPU kernels take rows in blocks of 32 (float) / 16 (double) SIMD lanes: full and
    # partial blocks, strided rows, zero and non-finite rows, at a width of 49 (k = 50).
    k = 50
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    wide = torch.randn(n, 2 * ops.code_width(k), dtype=dtype, device=device)
    E = wide[:, ::2]
    E[0] = 0
    if n > 2:
        E[2, 5] = float("inf")
    dist, label = ops.cosine_simplex_assign(E, codes, check_finite=False)
    ref_dist, ref_label = reference.cosine_simplex_assign(E, codes, 1 / ops.max_nearest_distance(k))
    rtol, atol = tolerances(dtype)
    torch.testing.assert_close(dist, ref_dist, rtol=rtol, atol=atol, equal_nan=True)
    ok = clear_margin(E, codes, dtype) | ~torch.isfinite(E).all(-1)
    assert torch.equal(label[ok], ref_label[ok])
    m = ops.soft_memberships(E, codes, check_finite=False)
    finite = torch.isfinite(E).all(-1)
    torch.testing.assert_close(m[finite], reference.soft_memberships(E, codes)[finite],
                               rtol=rtol * 10, atol=atol * 10)
    assert torch.isnan(m[~finite]).all()


def test_assign_gradcheck_at_large_k(device, backend):
    codes = ops.simplex_codes(50, dtype=torch.float64, device=device)
    E = scores(37, 50, torch.float64, device, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda e: ops.cosine_simplex_assign(e, codes)[0], (E,))


@pytest.mark.parametrize("k", [2, 3, 7])
def test_assign_gradcheck(k, device, backend):
    codes = ops.simplex_codes(k, dtype=torch.float64, device=device)
    E = scores(25, k, torch.float64, device, seed=k).requires_grad_()
    assert torch.autograd.gradcheck(lambda e: ops.cosine_simplex_assign(e, codes)[0], (E,))
    # a batched, non-contiguous input too
    wide = torch.randn(3, 4, 2 * codes.shape[1], dtype=torch.float64, device=device)
    Eb = wide[..., ::2].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda e: ops.cosine_simplex_assign(e, codes)[0], (Eb,))


def test_zero_rows_give_finite_values_and_zero_gradient(dtype, device, backend):
    k = 5
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    E = scores(6, k, dtype, device)
    E[[1, 4]] = 0
    E.requires_grad_()
    dist, label = ops.cosine_simplex_assign(E, codes)
    assert torch.isfinite(dist).all()
    assert dist[1].item() == pytest.approx(1 / ops.max_nearest_distance(k))
    assert label[1].item() == 0 and label[4].item() == 0
    (grad,) = torch.autograd.grad(dist.sum(), E)
    assert torch.isfinite(grad).all()
    assert torch.count_nonzero(grad[[1, 4]]) == 0
    assert torch.count_nonzero(grad[[0, 2, 3, 5]].abs().sum(1)) == 4
    m = ops.soft_memberships(E.detach(), codes)
    torch.testing.assert_close(m[1], torch.full((k,), 1 / k, dtype=dtype, device=device))


def test_nan_rows_raise_naming_the_row(device, backend):
    codes = ops.simplex_codes(3, device=device)
    E = torch.randn(10, 2, device=device)
    E[7, 1] = float("nan")
    with pytest.raises(ValueError, match=r"E has NaN or inf in 1 row.*7"):
        ops.cosine_simplex_assign(E, codes)
    E[7, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        ops.soft_memberships(E, codes)
    dist, label = ops.cosine_simplex_assign(E, codes, check_finite=False)
    assert label[7] == -1 and torch.isnan(dist[7]) and torch.isfinite(dist[:7]).all()


@needs_extension
def test_raw_op_marks_non_finite_rows(device):
    codes = ops.simplex_codes(4, device=device)
    E = torch.randn(5, 3, device=device)
    E[2, 0] = float("nan")
    E[3, 2] = -float("inf")
    dist, label = torch.ops.pydeepclust.cosine_simplex_assign(E, codes, 1.0)
    assert label.tolist()[2:4] == [-1, -1]
    assert torch.isnan(dist[2:4]).all() and torch.isfinite(dist[[0, 1, 4]]).all()


@pytest.mark.parametrize(
    "E, codes, exc, match",
    [
        (torch.tensor(1.0), ops.simplex_codes(3), ValueError, "E must have at least 1"),
        (torch.randn(5, 3), ops.simplex_codes(3), ValueError, r"m = codes.shape\[1\] = 2"),
        (torch.randn(5, 2), torch.randn(2), ValueError, r"codes must be .* shape \(k, m\)"),
        (torch.randn(5, 2), torch.randn(0, 2), ValueError, "codes must be a non-empty"),
        (torch.randn(5, 2), torch.zeros(3, 2), ValueError, "codes must be finite and nonzero"),
        (torch.randn(5, 2), torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [0.0, -1.0]]),
         ValueError, "codes must be finite and nonzero"),
        # squared norms that float32 cannot hold: inf, and 0 from a nonzero code
        (torch.randn(5, 2), ops.simplex_codes(3) * 1e20, ValueError, "squared norms that"),
        (torch.randn(5, 2), ops.simplex_codes(3) * 1e-30, ValueError, "squared norms that"),
        (torch.ones(5, 2, dtype=torch.int64), ops.simplex_codes(3), TypeError, "float32 or float64"),
        (torch.randn(5, 2), ops.simplex_codes(3, device="meta"), ValueError, "same device"),
        (torch.randn(5, 2).numpy(), ops.simplex_codes(3), TypeError, "E must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("fn", [ops.cosine_simplex_assign, ops.soft_memberships])
def test_bad_input_gets_clear_error(fn, E, codes, exc, match, backend):
    with pytest.raises(exc, match=match):
        fn(E, codes)


@needs_extension
def test_raw_op_rejects_bad_input():
    codes = ops.simplex_codes(3)
    with pytest.raises(RuntimeError, match="E must have shape"):
        torch.ops.pydeepclust.cosine_simplex_assign(torch.randn(4, 5), codes, 1.0)
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.ops.pydeepclust.cosine_simplex_assign(torch.randn(4, 2).double(), codes, 1.0)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.pydeepclust.soft_memberships(torch.ones(4, 2, dtype=torch.int32), codes.int())


# ---------------------------------------------------------------- memberships and AMS


def product_form_memberships(E, codes):
    """The formula exactly as Langone et al. write it (fine for small k in float64)."""
    cos, _ = reference._cosines(E, codes)
    d = 1 - cos
    k = d.shape[-1]
    prods = torch.stack(
        [torch.prod(d[..., [j for j in range(k) if j != c]], dim=-1) for c in range(k)], dim=-1
    )
    return prods / prods.sum(-1, keepdim=True)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_memberships_follow_langone_formula(k, device, backend):
    codes = ops.simplex_codes(k, dtype=torch.float64, device=device)
    E = scores(300, k, torch.float64, device)
    m = ops.soft_memberships(E, codes)
    torch.testing.assert_close(m, product_form_memberships(E, codes), rtol=1e-12, atol=1e-12)
    _, label = ops.cosine_simplex_assign(E, codes)
    assert torch.equal(m.argmax(-1), label)  # nearest code has the largest membership


@pytest.mark.parametrize("n", [0, 1, 7, 20_000])
@pytest.mark.parametrize("k", [2, 3, 10, 50, 100])
def test_memberships_match_reference_and_are_safe_for_large_k(n, k, dtype, device):
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    E = scores(n, k, dtype, device) * 1e3
    if n:
        E[0] = codes[min(1, k - 1)] * 5  # exactly on a code: membership 1 there
    m = ops.soft_memberships(E, codes)
    ref = reference.soft_memberships(E, codes)
    rtol, atol = tolerances(dtype)
    assert m.shape == (n, k)
    assert torch.isfinite(m).all()
    torch.testing.assert_close(m, ref, rtol=rtol * 10, atol=atol * 10)
    torch.testing.assert_close(m.sum(-1), torch.ones(n, dtype=dtype, device=device))
    if n:
        assert m[0, min(1, k - 1)] > 0.99


def test_memberships_batched_non_contiguous(dtype, device):
    codes = ops.simplex_codes(4, dtype=dtype, device=device)
    E = torch.randn(3, 5, 6, dtype=dtype, device=device)[..., ::2]
    m = ops.soft_memberships(E, codes)
    assert m.shape == (3, 5, 4)
    torch.testing.assert_close(m, reference.soft_memberships(E.contiguous(), codes))


def test_average_membership_strength_table():
    m = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], dtype=torch.float64)
    # clusters from argmax: {0, 1} -> mean(0.9, 0.6) = 0.75 ; {2} -> 0.8 ; AMS = 0.775
    assert ops.average_membership_strength(m).item() == pytest.approx(0.775)
    # given labels, an empty cluster counts 0: cluster 0 gets {0,1,2}: mean(.9,.6,.2)
    labels = torch.zeros(3, dtype=torch.long)
    assert ops.average_membership_strength(m, labels).item() == pytest.approx((1.7 / 3) / 2)


def test_average_membership_strength_bad_input():
    m = torch.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="memberships must be a tensor of shape"):
        ops.average_membership_strength(m[0])
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        ops.average_membership_strength(m, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        ops.average_membership_strength(m, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="labels must be a torch tensor"):
        ops.average_membership_strength(m, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        ops.average_membership_strength(m, torch.zeros(4, dtype=torch.bool))
    with pytest.raises(TypeError, match="memberships must be float32 or float64"):
        ops.average_membership_strength(m > 0.5)
    nan_row = m.clone()
    nan_row[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"memberships has NaN or inf in 1 row\(s\)"):
        ops.average_membership_strength(nan_row)


# ---------------------------------------------------------------- torch.library / compile


@needs_extension
@pytest.mark.parametrize("n, k", [(0, 3), (1, 2), (17, 10)])
def test_opcheck(n, k, dtype, device):
    codes = ops.simplex_codes(k, dtype=dtype, device=device)
    E = scores(n, k, dtype, device)
    torch.library.opcheck(torch.ops.pydeepclust.cosine_simplex_assign, (E, codes, 1.5))
    torch.library.opcheck(
        torch.ops.pydeepclust.cosine_simplex_assign, (E.requires_grad_(), codes, 1.0)
    )
    torch.library.opcheck(torch.ops.pydeepclust.soft_memberships, (E.detach(), codes))
    label = torch.randint(0, k, (n,), device=device)
    grad = torch.randn(n, dtype=dtype, device=device)
    torch.library.opcheck(
        torch.ops.pydeepclust.cosine_simplex_assign_backward, (grad, E.detach(), codes, label, 2.0)
    )


@needs_extension
def test_torch_compile_fullgraph(device):
    codes = ops.simplex_codes(10, device=device)
    E = scores(256, 10, torch.float32, device).requires_grad_()

    def loss_fn(e):
        dist, label = ops.cosine_simplex_assign(e, codes)
        memberships = ops.soft_memberships(e.detach(), codes)
        return dist.mean(), label, memberships

    compiled = torch.compile(loss_fn, fullgraph=True, dynamic=False)
    loss, label, m = compiled(E)
    (grad,) = torch.autograd.grad(loss, E)
    ref_loss, ref_label, ref_m = loss_fn(E)
    (ref_grad,) = torch.autograd.grad(ref_loss, E)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)
    torch.testing.assert_close(m, ref_m)
    assert torch.equal(label, ref_label)


def test_cuda_kernel_registered_iff_built_with_cuda():
    info = ops.build_info()
    if not info["available"]:
        assert not ops.has_kernel("cosine_simplex_assign", "cpu")
        return
    for op in ("cosine_simplex_assign", "cosine_simplex_assign_backward", "soft_memberships"):
        assert ops.has_kernel(op, "cpu")
        assert ops.has_kernel(op, "cuda") == info["cuda"]


def test_backend_switching():
    before = ops.backend()
    with ops.use_backend("reference"):
        assert ops.backend() == "reference"
    assert ops.backend() == before
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.set_backend("fast")


def test_all_pairs_of_small_cases_agree_across_backends():
    # A table of hand-checkable cases: (row, expected label, expected cos to it)
    codes = ops.simplex_codes(3, dtype=torch.float64)
    rows = torch.cat([codes * 2, -codes, torch.zeros(1, 2)])
    expected_labels = [0, 1, 2]  # on the codes; -s_c is equidistant to the other two
    expected_dist = [0, 0, 0, 1, 1, 1, 2]  # opposite a code: the bound (1); zero row: 1 / 0.5
    for name in [b for b in ("extension", "reference") if b != "extension" or ops.extension_available()]:
        with ops.use_backend(name):
            d, l = ops.cosine_simplex_assign(rows, codes)
        assert l.tolist()[:3] == expected_labels and l.tolist()[-1] == 0, name
        assert l[3].item() in (1, 2) and l[4].item() in (0, 2) and l[5].item() in (0, 1), name
        torch.testing.assert_close(d, torch.tensor(expected_dist, dtype=torch.float64),
                                   rtol=0, atol=1e-12)
