"""Fake (meta) kernels and autograd formulas of the native ops.

Fake kernels let ``torch.compile`` trace the ops without running them; the
autograd formulas call the native backward ops. Nothing is registered when the
extension is absent (the references need neither).
"""

from __future__ import annotations

import torch

from pydeepclust.ops._backend import extension_available

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

    def _assign_backward(ctx, grad_dist, grad_label):
        E, codes, label = ctx.saved_tensors
        grad_E = None
        if ctx.needs_input_grad[0]:
            grad_E = torch.ops.pydeepclust.cosine_simplex_assign_backward(
                grad_dist, E, codes, label, ctx.scale
            )
        return grad_E, None, None

    torch.library.register_autograd(
        "pydeepclust::cosine_simplex_assign",
        _assign_backward,
        setup_context=_assign_setup_context,
    )
