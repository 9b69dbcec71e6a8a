"""Fused ops for deep clustering, with pure-torch fallbacks.

Each public function runs the native kernel (``torch.ops.pydeepclust.*``) when
the extension has one for the input's device, else the reference in
:mod:`pydeepclust.ops.reference`. See :func:`backend`, :func:`use_backend`.

Every op also takes float16 and bfloat16 tensors and runs under ``torch.autocast``: it
computes in float32 and returns the input's half dtype (float32 under autocast); see
``pydeepclust.ops._precision``.
"""

from pydeepclust.ops._backend import (
    BACKENDS,
    ExtensionLoadWarning,
    backend,
    build_info,
    cpu_output_cache_bytes,
    extension_available,
    has_kernel,
    release_cpu_output_cache,
    set_backend,
    use_backend,
)
from pydeepclust.ops._precision import computes_in_float32, register_autocast_rules
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
    "cpu_output_cache_bytes",
    "extension_available",
    "has_kernel",
    "release_cpu_output_cache",
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

# float16 / bfloat16 inputs and autocast (see _precision): the ops that take tensors
for _name in ("average_membership_strength", "cosine_simplex_assign",
              "soft_memberships", "degree_weighted_kernel", "inverse_degrees", "kernel_degrees",
              "ksc_centered_kernel", "weighted_center", "rbf_affinity", "rbf_ratio_cut",
              "rbf_ratio_cut_rows", "sample_bandwidths", "cayley_retraction",
              "orthonormality_error"):
    globals()[_name] = computes_in_float32(globals()[_name])
del _name
if extension_available():
    register_autocast_rules()
