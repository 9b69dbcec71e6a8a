"""Fused ops for deep clustering, with pure-torch fallbacks.

Each public function runs the native kernel (``torch.ops.pydeepclust.*``) when
the extension has one for the input's device, else the reference in
:mod:`pydeepclust.ops.reference`. See :func:`backend`, :func:`use_backend`.
"""

from pydeepclust.ops._backend import (
    BACKENDS,
    backend,
    build_info,
    extension_available,
    has_kernel,
    set_backend,
    use_backend,
)
from pydeepclust.ops.simplex import (
    average_membership_strength,
    code_width,
    cosine_simplex_assign,
    max_nearest_distance,
    simplex_codes,
    soft_memberships,
)
from pydeepclust.ops.rbf import (
    rbf_affinity,
    rbf_ratio_cut,
    sample_bandwidths,
)

__all__ = [
    "BACKENDS",
    "average_membership_strength",
    "backend",
    "build_info",
    "code_width",
    "cosine_simplex_assign",
    "extension_available",
    "has_kernel",
    "max_nearest_distance",
    "set_backend",
    "simplex_codes",
    "soft_memberships",
    "use_backend",
    # RBF affinity and ratio cut
    "rbf_affinity",
    "rbf_ratio_cut",
    "sample_bandwidths",
]

# Degree-weighted kernels and streaming degrees (DESIGN §3b).
from pydeepclust.ops.degree import (  # noqa: E402
    degree_weighted_kernel,
    inverse_degrees,
    kernel_degrees,
    ksc_centered_kernel,
    weighted_center,
)

__all__ += [
    "degree_weighted_kernel",
    "inverse_degrees",
    "kernel_degrees",
    "ksc_centered_kernel",
    "weighted_center",
]

# Cayley retraction (DESIGN §3d)
from pydeepclust.ops.cayley import (  # noqa: E402
    cayley_retraction,
    default_orthonormality_tol,
    orthonormality_error,
)

__all__ += ["cayley_retraction", "default_orthonormality_tol", "orthonormality_error"]
