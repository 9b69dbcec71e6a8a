"""Property-based fuzzing (hypothesis) of every public op against its pure-torch reference.

Each test draws shapes (zero rows and one row where the op allows them), an optional batch
dimension, float32/float64, a memory layout (contiguous, transposed view, strided slice,
permuted batch, expanded batch) and values (random, zero rows, duplicate rows, rows on a code,
ties), then runs the public wrapper under ``ops.use_backend("extension")`` and under
``ops.use_backend("reference")`` and compares outputs and gradients (``torch.autograd.grad``
with a random upstream). The yardstick ("truth") is the reference evaluated in float64 on the
same (float32-representable) values: the extension must be within
``slack * |reference - truth| + rtol[dtype] * max|truth|`` of the truth, so a float32 kernel may
round like the float32 reference but not worse; the rtol per dtype is stated per op (looser
for float32 and for the cancellation-prone Gram-form distances and their gradients). Ops
without a native kernel (linear degrees, inverse degrees, weighted centre, AMS, helpers) are
compared with a float64 restatement of their docstring.

Non-finite inputs: NaN/inf/-inf in random rows of every checked argument must give the
documented ``ValueError`` naming the argument, the row count and the first flat row, on both
backends; with the check off, the documented propagation (label -1 / NaN, NaN loss) -- never a
crash or a plausible finite answer.

Hypothesis settings: ``derandomize=True`` (CI is reproducible), ``deadline=None``,
``PYDEEPCLUST_FUZZ_EXAMPLES`` examples per test (default 30); set ``PYDEEPCLUST_FUZZ_RANDOM=1``
to draw fresh random examples instead of the fixed sequence.
"""

from __future__ import annotations

import math
import os
import re

import pytest
import torch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pydeepclust.ops as ops  # noqa: E402
from pydeepclust.ops import reference  # noqa: E402
from tests.conftest import DEVICES  # noqa: E402

EXAMPLES = int(os.environ.get("PYDEEPCLUST_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("PYDEEPCLUST_FUZZ_RANDOM"),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["float32", "float64"]
SLACK = 8.0  # the kernel may round up to this many times worse than the float32 reference
SEEDS = st.integers(0, 2**31 - 1)


def device_params(fn):
    return pytest.mark.parametrize("device", DEVICES)(fn)


def dtype_params(fn):
    return pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)(fn)


def need_kernel(op: str, device: str) -> None:
    """Skip unless the extension has ``pydeepclust::<op>`` for the device (else the
    comparison would be the reference against itself)."""
    if not ops.extension_available():
        pytest.skip("extension not built")
    if not ops.has_kernel(op, torch.device(device)):
        pytest.skip(f"no {op} kernel for {device}")


# ---------------------------------------------------------------- inputs and layouts


class Arg:
    """One tensor argument: its values (float64, on the device) and a layout.

    ``fresh(dtype, grad)`` returns ``(leaf, view)``: a new leaf in ``dtype`` holding the
    values in the storage the layout needs, and the (possibly non-contiguous) view of it with
    the values in the logical shape. Gradients are taken with respect to the leaf, so they
    pass through the view's backward too.
    """

    def __init__(self, values: torch.Tensor, layout: str = "contiguous"):
        self.values = values
        self.layout = layout
        v = values
        if layout == "transposed":
            self.storage = v.transpose(-1, -2).contiguous()
            self.build = lambda s: s.transpose(-1, -2)
        elif layout == "strided":  # every other column of a wider tensor
            wide = torch.zeros(*v.shape[:-1], 2 * v.shape[-1], dtype=v.dtype, device=v.device)
            wide[..., ::2] = v
            self.storage, self.build = wide, lambda s: s[..., ::2]
        elif layout == "strided_rows":  # every other row
            tall = torch.zeros(*v.shape[:-2], 2 * v.shape[-2], v.shape[-1], dtype=v.dtype,
                               device=v.device)
            tall[..., ::2, :] = v
            self.storage, self.build = tall, lambda s: s[..., ::2, :]
        elif layout == "batch_permuted":  # (n, B, d) storage seen as (B, n, d)
            self.storage, self.build = v.transpose(0, 1).contiguous(), lambda s: s.transpose(0, 1)
        elif layout == "expanded":  # one batch element broadcast over the batch (stride 0)
            B = v.shape[0]
            self.values = v = v[:1].expand_as(v).clone()
            self.storage, self.build = v[:1].clone(), lambda s: s.expand(B, *s.shape[1:])
        else:
            self.storage, self.build = v, lambda s: s

    def fresh(self, dtype, grad=False):
        leaf = self.storage.detach().to(dtype).clone().requires_grad_(grad)
        return leaf, self.build(leaf)


def layouts(shape, expandable=True):
    """The layouts legal for a tensor of ``shape``."""
    out = ["contiguous", "strided"]
    if len(shape) >= 2:
        out += ["transposed", "strided_rows"]
    if len(shape) == 3:
        out.append("batch_permuted")
        if expandable and shape[0] > 1:
            out.append("expanded")
    return out


def randn(shape, gen, device, scale=1.0):
    return (torch.randn(tuple(shape), generator=gen, dtype=torch.float64) * scale).to(device)


def draw_arg(data, values, expandable=True):
    return Arg(values, data.draw(st.sampled_from(layouts(tuple(values.shape), expandable)),
                                 label="layout"))


def draw_batch(data, max_b=3):
    """() or (B,) with 1 <= B <= max_b."""
    return data.draw(st.sampled_from([(), (1,), (max_b,), (2,)]), label="batch")



# ---------------------------------------------------------------- running and comparing


class Outcome:
    def __init__(self, outputs=None, grads=None, error=None):
        self.outputs, self.grads, self.error = outputs, grads, error


def run(fn, args, dtype, backend, *, grad=(), upstream_seed=0, upstream_mask=None):
    """Call ``fn(*views)`` under ``backend``; with ``grad`` (indices into args), also the
    gradients of ``sum <upstream, output>`` over the floating outputs w.r.t. those leaves.

    Returns an :class:`Outcome`; a ValueError/TypeError from the wrapper is captured.
    """
    leaves, views = [], []
    for i, a in enumerate(args):
        if isinstance(a, Arg):
            leaf, view = a.fresh(dtype, i in grad)
        else:
            leaf = view = a
        leaves.append(leaf)
        views.append(view)
    with ops.use_backend(backend):
        try:
            out = fn(*views)
        except (ValueError, TypeError) as exc:
            return Outcome(error=exc)
        outs = out if isinstance(out, tuple) else (out,)
        grads = None
        if grad:
            g = torch.Generator().manual_seed(upstream_seed)
            floating = [o for o in outs if o.dtype.is_floating_point and o.requires_grad]
            ups = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.device, o.dtype)
                   for o in floating]
            if upstream_mask is not None:
                ups = [u * upstream_mask(o).to(u.dtype) for u, o in zip(ups, floating)]
            inputs = [leaves[i] for i in grad]
            if floating:
                grads = torch.autograd.grad(floating, inputs, ups, allow_unused=True)
                grads = tuple(torch.zeros_like(x) if gx is None else gx
                              for gx, x in zip(grads, inputs))
            else:
                grads = tuple(torch.zeros_like(x) for x in inputs)
    return Outcome(tuple(o.detach() for o in outs), grads)


def same_outcome_kind(ext: Outcome, ref: Outcome, what: str):
    """Both raise the same error, or neither does. Returns True when both raised."""
    if ref.error is not None or ext.error is not None:
        assert ext.error is not None and ref.error is not None, (
            f"{what}: extension {'raised ' + repr(ext.error) if ext.error else 'returned'}, "
            f"reference {'raised ' + repr(ref.error) if ref.error else 'returned'}")
        assert type(ext.error) is type(ref.error) and str(ext.error) == str(ref.error), (
            f"{what}: different errors: extension {ext.error!r}, reference {ref.error!r}")
        return True
    return False


def assert_scaled_close(got, ref, truth, rtol, what, row_mask=None, floor=1e-30):
    """``|got - truth| <= SLACK |ref - truth| + rtol max|truth|`` (max norms over the tensor),
    with the same shape, dtype and NaN/inf pattern as the reference. ``row_mask``: compare
    only those leading positions (e.g. rows whose nearest code is unambiguous)."""
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != {ref.dtype}"
    assert got.device == ref.device, f"{what}: device {got.device} != {ref.device}"
    if not got.dtype.is_floating_point:  # labels: exact where unambiguous
        if row_mask is not None:
            got, ref = got[row_mask], ref[row_mask]
        assert torch.equal(got, ref), f"{what}: {got.tolist()} != {ref.tolist()}"
        return
    got, ref, truth = got.double(), ref.double(), truth.double().to(got.device)
    if row_mask is not None:
        got, ref, truth = got[row_mask], ref[row_mask], truth[row_mask]
    assert torch.equal(torch.isnan(got), torch.isnan(ref)), f"{what}: NaN pattern differs"
    assert torch.equal(torch.isinf(got), torch.isinf(ref)), f"{what}: inf pattern differs"
    finite = torch.isfinite(ref)
    if not finite.any():
        return
    assert torch.equal(got[~finite & torch.isinf(got)], ref[~finite & torch.isinf(ref)]), \
        f"{what}: infinities of different sign"
    got, ref, truth = got[finite], ref[finite], truth[finite]
    err = (got - truth).abs().max().item()
    err_ref = (ref - truth).abs().max().item()
    scale = max(truth.abs().max().item(), floor)
    bound = SLACK * err_ref + rtol * scale
    assert err <= bound, (f"{what}: max error {err:.3g} vs truth > bound {bound:.3g} "
                          f"(reference's error {err_ref:.3g}, scale {scale:.3g}, rtol {rtol:g})")


def compare(fn, args, dtype, rtol, what, *, grad=(), grad_rtol=None, upstream_seed=0,
            upstream_mask=None, row_masks=None, floor=1e-30, grad_floor=1e-30):
    """Run extension, reference and the float64 reference ("truth") and compare all.

    ``floor`` / ``grad_floor``: the least scale of the outputs / gradients, for tensors whose
    entries are all ~0 (e.g. the gradient at rows lying on a code) where rounding noise is all
    there is to compare."""
    kw = dict(grad=grad, upstream_seed=upstream_seed, upstream_mask=upstream_mask)
    ext = run(fn, args, dtype, "extension", **kw)
    ref = run(fn, args, dtype, "reference", **kw)
    if same_outcome_kind(ext, ref, what):
        return ext, ref
    truth = ref if dtype == torch.float64 else run(fn, args, torch.float64, "reference", **kw)
    assert truth.error is None, f"{what}: float64 reference raised {truth.error!r}"
    assert len(ext.outputs) == len(ref.outputs)
    for i, (a, b, t) in enumerate(zip(ext.outputs, ref.outputs, truth.outputs)):
        mask = row_masks[i] if row_masks else None
        assert_scaled_close(a, b, t, rtol, f"{what} output {i}", row_mask=mask, floor=floor)
    if grad:
        for i, (a, b, t) in enumerate(zip(ext.grads, ref.grads, truth.grads)):
            assert_scaled_close(a, b, t, grad_rtol or rtol, f"{what} grad of arg {grad[i]}",
                                floor=grad_floor)
    return ext, ref


def rtols(dtype, f32, f64):
    return f32 if dtype == torch.float32 else f64


# ================================================================ cosine to simplex (§3a)


def simplex_case(data, device):
    """E (..., m) with zero rows, rows on a code and ties, and codes (k, m)."""
    seed = data.draw(SEEDS, label="seed")
    gen = torch.Generator().manual_seed(seed)
    k = data.draw(st.integers(2, 8), label="k")
    m = ops.code_width(k)
    batch = data.draw(st.sampled_from([(), (2,), (3,), (2, 2)]), label="batch dims")
    n = data.draw(st.sampled_from([0, 1, 2, 5, 17]), label="n")
    random_codes = data.draw(st.booleans(), label="random codes")
    codes = randn((k, m), gen, device) if random_codes else \
        ops.simplex_codes(k, dtype=torch.float64, device=device)
    scale = data.draw(st.sampled_from([1e-3, 1.0, 1e3]), label="scale")
    E = randn((*batch, n, m), gen, device, scale)
    if n:
        special = data.draw(st.lists(st.tuples(st.integers(0, n - 1),
                                               st.sampled_from(["zero", "on code", "tie"])),
                                     max_size=3), label="special rows")
        for row, kind in special:
            c = data.draw(st.integers(0, k - 1), label="code")
            if kind == "zero":
                E[..., row, :] = 0
            elif kind == "on code":
                E[..., row, :] = codes[c] * scale
            else:
                E[..., row, :] = (codes[c] + codes[(c + 1) % k]) * scale
    E = E.flatten(0, 1) if len(batch) == 2 else E  # one leading dim for the layouts
    arg = draw_arg(data, E)
    if len(batch) == 2:  # back to two batch dims, as a view of the layout's view
        inner = arg.build
        arg.build = lambda s, inner=inner: inner(s).unflatten(0, batch)
        arg.values = arg.values.unflatten(0, batch)
    return arg, codes, k


def clear_margin(E64, codes64, k, tol):
    """Rows whose best and second-best cosine differ by more than ``tol`` (zero rows too)."""
    cos, norm = reference._cosines(E64, codes64)
    if k < 2:
        return torch.ones(cos.shape[:-1], dtype=torch.bool, device=E64.device)
    top = cos.topk(2, dim=-1).values
    return ((top[..., 0] - top[..., 1]) > tol) | (norm.squeeze(-1) == 0)


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_cosine_simplex_assign_matches_reference(data, dtype, device):
    need_kernel("cosine_simplex_assign", device)
    arg, codes, k = simplex_case(data, device)
    normalize = data.draw(st.booleans(), label="normalize")
    codes_t = codes.to(dtype)
    E64 = arg.build(arg.storage.to(dtype).double())
    ok = clear_margin(E64, codes_t.double(), k, rtols(dtype, 1e-4, 1e-9))
    norms = torch.linalg.vector_norm(E64, dim=-1)
    # |d dist / d e_i| ~ 1 / |e_i|: the least natural gradient scale is 1 / max |e_i|
    grad_floor = 1 / norms.max().item() if norms.numel() and norms.max() > 0 else 1.0

    def f(E):
        return ops.cosine_simplex_assign(E, codes_t, normalize=normalize)

    compare(f, [arg], dtype, rtols(dtype, 1e-5, 1e-12), "cosine_simplex_assign",
            grad=(0,), grad_rtol=rtols(dtype, 1e-4, 1e-10), upstream_seed=1,
            upstream_mask=lambda o: ok.to(o.device), row_masks=[None, ok], floor=1.0,
            grad_floor=grad_floor)


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_soft_memberships_matches_reference(data, dtype, device):
    need_kernel("soft_memberships", device)
    arg, codes, k = simplex_case(data, device)
    codes_t = codes.to(dtype)
    ext, _ = compare(lambda E: ops.soft_memberships(E, codes_t), [arg], dtype,
                     rtols(dtype, 1e-5, 1e-12), "soft_memberships")
    m = ext.outputs[0]
    assert torch.isfinite(m).all() and (m >= 0).all()
    if m.numel():
        torch.testing.assert_close(m.sum(-1), torch.ones_like(m[..., 0]),
                                   rtol=0, atol=rtols(dtype, 1e-5, 1e-12))


@FUZZ
@given(data=st.data())
def test_average_membership_strength_matches_definition(data):
    seed = data.draw(SEEDS, label="seed")
    gen = torch.Generator().manual_seed(seed)
    n = data.draw(st.integers(1, 20), label="n")
    k = data.draw(st.integers(1, 6), label="k")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    m = torch.rand(n, k, generator=gen, dtype=torch.float64)
    m = (m / m.sum(1, keepdim=True)).to(dtype)
    labels = None
    if data.draw(st.booleans(), label="given labels"):
        labels = torch.tensor(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n),
                                        label="labels"))
    if data.draw(st.booleans(), label="transposed"):
        m = m.T.contiguous().T
    got = ops.average_membership_strength(m, labels)
    m64 = m.double()
    lab = (m64.argmax(1) if labels is None else labels).tolist()
    per = []
    for c in range(k):
        rows = [i for i in range(n) if lab[i] == c]
        per.append(sum(m64[i, c].item() for i in rows) / len(rows) if rows else 0.0)
    expected = sum(per) / k
    assert got.shape == () and got.dtype == dtype
    assert abs(got.item() - expected) <= rtols(dtype, 1e-6, 1e-14)


# ================================================================ degrees (§3b)


def degree_case(data, device, *, allow_empty=True, signed=True):
    seed = data.draw(SEEDS, label="seed")
    gen = torch.Generator().manual_seed(seed)
    batch = draw_batch(data)
    n = data.draw(st.sampled_from(([0] if allow_empty else []) + [1, 2, 6, 19]), label="n")
    d = data.draw(st.integers(1, 6), label="d")
    X = randn((*batch, n, d), gen, device)
    if not signed:
        X = X.abs() + 0.1
    if n > 1 and data.draw(st.booleans(), label="duplicate rows"):
        X[..., n - 1, :] = X[..., 0, :]
    if n and data.draw(st.booleans(), label="zero row"):
        X[..., n // 2, :] = 0
    return X, batch, n, d, gen


def draw_sigma(data, X, batch, gen):
    """A float, a 0-d / (1,) tensor (unbatched or B = 1), or a (B,) tensor, near the data scale."""
    kind = data.draw(st.sampled_from(["float", "tensor"]), label="sigma kind")
    factor = data.draw(st.sampled_from([0.3, 1.0, 3.0]), label="sigma factor")
    d = X.shape[-1]
    base = math.sqrt(2 * d) * factor
    if kind == "float":
        return base
    if batch in [(), (1,)]:
        shape = data.draw(st.sampled_from([(), (1,)]), label="sigma shape")
        return torch.full(shape, base, dtype=torch.float64, device=X.device)
    return base * (0.5 + torch.rand(batch, generator=gen, dtype=torch.float64)).to(X.device)


def cast_sigma(sigma, dtype):
    return sigma.to(dtype) if isinstance(sigma, torch.Tensor) else sigma


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_kernel_degrees_matches_reference(data, dtype, device):
    kernel = data.draw(st.sampled_from(["rbf", "linear"]), label="kernel")
    if kernel == "rbf":
        need_kernel("rbf_row_sums", device)
    X, batch, n, d, gen = degree_case(data, device)
    sigma = draw_sigma(data, X, batch, gen) if kernel == "rbf" else None
    args = [draw_arg(data, X)]
    with_y = data.draw(st.booleans(), label="with Y")
    if with_y:
        m = data.draw(st.sampled_from([0, 1, 4, 11]), label="m")
        args.append(draw_arg(data, randn((*batch, m, d), gen, device)))
    sig = cast_sigma(sigma, dtype)

    def f(X, Y=None):
        return ops.kernel_degrees(X, Y, kernel=kernel, sigma=sig)

    grad = tuple(range(len(args)))
    if kernel == "rbf":
        _, grad_floor = rbf_scales(args[0].values, args[-1].values, sigma)
        compare(f, args, dtype, rtols(dtype, 2e-5, 1e-12), "kernel_degrees rbf",
                grad=grad, grad_rtol=rtols(dtype, 1e-4, 1e-10), upstream_seed=2,
                grad_floor=grad_floor)
        return
    # linear: no native kernel; check the definition d_i = sum_j x_i . y_j in float64
    leaves = [a.fresh(dtype, True) for a in args]
    out = f(*[v for _, v in leaves])
    Xv = leaves[0][1].detach().double()
    Yv = leaves[1][1].detach().double() if with_y else Xv
    expected = (Xv @ Yv.transpose(-1, -2)).sum(-1)
    scale = max((Xv.abs() @ Yv.abs().transpose(-1, -2)).sum(-1).abs().max().item()
                if expected.numel() else 0, 1e-30)
    assert out.shape == expected.shape and out.dtype == dtype
    if out.numel():
        assert (out.double() - expected).abs().max().item() <= rtols(dtype, 1e-5, 1e-13) * scale


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_degree_weighted_kernel_matches_reference(data, dtype, device):
    need_kernel("degree_weighted_kernel", device)
    kernel = data.draw(st.sampled_from(["rbf", "linear"]), label="kernel")
    # linear degrees d_i = x_i . sum_j x_j of signed features may be ~0 or negative: those raise
    # (both backends alike) or clamp; the values are compared on positive features, where
    # D^-1 K is well conditioned.
    signed = kernel == "rbf" or data.draw(st.booleans(), label="signed")
    X, batch, n, d, gen = degree_case(data, device, signed=signed)
    sigma = cast_sigma(draw_sigma(data, X, batch, gen), dtype) if kernel == "rbf" else None
    nonpositive = data.draw(st.sampled_from(["raise", "clamp"]), label="nonpositive")
    return_kernel = data.draw(st.booleans(), label="return_kernel")
    centered = data.draw(st.booleans(), label="ksc_centered_kernel")
    arg = draw_arg(data, X)

    def f(X):
        if centered:
            return ops.ksc_centered_kernel(X, kernel, sigma, nonpositive)
        return ops.degree_weighted_kernel(X, kernel, sigma, nonpositive, 1e-6, return_kernel)

    what = f"{'ksc_centered_kernel' if centered else 'degree_weighted_kernel'} {kernel}"
    if signed and kernel == "linear":
        # compare only what both backends raise or the outputs' NaN/inf patterns and shapes
        ext = run(f, [arg], dtype, "extension")
        ref = run(f, [arg], dtype, "reference")
        if not same_outcome_kind(ext, ref, what):
            for a, b in zip(ext.outputs, ref.outputs):
                assert a.shape == b.shape and a.dtype == b.dtype
                assert torch.isfinite(a).all() == torch.isfinite(b).all()
        return
    # P = D^-1 K with degrees >= 1 (the RBF diagonal): its gradient rounds on the kernel's scale
    grad_floor = rbf_scales(arg.values, arg.values, sigma)[1] if kernel == "rbf" else 1e-30
    compare(f, [arg], dtype, rtols(dtype, 1e-5, 1e-12), what, grad=(0,),
            grad_rtol=rtols(dtype, 2e-4, 1e-10), upstream_seed=3, grad_floor=grad_floor)


@FUZZ
@given(data=st.data())
def test_inverse_degrees_and_weighted_center_match_definition(data):
    seed = data.draw(SEEDS, label="seed")
    gen = torch.Generator().manual_seed(seed)
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    batch = draw_batch(data)
    n = data.draw(st.sampled_from([0, 1, 3, 9]), label="n")
    d = data.draw(st.integers(1, 5), label="d")
    nonpositive = data.draw(st.sampled_from(["raise", "clamp"]), label="nonpositive")
    eps = data.draw(st.sampled_from([1e-6, 1e-2, 0.5]), label="eps")
    Phi = torch.rand((*batch, n, d), generator=gen, dtype=torch.float64).to(dtype)
    given_degrees = data.draw(st.booleans(), label="given degrees")
    if given_degrees:
        degrees = (torch.rand((*batch, n), generator=gen, dtype=torch.float64) * 2
                   - data.draw(st.sampled_from([0.0, 0.5]), label="shift")).to(dtype)
    else:
        degrees = (Phi.double() @ Phi.double().sum(-2).unsqueeze(-1)).squeeze(-1).to(dtype)
    d64 = degrees.double()
    bad = bool((d64 <= 0).any())
    inv = 1 / torch.where(d64 > eps, d64, torch.full_like(d64, eps)) if nonpositive == "clamp" \
        else 1 / d64
    tol = rtols(dtype, 1e-6, 1e-14)
    if nonpositive == "raise" and bad:
        with pytest.raises(ValueError, match=r"inverse_degrees: \d+ degree\(s\) are <= 0"):
            ops.inverse_degrees(degrees, nonpositive, eps)
    else:
        got = ops.inverse_degrees(degrees, nonpositive, eps)
        assert got.shape == degrees.shape and got.dtype == dtype
        assert ((got.double() - inv).abs() <= tol * inv.abs()).all()
    if n == 0:
        with pytest.raises(ValueError, match="weighted_center: Phi has no rows"):
            ops.weighted_center(Phi)
        return
    Phi_in = Phi.transpose(-1, -2).contiguous().transpose(-1, -2) \
        if data.draw(st.booleans(), label="transposed Phi") else Phi
    call = lambda: ops.weighted_center(Phi_in, degrees if given_degrees else None,  # noqa: E731
                                       nonpositive, eps)
    if nonpositive == "raise" and bad:
        with pytest.raises(ValueError, match=r"weighted_center: \d+ degree\(s\) are <= 0"):
            call()
        return
    c = call()
    expected = (inv.unsqueeze(-1) * Phi.double()).sum(-2) / inv.sum(-1, keepdim=True)
    assert c.shape == (*batch, d) and c.dtype == dtype
    assert ((c.double() - expected).abs() <= 10 * tol * Phi.double().abs().amax((-1, -2))
            .reshape(*batch, 1)).all()


# ================================================================ RBF (§3c)


def sigma64(sigma, X):
    """sigma (a float, or a (), (1,) or (B,) tensor) as a float64 tensor of X's batch shape."""
    batch = X.shape[:-2]
    sig = torch.as_tensor(sigma, dtype=torch.float64).to(X.device).reshape(-1)
    return sig.reshape(()) if batch == () else sig.expand(batch)


def rbf_scales(X, Xc, sigma, Z=None, Zc=None):
    """The scales on which the Gram-form RBF ops round, from float64 values: ``(cut, grad)``.

    ``cut = max_b sum_ij S_ij (|z_i|^2 + |w_j|^2)`` (the cut's terms before the cancellation in
    ``||z_i - w_j||^2``); ``grad`` bounds ``|dL/dx_i|`` term by term: ``3 max_i sum_j S_ij
    (|x_i| + |y_j|) / (2 sigma^2) (1 + 4 max |z|^2)`` (+ the same for Z), 3 for the upstream.
    Entries near 0 (self pairs, duplicate rows, the moment form ``s_i x_i - M_i``) round on
    these scales, not on their own size."""
    X, Xc = X.double(), Xc.double()
    if X.numel() == 0 or Xc.numel() == 0:
        return 1e-30, 1e-30
    sig = sigma64(sigma, X)
    S = reference.rbf_affinity_rows(X, Xc, sig, 0, False)
    c = (1 / (2 * sig.square())).reshape(sig.shape + (1, 1))
    xn, yn = X.norm(dim=-1), Xc.norm(dim=-1)
    grad = (c * S * (xn.unsqueeze(-1) + yn.unsqueeze(-2))).sum(-1).max().item()
    cut = 0.0
    if Z is not None:
        Z, Zc = Z.double(), Zc.double()
        zn, wn = Z.norm(dim=-1), Zc.norm(dim=-1)
        zmax = max(zn.max().item(), wn.max().item()) if Z.numel() and Zc.numel() else 0.0
        cut = (S * (zn.square().unsqueeze(-1) + wn.square().unsqueeze(-2))).sum((-1, -2)).max()
        grad = grad * (1 + 4 * zmax**2) + (S * (zn.unsqueeze(-1) + wn.unsqueeze(-2))).sum(
            -1).max().item()
        cut = cut.item()
    return max(cut, 1e-30), max(3 * grad, 1e-30)


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_rbf_affinity_matches_reference(data, dtype, device):
    need_kernel("rbf_affinity", device)
    X, batch, n, d, gen = degree_case(data, device)
    sigma = cast_sigma(draw_sigma(data, X, batch, gen), dtype)
    zero_diagonal = data.draw(st.booleans(), label="zero_diagonal")
    arg = draw_arg(data, X)
    compare(lambda X: ops.rbf_affinity(X, sigma, zero_diagonal), [arg], dtype,
            rtols(dtype, 2e-5, 1e-12), "rbf_affinity", grad=(0,),
            grad_rtol=rtols(dtype, 2e-4, 1e-10), upstream_seed=4, floor=1.0,
            grad_floor=2 * rbf_scales(arg.values, arg.values, sigma)[1])


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_rbf_ratio_cut_matches_reference(data, dtype, device):
    need_kernel("rbf_ratio_cut", device)
    X, batch, n, d, gen = degree_case(data, device)
    k = data.draw(st.integers(1, 4), label="k")
    Z = randn((*batch, n, k), gen, device)
    sigma = cast_sigma(draw_sigma(data, X, batch, gen), dtype)
    normalization = data.draw(st.sampled_from(ops.rbf.NORMALIZATIONS), label="normalization")
    zero_diagonal = data.draw(st.booleans(), label="zero_diagonal")
    return_degrees = data.draw(st.booleans(), label="return_degrees")

    def f(X, Z):
        return ops.rbf_ratio_cut(X, Z, sigma, normalization, zero_diagonal,
                                 return_degrees=return_degrees)

    # the cut sums n^2 Gram-form squared distances: cancellation-prone in float32
    args = [draw_arg(data, X), draw_arg(data, Z)]
    cut_scale, grad_floor = rbf_scales(args[0].values, args[0].values, sigma, args[1].values,
                                       args[1].values)
    if normalization != "sum":  # the normaliser is >= n ("batch") or sum_ij S_ij ("degree")
        S = reference.rbf_affinity(args[0].values, sigma64(sigma, args[0].values), zero_diagonal)
        total = S.sum((-1, -2)).min().item() if S.numel() else 1.0
        norm = max(n, 1) if normalization == "batch" else total
        cut_scale, grad_floor = cut_scale / max(norm, 1e-300), grad_floor / max(norm, 1e-300)
    compare(f, args, dtype, rtols(dtype, 1e-4, 1e-11), f"rbf_ratio_cut {normalization}",
            grad=(0, 1), grad_rtol=rtols(dtype, 5e-4, 1e-9), upstream_seed=5,
            floor=cut_scale, grad_floor=grad_floor)


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_rbf_ratio_cut_rows_matches_reference(data, dtype, device):
    need_kernel("rbf_ratio_cut_rows", device)
    Xc, batch, m, d, gen = degree_case(data, device)
    k = data.draw(st.integers(1, 3), label="k")
    arg_xc = draw_arg(data, Xc)
    arg_zc = draw_arg(data, randn((*batch, m, k), gen, device))
    Xc, Zc = arg_xc.values, arg_zc.values  # an expanded layout repeats batch element 0
    zero_diagonal = data.draw(st.booleans(), label="zero_diagonal")
    slice_of_cols = zero_diagonal or data.draw(st.booleans(), label="rows are a slice")
    if slice_of_cols:
        n = data.draw(st.integers(0, m), label="n")
        offset = data.draw(st.integers(0, m - n), label="row_offset")
        X, Z = Xc[..., offset:offset + n, :].clone(), Zc[..., offset:offset + n, :].clone()
    else:
        n = data.draw(st.sampled_from([0, 1, 5]), label="n")
        offset = data.draw(st.integers(-3, 3), label="row_offset (unused)")
        X, Z = randn((*batch, n, d), gen, device), randn((*batch, n, k), gen, device)
    sigma = cast_sigma(draw_sigma(data, Xc, batch, gen), dtype)
    args = [draw_arg(data, X), draw_arg(data, Z), arg_xc, arg_zc]

    def f(X, Z, Xc, Zc):
        return ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, sigma, offset, zero_diagonal)

    cut_scale, grad_floor = rbf_scales(*(a.values for a in args[::2]), sigma,
                                       *(a.values for a in args[1::2]))
    compare(f, args, dtype, rtols(dtype, 1e-4, 1e-11), "rbf_ratio_cut_rows", grad=(0, 1, 2, 3),
            grad_rtol=rtols(dtype, 5e-4, 1e-9), upstream_seed=6, floor=cut_scale,
            grad_floor=grad_floor)


@device_params
@FUZZ
@given(data=st.data())
def test_rbf_ratio_cut_rows_slices_add_up_to_the_square_op(data, device):
    """The docstring's data-parallel identity: the cuts and degrees of the row slices of a
    batch (each against the whole batch) are the square op's, on either backend."""
    need_kernel("rbf_ratio_cut_rows", device)
    X, batch, n, d, gen = degree_case(data, device, allow_empty=False)
    Z = randn((*batch, n, 2), gen, device)
    sigma = draw_sigma(data, X, batch, gen)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=3), label="cuts")))
    bounds = [0, *cuts, n]
    zero_diagonal = data.draw(st.booleans(), label="zero_diagonal")
    for backend in ("extension", "reference"):
        with ops.use_backend(backend):
            whole, deg = ops.rbf_ratio_cut(X, Z, sigma, "sum", zero_diagonal, return_degrees=True)
            parts = [ops.rbf_ratio_cut_rows(X[..., a:b, :], Z[..., a:b, :], X, Z, sigma, a,
                                            zero_diagonal) for a, b in zip(bounds, bounds[1:])]
        total = sum(p[0] for p in parts)
        # the square op's self pairs are exactly 0, the rows op's Gram-form ones round: compare
        # on the scale of sum_ij S_ij (|z_i|^2 + |z_j|^2) <= 2 n^2 max |z|^2
        atol = 1e-12 * 2 * n * n * Z.square().sum(-1).max().item()
        torch.testing.assert_close(total, whole, rtol=1e-11, atol=atol,
                                   msg=lambda m: f"{backend}: {m}")
        torch.testing.assert_close(torch.cat([p[1] for p in parts], -1), deg, rtol=1e-12,
                                   atol=1e-12, msg=lambda m: f"{backend}: {m}")


# ================================================================ Cayley (§3d)


@device_params
@dtype_params
@FUZZ
@given(data=st.data())
def test_cayley_retraction_matches_reference(data, dtype, device):
    need_kernel("cayley_retraction", device)
    seed = data.draw(SEEDS, label="seed")
    gen = torch.Generator().manual_seed(seed)
    batch = draw_batch(data)
    p = data.draw(st.integers(0, 6), label="p")
    n = data.draw(st.integers(max(p, 1), 24), label="n")
    X = torch.linalg.qr(randn((*batch, n, p), gen, "cpu")).Q.to(device)
    if batch and data.draw(st.booleans(), label="n = 0 matrices"):
        X, n, p = X[..., :0, :0], 0, 0
    G = randn(X.shape, gen, device, data.draw(st.sampled_from([1e-3, 1.0, 10.0]), label="|G|"))
    tau_kind = data.draw(st.sampled_from(["float", "0-d", "(B,)"] if batch else ["float", "0-d"]),
                         label="tau kind")
    tau = data.draw(st.sampled_from([1e-3, 0.3, 2.0]), label="tau")
    args = [draw_arg(data, X, expandable=False), draw_arg(data, G)]
    if tau_kind == "0-d":
        args.append(Arg(torch.tensor(tau, dtype=torch.float64, device=device)))
    elif tau_kind == "(B,)":
        args.append(Arg(tau * (0.5 + torch.rand(batch, generator=gen, dtype=torch.float64))
                        .to(device)))

    def f(X, G, t=tau):
        return ops.cayley_retraction(X, G, t)

    grad = tuple(range(len(args)))
    # ||W|| tau up to ~20 * sqrt(p): the solve's conditioning, hence looser float32 gradients
    ext, _ = compare(f, args, dtype, rtols(dtype, 2e-5, 1e-12), "cayley_retraction", grad=grad,
                     grad_rtol=rtols(dtype, 5e-4, 1e-10), upstream_seed=7, grad_floor=1e-3)
    Y = ext.outputs[0]
    if Y.numel():
        assert ops.orthonormality_error(Y).max() <= rtols(dtype, 1e-4, 1e-11)


@FUZZ
@given(data=st.data())
def test_helpers_match_definitions(data):
    """simplex_codes / code_width / max_nearest_distance / orthonormality_error /
    default_orthonormality_tol / sample_bandwidths: their documented properties."""
    k = data.draw(st.integers(2, 12), label="k")
    codes = ops.simplex_codes(k, dtype=torch.float64)
    assert codes.shape == (k, ops.code_width(k)) == (k, max(k - 1, 2))
    gram = codes @ codes.T
    expected = torch.full((k, k), -1.0 / (k - 1), dtype=torch.float64).fill_diagonal_(1.0)
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-12)
    seed = data.draw(SEEDS, label="seed")
    gen = torch.Generator().manual_seed(seed)
    E = torch.randn(50, codes.shape[1], generator=gen, dtype=torch.float64)
    dist, _ = ops.cosine_simplex_assign(E, codes, normalize=False)
    assert dist.max() <= ops.max_nearest_distance(k) + 1e-12
    # orthonormality_error = max |X^T X - I|
    shape = data.draw(st.sampled_from([(5, 3), (2, 4, 4), (3, 0)]), label="shape")
    A = torch.randn(shape, generator=gen, dtype=torch.float64)
    err = ops.orthonormality_error(A)
    eye = torch.eye(shape[-1], dtype=torch.float64)
    want = (A.transpose(-1, -2) @ A - eye).abs().flatten(-2).amax(-1) if shape[-1] else \
        torch.zeros(shape[:-2], dtype=torch.float64)
    torch.testing.assert_close(err, want)
    assert ops.default_orthonormality_tol(torch.float32) > ops.default_orthonormality_tol(
        torch.float64) > 0
    # sample_bandwidths: seeded, one per batch element, factor in [low, high] of the median
    low = data.draw(st.sampled_from([0.25, 0.5, 1.0]), label="low")
    high = low * data.draw(st.sampled_from([1.0, 2.0, 4.0]), label="high/low")
    Xb = torch.randn(2, 12, 3, generator=gen, dtype=torch.float64)
    draw = lambda: ops.sample_bandwidths(  # noqa: E731
        Xb, low, high, generator=torch.Generator().manual_seed(seed))
    s1, s2 = draw(), draw()
    assert torch.equal(s1, s2) and s1.shape == (2,)
    iu = torch.triu_indices(12, 12, 1)
    med = torch.stack([torch.cdist(x, x)[iu[0], iu[1]].median() for x in Xb])
    ratio = s1 / med
    assert ((ratio >= low * (1 - 1e-12)) & (ratio <= high * (1 + 1e-12))).all()


# ================================================================ NaN / inf placement


def place_non_finite(data, t: torch.Tensor, label: str):
    """Put NaN, inf or -inf into 1-3 random rows (last dim = features) of ``t`` (in place);
    return the sorted flat indices of the bad rows."""
    rows = t.reshape(-1, t.shape[-1]).shape[0]
    picks = data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=3, unique=True),
                      label=f"bad rows of {label}")
    assert t.is_contiguous()
    flat = t.view(-1, t.shape[-1])
    for r in picks:
        col = data.draw(st.integers(0, t.shape[-1] - 1), label="column")
        flat[r, col] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="value")
    return sorted(picks)


def non_finite_message(fn, name, bad):
    return (rf"^{fn}: {name} has NaN or inf in {len(bad)} row\(s\) \(first flat row index: "
            rf"{bad[0]}\); clean or drop them first$")


NAN_CASES = ["cosine_simplex_assign", "soft_memberships", "kernel_degrees rbf X",
             "kernel_degrees rbf Y", "kernel_degrees linear X", "kernel_degrees linear Y",
             "degree_weighted_kernel rbf", "degree_weighted_kernel linear",
             "ksc_centered_kernel", "weighted_center", "rbf_affinity", "rbf_ratio_cut",
             "rbf_ratio_cut_rows X", "rbf_ratio_cut_rows X_cols", "average_membership_strength"]


@pytest.mark.parametrize("case", NAN_CASES)
@device_params
@settings(FUZZ, max_examples=max(EXAMPLES // 3, 5))
@given(data=st.data())
def test_non_finite_rows_raise_naming_the_argument(data, case, device):
    """check_finite on (the default): a ValueError naming the argument, the number of bad rows
    and the first one, on both backends -- never a crash, a hang or a finite answer."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    gen = torch.Generator().manual_seed(data.draw(SEEDS, label="seed"))
    batch = draw_batch(data)
    n = data.draw(st.integers(1, 7), label="n")
    d = data.draw(st.integers(1, 4), label="d")
    X = torch.rand((*batch, n, d), generator=gen, dtype=torch.float64).to(dtype=dtype,
                                                                          device=device)
    Y = torch.rand((*batch, n + 2, d), generator=gen, dtype=torch.float64).to(dtype=dtype,
                                                                              device=device)
    op = case.split()[0]
    name, target = {"X_cols": ("X_cols", Y), "Y": ("Y", Y)}.get(case.split()[-1], ("X", X))
    if op in ("cosine_simplex_assign", "soft_memberships"):
        k = data.draw(st.integers(2, 5), label="k")
        codes = ops.simplex_codes(k, dtype=dtype, device=device)
        X = torch.rand((*batch, n, codes.shape[1]), generator=gen, dtype=torch.float64).to(
            dtype=dtype, device=device)
        name, target = "E", X
        call = lambda: getattr(ops, op)(X, codes)  # noqa: E731
    elif op == "average_membership_strength":
        X = X.reshape(-1, d)
        name, target = "memberships", X
        call = lambda: ops.average_membership_strength(X)  # noqa: E731
    elif op == "kernel_degrees":
        kernel = case.split()[1]
        call = lambda: ops.kernel_degrees(  # noqa: E731
            X, Y if name == "Y" else None, kernel=kernel, sigma=1.0 if kernel == "rbf" else None)
    elif op == "degree_weighted_kernel":
        kernel = case.split()[1]
        call = lambda: ops.degree_weighted_kernel(  # noqa: E731
            X, kernel, 1.0 if kernel == "rbf" else None, nonpositive="clamp")
    elif op == "ksc_centered_kernel":
        call = lambda: ops.ksc_centered_kernel(X, "rbf", 1.0)  # noqa: E731
    elif op == "weighted_center":
        name = "Phi"
        call = lambda: ops.weighted_center(X, nonpositive="clamp")  # noqa: E731
    elif op == "rbf_affinity":
        call = lambda: ops.rbf_affinity(X, 1.0)  # noqa: E731
    elif op == "rbf_ratio_cut":
        Z = torch.rand_like(X)
        call = lambda: ops.rbf_ratio_cut(X, Z, 1.0)  # noqa: E731
    else:
        Xc, Zc = Y, torch.rand_like(Y)
        call = lambda: ops.rbf_ratio_cut_rows(X, torch.rand_like(X), Xc, Zc, 1.0, 1)  # noqa: E731
    bad = place_non_finite(data, target, name)
    for backend in ("extension", "reference"):
        if backend == "extension" and not ops.extension_available():
            continue
        with ops.use_backend("auto" if backend == "extension" else backend):
            with pytest.raises(ValueError, match=non_finite_message(op, name, bad)):
                call()


@device_params
@FUZZ
@given(data=st.data())
def test_non_finite_rows_unchecked_propagate(data, device):
    """check_finite=False / unchecked arguments: the documented propagation on both backends.

    cosine_simplex_assign: bad rows get label -1 and a NaN distance, the others are unchanged;
    soft_memberships: bad rows NaN; rbf_ratio_cut / rbf_ratio_cut_rows: NaN/inf in Z (or
    Z_cols) makes that batch element's loss NaN or inf (even where every affinity of the bad
    row underflowed to 0); kernel_degrees (linear): a NaN row makes
    every degree of its batch element NaN; cayley_retraction: NaN/inf in X or G gives a
    non-finite Y (and check_orthonormal names X)."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    gen = torch.Generator().manual_seed(data.draw(SEEDS, label="seed"))
    B = data.draw(st.integers(1, 3), label="B")
    n = data.draw(st.integers(1, 7), label="n")
    opts = dict(dtype=dtype, device=device)
    which = data.draw(st.sampled_from(["assign", "memberships", "cut", "cut_rows", "degrees",
                                       "cayley"]), label="op")
    backends = ["auto", "reference"] if ops.extension_available() else ["reference"]
    if which in ("assign", "memberships"):
        k = data.draw(st.integers(2, 5), label="k")
        codes = ops.simplex_codes(k, **opts)
        E = torch.randn(B, n, codes.shape[1], generator=gen, dtype=torch.float64).to(**opts)
        clean = E.clone()
        bad = place_non_finite(data, E, "E")
        bad_mask = torch.zeros(B * n, dtype=torch.bool, device=device)
        bad_mask[bad] = True
        bad_mask = bad_mask.view(B, n)
        for backend in backends:
            with ops.use_backend(backend):
                if which == "assign":
                    dist, label = ops.cosine_simplex_assign(E, codes, check_finite=False)
                    cdist_, clabel = ops.cosine_simplex_assign(clean, codes)
                    assert (label[bad_mask] == -1).all() and torch.isnan(dist[bad_mask]).all()
                    assert torch.equal(dist[~bad_mask], cdist_[~bad_mask])
                    assert torch.equal(label[~bad_mask], clabel[~bad_mask])
                else:
                    m = ops.soft_memberships(E, codes, check_finite=False)
                    cm = ops.soft_memberships(clean, codes)
                    assert torch.isnan(m[bad_mask]).all(), backend
                    assert torch.equal(m[~bad_mask], cm[~bad_mask])
    elif which in ("cut", "cut_rows"):
        X = torch.randn(B, n, 3, generator=gen, dtype=torch.float64).to(**opts)
        Z = torch.randn(B, n, 2, generator=gen, dtype=torch.float64).to(**opts)
        target = Z
        if which == "cut_rows":
            Xc = torch.randn(B, n + 2, 3, generator=gen, dtype=torch.float64).to(**opts)
            Zc = torch.randn(B, n + 2, 2, generator=gen, dtype=torch.float64).to(**opts)
            target = data.draw(st.sampled_from([Z, Zc]), label="Z or Z_cols")
        far = data.draw(st.booleans(), label="bad row far away (all its affinities underflow)")
        bad = place_non_finite(data, target, "Z")
        if far:
            src = X if target is Z else Xc
            src.view(-1, 3)[bad] += 1e4
        elements = sorted({r // target.shape[1] for r in bad})
        for backend in backends:
            with ops.use_backend(backend):
                if which == "cut":
                    norm = data.draw(st.sampled_from(ops.rbf.NORMALIZATIONS), label="norm")
                    loss = ops.rbf_ratio_cut(X, Z, 1.0, norm)
                else:
                    loss, _ = ops.rbf_ratio_cut_rows(X, Z, Xc, Zc, 1.0, 1, zero_diagonal=False)
                for b in range(B):
                    assert torch.isfinite(loss[b]).item() == (b not in elements), \
                        (backend, b, loss)
    elif which == "degrees":
        X = torch.rand(B, n, 3, generator=gen, dtype=torch.float64).to(**opts)
        row = data.draw(st.integers(0, B * n - 1), label="NaN row")
        X.view(-1, 3)[row, data.draw(st.integers(0, 2), label="col")] = math.nan
        for backend in backends:
            with ops.use_backend(backend):
                deg = ops.kernel_degrees(X, kernel="linear", check_finite=False)
                assert torch.isnan(deg[row // n]).all() and torch.isfinite(
                    deg[torch.arange(B, device=device) != row // n]).all()
    else:
        p = data.draw(st.integers(1, min(n, 4)), label="p")
        X = torch.linalg.qr(torch.randn(B, n, p, generator=gen, dtype=torch.float64)).Q.to(
            **opts).contiguous()
        G = torch.randn(B, n, p, generator=gen, dtype=torch.float64).to(**opts)
        in_x = data.draw(st.booleans(), label="in X")
        bad = place_non_finite(data, X if in_x else G, "X" if in_x else "G")
        elements = sorted({r // n for r in bad})
        for backend in backends:
            with ops.use_backend(backend):
                Y = ops.cayley_retraction(X, G, 0.3)
                for b in range(B):
                    assert torch.isfinite(Y[b]).all().item() == (b not in elements), (backend, b)
                if in_x:
                    with pytest.raises(ValueError, match="X must have orthonormal columns"):
                        ops.cayley_retraction(X, G, 0.3, check_orthonormal=True)


@pytest.mark.parametrize("op", ["rbf_affinity", "rbf_ratio_cut", "rbf_ratio_cut_rows",
                                "kernel_degrees", "degree_weighted_kernel"])
@FUZZ
@given(data=st.data())
def test_bad_sigma_tensor_is_named(data, op):
    """A sigma tensor with a value <= 0, NaN or inf: ValueError 'sigma must be > 0 and finite'."""
    B = data.draw(st.integers(2, 4), label="B")
    X = torch.rand(B, 5, 3, dtype=torch.float64)
    sigma = torch.ones(B, dtype=torch.float64)
    sigma[data.draw(st.integers(0, B - 1), label="where")] = data.draw(
        st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]), label="value")
    calls = {
        "rbf_affinity": lambda: ops.rbf_affinity(X, sigma),
        "rbf_ratio_cut": lambda: ops.rbf_ratio_cut(X, X[..., :2], sigma),
        "rbf_ratio_cut_rows": lambda: ops.rbf_ratio_cut_rows(X, X, X, X, sigma),
        "kernel_degrees": lambda: ops.kernel_degrees(X, kernel="rbf", sigma=sigma),
        "degree_weighted_kernel": lambda: ops.degree_weighted_kernel(X, "rbf", sigma),
    }
    for backend in (["auto"] if ops.extension_available() else []) + ["reference"]:
        with ops.use_backend(backend):
            with pytest.raises(ValueError, match=re.escape(f"{op}: sigma must be > 0 and finite")):
                calls[op]()


# ================================================================ bugs found by fuzzing (fixed)


def test_inverse_degrees_clamp_does_not_hide_nan():
    """The clamp once sent NaN to eps (torch.where(d > eps, d, eps)): a silently finite
    weight."""
    got = ops.inverse_degrees(torch.tensor([math.nan, 2.0], dtype=torch.float64), "clamp", 1e-6)
    assert torch.isnan(got[0]), f"got {got.tolist()}"


def test_weighted_center_clamp_does_not_hide_nan_degrees():
    """The same clamp once weighted a NaN degree's row by 1/eps: a finite centre."""
    Phi = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    degrees = torch.tensor([math.nan, 1.0], dtype=torch.float64)
    try:
        c = ops.weighted_center(Phi, degrees, nonpositive="clamp")
    except ValueError:
        return
    assert not torch.isfinite(c).all(), f"got {c.tolist()}"


def test_reference_soft_memberships_raises_on_nan_rows():
    """The reference once took a row holding NaN for a zero row (a NaN norm fails norm > 0) and
    gave it uniform memberships, so the NaN check passed."""
    E = torch.tensor([[math.nan, 0.5]])
    with ops.use_backend("reference"):
        with pytest.raises(ValueError, match=non_finite_message("soft_memberships", "E", [0])):
            ops.soft_memberships(E, ops.simplex_codes(2))


def test_ksc_centered_kernel_names_itself_in_the_non_finite_error():
    """It once named degree_weighted_kernel, the function it calls."""
    X = torch.rand(4, 3)
    X[1, 1] = math.nan
    with pytest.raises(ValueError, match=non_finite_message("ksc_centered_kernel", "X", [1])):
        ops.ksc_centered_kernel(X, "rbf", 1.0)
