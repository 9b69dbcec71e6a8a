"""Which implementation runs an op: the native extension or the pure-torch reference.

The extension ``pydeepclust._C`` registers its kernels with the dispatcher on
import. If it is absent (not built, or failed to load) every op falls back to
:mod:`pydeepclust.ops.reference`; a file that fails to load (built against
another torch, say) is reported once with an :class:`ExtensionLoadWarning`. A kernel is used only when the extension has
one for the input's device: a CPU-only build still serves CUDA tensors through
the reference.

Choose explicitly with :func:`set_backend` / :func:`use_backend`, or the
environment variable ``PYDEEPCLUST_BACKEND`` (``auto``, ``extension``,
``reference``, ``tuned``). ``tuned`` times kernel and reference once per op, device, dtype,
needs-grad and shape bucket and keeps the faster (see :mod:`pydeepclust.ops._tuned`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import warnings

import torch

from pydeepclust.ops import _tuned

REBUILD_HINT = (
    "rebuild it against the installed torch: `make build` in a source checkout "
    "(or `python setup.py build_ext --inplace`), or reinstall pydeepclust from source"
)


class ExtensionLoadWarning(UserWarning):
    """The native extension exists but failed to load; the slow references run instead."""


try:
    _C = importlib.import_module("pydeepclust._C")
except ImportError as exc:
    _C = None
    _IMPORT_ERROR: ImportError | None = exc
    # No _C file at all is a build without the extension (PYDEEPCLUST_SKIP_EXT=1, or an
    # editable install before `make build`): a choice, reported by build_info() only.
    # A file that does not load (built against another torch, missing CUDA libraries)
    # is a broken install: say so once, unless the references were asked for.
    _NOT_BUILT = isinstance(exc, ModuleNotFoundError) and exc.name == "pydeepclust._C"
    if not _NOT_BUILT and os.environ.get("PYDEEPCLUST_BACKEND") != "reference":
        warnings.warn(
            f"pydeepclust._C failed to load ({exc}); every op falls back to the slow "
            f"pure-torch references. To fix, {REBUILD_HINT}. "
            "(PYDEEPCLUST_BACKEND=reference silences this warning.)",
            ExtensionLoadWarning,
        )
else:
    _IMPORT_ERROR = None
    _NOT_BUILT = False

BACKENDS = ("auto", "extension", "reference", "tuned")
_choice = "auto"


def extension_available() -> bool:
    """True when the native extension imported and registered its ops."""
    return _C is not None


def build_info() -> dict:
    """How the extension was built (torch version, CUDA and arch list, OpenMP).

    Without an extension: ``{"available": False, "status": "not built" or "failed to
    load", "error": <the import error>, "fix": <the rebuild command>}``.
    """
    if _C is None:
        return {"available": False, "status": "not built" if _NOT_BUILT else "failed to load",
                "error": str(_IMPORT_ERROR), "fix": REBUILD_HINT}
    return {"available": True, **_C.build_info()}


def release_cpu_output_cache() -> int:
    """Free the buffers the CPU kernels keep for reuse; return the bytes freed.

    The CPU kernels' large outputs (4 MiB or more; which ones: the ops guide) come from a
    cache of the buffers earlier outputs released, so a training loop does not fault fresh
    pages in every step (a new 36 MB tensor costs ~10x its write). The cache holds at most
    ``PYDEEPCLUST_CPU_OUTPUT_CACHE_MB`` MiB (default 512; 0 turns it off), read on the
    cache's first use (a large output, or a call of this function or
    :func:`cpu_output_cache_bytes`), which raises ``RuntimeError`` for a malformed value.
    """
    return 0 if _C is None else int(_C.release_cpu_output_cache())


def cpu_output_cache_bytes() -> int:
    """Bytes the CPU output cache holds now (see :func:`release_cpu_output_cache`)."""
    return 0 if _C is None else int(_C.cpu_output_cache_bytes())


def set_backend(name: str) -> None:
    """Select ``"auto"`` (extension where it has a kernel), ``"extension"``, ``"reference"``
    or ``"tuned"`` (per shape, whichever of kernel and reference measured faster)."""
    global _choice
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "extension" and _C is None:
        raise RuntimeError(
            f"backend 'extension' requested but pydeepclust._C is unavailable: {_IMPORT_ERROR}; "
            f"{REBUILD_HINT}"
        )
    _choice = name


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager form of :func:`set_backend` (restores the previous choice)."""
    previous = _choice
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def backend() -> str:
    """The backend in effect: ``"extension"``, ``"reference"`` or ``"tuned"``."""
    if _C is None or _choice == "reference":
        return "reference"
    return "tuned" if _choice == "tuned" else "extension"


def has_kernel(op: str, device: torch.device) -> bool:
    """Whether the extension registered ``pydeepclust::<op>`` for ``device``'s type."""
    return _has_kernel(op, torch.device(device).type)


@functools.lru_cache(maxsize=None)
def _registered(op: str, device_type: str) -> bool:
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if _C is None or key is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"pydeepclust::{op}", key)
    except RuntimeError:  # no such op in the schema: no kernel for it either
        return False


# Registrations are fixed once the extension is imported, so torch.compile may
# treat the answer as a constant instead of tracing the dispatcher query.
@torch.compiler.assume_constant_result
def _has_kernel(op: str, device_type: str) -> bool:
    return _registered(op, device_type)


def use_native(op: str, device: torch.device) -> bool:
    """Whether a call of ``op`` on ``device`` runs the native kernel now.

    With the backend forced to ``"extension"`` a missing kernel is an error,
    not a silent fallback.
    """
    if backend() == "reference":
        return False
    native = has_kernel(op, device)
    if not native and _choice == "extension":
        raise RuntimeError(
            f"backend 'extension' is forced but pydeepclust::{op} has no kernel for "
            f"device {torch.device(device)} (build_info: {build_info()})"
        )
    return native


def call(op: str, native, reference, args: tuple, *, device: torch.device,
         dtype: torch.dtype, grad_inputs: tuple = (), sizes: tuple[int, ...] = (),
         variant: str = "", dense_bytes: int = 0):
    """Run ``native(*args)`` or ``reference(*args)`` for op ``pydeepclust::<op>``.

    Under ``"tuned"``, the key is the op (with ``variant``), the device, ``dtype``, whether
    autograd records the call on ``grad_inputs``, and ``sizes`` in power-of-two buckets;
    ``dense_bytes`` (the reference's dense intermediates) guards memory. Otherwise
    :func:`use_native` decides (nothing else is evaluated: the eager path stays cheap).
    """
    if _choice == "tuned" and _C is not None:
        if not has_kernel(op, device):
            return reference(*args)
        name = f"{op}:{variant}" if variant else op
        chosen = _tuned.TUNER.choose(name, native, reference, args, device, dtype, grad_inputs,
                                     sizes, dense_bytes)
        return (native if chosen == "extension" else reference)(*args)
    return (native if use_native(op, device) else reference)(*args)


_env_choice = os.environ.get("PYDEEPCLUST_BACKEND")
if _env_choice:
    set_backend(_env_choice)
