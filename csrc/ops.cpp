// Every op schema of the pydeepclust library, declared once; kernels are
// registered per dispatch key in csrc/cpu/*.cpp and csrc/cuda/*.cu.
// The pybind11 module exposes build introspection only.
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/version.h>

#ifndef PDC_CUDA_ARCH_LIST
#define PDC_CUDA_ARCH_LIST ""
#endif

TORCH_LIBRARY(pydeepclust, m) {
  // Cosine distance to simplex codes (DESIGN §3a).
  m.def("cosine_simplex_assign(Tensor E, Tensor codes, float scale) -> (Tensor, Tensor)");
  m.def(
      "cosine_simplex_assign_backward(Tensor grad_dist, Tensor E, Tensor codes, Tensor label, "
      "float scale) -> Tensor");
  m.def("soft_memberships(Tensor E, Tensor codes) -> Tensor");
  // Low-rank Cayley retraction on the Stiefel manifold (DESIGN §3d).
  m.def("cayley_retraction(Tensor X, Tensor G, Tensor tau) -> Tensor");
}

namespace {

py::dict build_info() {
  py::dict info;
  info["torch_version"] = TORCH_VERSION;
#ifdef PDC_WITH_CUDA
  info["cuda"] = true;
  info["cuda_arch_list"] = std::string(PDC_CUDA_ARCH_LIST);
#else
  info["cuda"] = false;
  info["cuda_arch_list"] = std::string();
#endif
#ifdef _OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["parallel_backend"] = at::get_parallel_info();
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "pydeepclust native ops (registered under torch.ops.pydeepclust)";
  m.def("build_info", &build_info,
        "How this extension was built: torch version, CUDA and its arch list, OpenMP.");
}
