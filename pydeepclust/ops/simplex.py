"""Cosine distance to simplex codes: GenKSC's cluster loss and soft KSC memberships."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from pydeepclust.ops import reference
from pydeepclust.ops._backend import call, extension_available
from pydeepclust.ops._checks import Deferred, check_tensor, raise_on_non_finite_rows


def code_width(k: int) -> int:
    """Width of the simplex codes for ``k`` clusters: ``k - 1``, but 2 for ``k = 2``.

    With one dimension the cosine to (+1) or (-1) is only a sign, whose gradient
    is zero; like the GenKSC authors we use (1, 0) and (-1, 0) on two score dims.
    """
    _check_k(k)
    return max(k - 1, 2)


def simplex_codes(k: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The ``k`` vertices of a regular simplex centred at the origin, shape (k, code_width(k)).

    Unit norm, pairwise cosine ``-1/(k-1)``. Built from the Helmert basis of the
    plane orthogonal to (1, ..., 1), so the codes are deterministic; for ``k >= 3``
    the first code lies in the plane of the first two score dimensions (the ones
    GenKSC plots). For ``k = 2``: (1, 0) and (-1, 0).
    """
    _check_k(k)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"simplex_codes: dtype must be torch.float32 or torch.float64, got {dtype}")
    if k == 2:
        codes = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    else:
        # Column j (0-based) of the Helmert basis: (1, .., 1, -(j+1), 0, ..) / sqrt((j+1)(j+2)).
        j = torch.arange(1, k, dtype=torch.float64)
        rows = torch.arange(k, dtype=torch.float64).unsqueeze(1)
        basis = torch.where(rows < j, 1.0, torch.where(rows == j, -j, 0.0))
        codes = basis / torch.sqrt(j * (j + 1))
        codes = codes / torch.linalg.vector_norm(codes, dim=1, keepdim=True)
    return codes.to(dtype=dtype, device=device)


def max_nearest_distance(k: int) -> float:
    """Largest possible ``min_c (1 - cos(e, s_c))`` over directions e: ``1 - 1/(k-1)``.

    It is reached opposite a vertex; for ``k = 2`` (codes (1,0), (-1,0)) it is 1,
    reached orthogonal to both codes.
    """
    _check_k(k)
    return 1.0 if k == 2 else 1.0 - 1.0 / (k - 1)


def cosine_simplex_assign(
    E: Tensor, codes: Tensor, normalize: bool = True, check_finite: bool = True
) -> tuple[Tensor, Tensor]:
    """Cosine distance of each row of ``E`` to its nearest code, and that code's index.

    Args:
        E: scores, shape (..., m); float32 or float64.
        codes: (k, m), usually :func:`simplex_codes`; cast to ``E``'s dtype.
        normalize: divide the distance by :func:`max_nearest_distance` (k) so it lies
            in [0, 1] for simplex codes, as the GenKSC authors do.
        check_finite: raise ``ValueError`` naming the rows of ``E`` that hold NaN or
            inf, and for zero or non-finite codes (skipped inside ``torch.compile``; the
            raw op marks such rows with label -1 and a NaN distance instead). Both checks
            are read back in one host synchronisation; ``False`` makes the call sync-free.

    Returns:
        ``(dist, label)`` of shape (...): ``dist`` is differentiable with respect to
        ``E`` (codes are constants); ``label`` is int64. A zero row has distance
        ``scale`` (cos = 0), label 0 and zero gradient. Ties go to the lower index.
    """
    fn = "cosine_simplex_assign"
    checks = Deferred()
    codes = _check_inputs(E, codes, fn, check_finite, checks)
    k = codes.shape[0]
    n = E.numel() // max(E.shape[-1], 1)
    scale = 1.0 / max_nearest_distance(k) if normalize else 1.0
    dist, label = call(fn, _native_assign, reference.cosine_simplex_assign, (E, codes, scale),
                       device=E.device, dtype=E.dtype, grad_inputs=(E,), sizes=(n, k),
                       dense_bytes=3 * E.element_size() * n * k)
    if check_finite:
        checks.bad_rows(label < 0, "E", fn)
        checks.run()  # the codes and the rows: one host sync
    return dist, label


def soft_memberships(E: Tensor, codes: Tensor, check_finite: bool = True) -> Tensor:
    """Soft KSC cluster memberships of each row of ``E``, shape (..., k); rows sum to 1.

    ``m_ic = prod_{j != c} d_ij / sum_l prod_{j != l} d_ij`` (Langone, Mall & Suykens
    2013) with ``d_ic = 1 - cos(e_i, s_c)``: the nearest code gets the largest
    membership. Evaluated in a form that cannot overflow or underflow for large k.
    Not differentiable (an evaluation and model-selection tool).
    """
    fn = "soft_memberships"
    checks = Deferred()
    codes = _check_inputs(E, codes, fn, check_finite, checks)
    n, k = E.numel() // max(E.shape[-1], 1), codes.shape[0]
    out = call(fn, _native_memberships, reference.soft_memberships, (E, codes),
               device=E.device, dtype=E.dtype, sizes=(n, k),
               dense_bytes=5 * E.element_size() * n * k)
    if check_finite:
        checks.bad_rows(torch.isnan(out[..., 0]), "E", fn)
        checks.run()
    return out


def _native_assign(E, codes, scale):
    return torch.ops.pydeepclust.cosine_simplex_assign(E, codes, scale)


def _native_memberships(E, codes):
    return torch.ops.pydeepclust.soft_memberships(E, codes)


def average_membership_strength(memberships: Tensor, labels: Tensor | None = None) -> Tensor:
    """Average membership strength (AMS): ``(1/k) sum_c mean_{i in cluster c} m_ic``.

    Args:
        memberships: (n, k) from :func:`soft_memberships`.
        labels: (n,) cluster of each row; defaults to the argmax membership.

    Returns a 0-d tensor in [1/k, 1]. An empty cluster contributes 0, so
    solutions that leave clusters empty score lower (as a model-selection
    criterion should).
    """
    fn = "average_membership_strength"
    if not isinstance(memberships, Tensor) or memberships.dim() != 2 or memberships.shape[1] < 1:
        raise ValueError(
            f"{fn}: memberships must be a tensor of shape (n, k), got "
            f"{getattr(memberships, 'shape', type(memberships).__name__)}"
        )
    check_tensor(memberships, "memberships", fn)
    n, k = memberships.shape
    if n == 0:
        raise ValueError(f"{fn}: memberships has no rows")
    raise_on_non_finite_rows(memberships, "memberships", fn)
    if labels is None:
        labels = memberships.argmax(dim=1)
    elif not isinstance(labels, Tensor):
        raise TypeError(f"{fn}: labels must be a torch tensor (e.g. torch.as_tensor(labels)), "
                        f"got {type(labels).__name__}")
    elif labels.shape != (n,) or labels.dtype.is_floating_point or labels.dtype == torch.bool \
            or labels.is_complex():
        raise ValueError(
            f"average_membership_strength: labels must be an integer tensor of shape ({n},), "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    elif n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"average_membership_strength: labels must lie in [0, {k})")
    own = memberships.gather(1, labels.unsqueeze(1)).squeeze(1)
    counts = torch.bincount(labels, minlength=k).to(memberships.dtype)
    sums = torch.zeros(k, dtype=memberships.dtype, device=memberships.device).index_add_(
        0, labels, own
    )
    per_cluster = torch.where(counts > 0, sums / counts.clamp_min(1), torch.zeros_like(sums))
    return per_cluster.mean()


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise ValueError(f"k (number of clusters) must be an integer >= 2, got {k!r}")


def _check_inputs(E: Tensor, codes: Tensor, fn: str, check_finite: bool,
                  checks: Deferred | None = None) -> Tensor:
    """Validate ``E`` (..., m) and ``codes`` (k, m); return codes in E's dtype. The value
    check of the codes goes to ``checks`` when given (else it syncs here)."""
    check_tensor(E, "E", fn, min_dim=1)
    if not isinstance(codes, Tensor) or codes.dim() != 2 or 0 in codes.shape:
        raise ValueError(
            f"{fn}: codes must be a non-empty tensor of shape (k, m), got "
            f"{getattr(codes, 'shape', type(codes).__name__)}"
        )
    if codes.device != E.device:
        raise ValueError(
            f"{fn}: E and codes must be on the same device, got {E.device} and {codes.device}"
        )
    if E.shape[-1] != codes.shape[1]:
        raise ValueError(
            f"{fn}: E must have shape (..., m) with m = codes.shape[1] = {codes.shape[1]} "
            f"(simplex codes for k clusters have width code_width(k)), got {tuple(E.shape)}"
        )
    if not codes.dtype.is_floating_point:
        raise TypeError(f"{fn}: codes must be a floating tensor, got {codes.dtype}")
    codes = codes if codes.dtype == E.dtype else codes.to(E.dtype)
    # k x m, tiny: a zero or non-finite code, or one whose squared norm over- or underflows
    # in E's dtype (the kernels sum it there), would make every cosine to it NaN or 0
    if check_finite and not torch.compiler.is_compiling():
        def fail():
            raise ValueError(f"{fn}: codes must be finite and nonzero, with squared norms that "
                             f"{E.dtype} can hold (neither inf nor 0), got {codes}")
        sumsq = codes.pow(2).sum(dim=1)
        failed = ~(torch.isfinite(sumsq) & (sumsq > 0)).all()
        if checks is None:
            if bool(failed):
                fail()
        else:
            checks.add(failed, fail)
    return codes


# Fake kernels (for torch.compile) and the autograd formula of the native ops.
if extension_available():

    @torch.library.register_fake("pydeepclust::cosine_simplex_assign")
    def _assign_fake(E, codes, scale):
        batch = E.shape[:-1]
        return E.new_empty(batch), E.new_empty(batch, dtype=torch.long)

    @torch.library.register_fake("pydeepclust::cosine_simplex_assign_backward")
    def _assign_backward_fake(grad_dist, E, codes, label, scale):
        return torch.empty_like(E, memory_format=torch.contiguous_format)

    @torch.library.register_fake("pydeepclust::soft_memberships")
    def _memberships_fake(E, codes):
        return E.new_empty((*E.shape[:-1], codes.shape[0]))

    def _assign_setup_context(ctx, inputs, output):
        E, codes, scale = inputs
        _, label = output
        ctx.save_for_backward(E, codes, label)
        ctx.scale = scale
        # the labels get no gradient: without this, autograd fills an int64 tensor of
        # zeros for them on every backward (1 ms at n = 1e6)
        ctx.set_materialize_grads(False)

    def _assign_backward(ctx, grad_dist, grad_label):
        E, codes, label = ctx.saved_tensors
        grad_E = None
        if ctx.needs_input_grad[0] and grad_dist is not None:
            grad_E = torch.ops.pydeepclust.cosine_simplex_assign_backward(
                grad_dist, E, codes, label, ctx.scale
            )
        return grad_E, None, None

    torch.library.register_autograd(
        "pydeepclust::cosine_simplex_assign",
        _assign_backward,
        setup_context=_assign_setup_context,
    )


__all__ = [
    "average_membership_strength",
    "code_width",
    "cosine_simplex_assign",
    "max_nearest_distance",
    "simplex_codes",
    "soft_memberships",
]
