"""Optimisers: :class:`CayleyAdam` for parameters with orthonormal columns (Stiefel manifold)."""

from pydeepclust.optim.cayley_adam import CayleyAdam, stiefel_one_norm

__all__ = ["CayleyAdam", "stiefel_one_norm"]
