"""Fused ops for deep clustering, with pure-torch fallbacks.

Each public function runs the native kernel (``torch.ops.pydeepclust.*``) when
the extension has one for the input's device, else the reference in
:mod:`pydeepclust.ops.reference`. See :func:`backend`, :func:`use_backend`.
"""

from pydeepclust.ops._backend import (
    BACKENDS,
    ExtensionLoadWarning,
    backend,
    build_info,
    extension_available,
    has_kernel,
    set_backend,
    use_backend,
)
from pydeepclust.ops.cayley import (
    cayley_retraction,
    default_orthonormality_tol,
    orthonormality_error,
)
from pydeepclust.ops.degree import (
    degree_weighted_kernel,
    inverse_degrees,
    kernel_degrees,
    ksc_centered_kernel,
    weighted_center,
)
from pydeepclust.ops.rbf import (
    rbf_affinity,
    rbf_ratio_cut,
    rbf_ratio_cut_rows,
    sample_bandwidths,
)
from pydeepclust.ops.simplex import (
    average_membership_strength,
    code_width,
    cosine_simplex_assign,
    max_nearest_distance,
    simplex_codes,
    soft_memberships,
)

__all__ = [
    "BACKENDS",
    "ExtensionLoadWarning",
    "backend",
    "build_info",
    "extension_available",
    "has_kernel",
    "set_backend",
    "use_backend",
    # cosine-to-simplex assignment (DESIGN §3a)
    "average_membership_strength",
    "code_width",
    "cosine_simplex_assign",
    "max_nearest_distance",
    "simplex_codes",
    "soft_memberships",
    # degree-weighted kernels and streaming degrees (§3b)
    "degree_weighted_kernel",
    "inverse_degrees",
    "kernel_degrees",
    "ksc_centered_kernel",
    "weighted_center",
    # RBF affinity and the streaming ratio cut (§3c)
    "rbf_affinity",
    "rbf_ratio_cut",
    "rbf_ratio_cut_rows",
    "sample_bandwidths",
    # Cayley retraction (§3d)
    "cayley_retraction",
    "default_orthonormality_tol",
    "orthonormality_error",
]
