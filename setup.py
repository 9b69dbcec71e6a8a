"""Build of the native extension ``pydeepclust._C``.

CUDA kernels are compiled when nvcc and a CUDA build of torch are present (or
FORCE_CUDA=1); FORCE_ONLY_CPU=1 builds the CPU kernels alone. Without a visible
GPU, TORCH_CUDA_ARCH_LIST defaults to DEFAULT_CUDA_ARCHS below.
PYDEEPCLUST_SKIP_EXT=1 installs the Python package alone (the Makefile does so
for the editable install, then builds the extension in place with
``setup.py build_ext --inplace``, which is incremental in ./build).
"""

import glob
import os
import shutil

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"


def _flag(name):
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def _find_cuda_home():
    """nvcc on PATH may be a wrapper script, so prefer the real toolkit folder."""
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if candidate and os.path.exists(os.path.join(candidate, "bin", "nvcc")):
            return candidate
    nvcc = shutil.which("nvcc")
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None


def _extensions():
    cuda_home = _find_cuda_home()
    if cuda_home:
        os.environ.setdefault("CUDA_HOME", cuda_home)
    import torch
    from torch.utils import cpp_extension

    with_cuda = not _flag("FORCE_ONLY_CPU") and (
        _flag("FORCE_CUDA") or (torch.version.cuda is not None and cuda_home is not None)
    )
    sources = ["csrc/ops.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    cxx_flags = ["-O3", "-fopenmp"]
    define_macros = []
    extension = cpp_extension.CppExtension
    extra = {"cxx": cxx_flags}
    if with_cuda:
        if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "native")
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        define_macros += [("PDC_WITH_CUDA", None), ("PDC_CUDA_ARCH_LIST", f'"{arch_list}"')]
        extension = cpp_extension.CUDAExtension
        extra["nvcc"] = ["-O3", "--expt-relaxed-constexpr"]
    return [
        extension(
            name="pydeepclust._C",
            sources=sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args=extra,
            extra_link_args=["-fopenmp"],
        )
    ], cpp_extension.BuildExtension.with_options(use_ninja=True)


if _flag("PYDEEPCLUST_SKIP_EXT"):
    setup()
else:
    ext_modules, build_ext = _extensions()
    setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
