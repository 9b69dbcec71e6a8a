// Every op schema of the pydeepclust library, declared once; kernels are
// registered per dispatch key in csrc/cpu/*.cpp and csrc/cuda/*.cu.
// The pybind11 module exposes build introspection and the CPU output cache.
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/version.h>

#include "cpu/output_cache.h"

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
  // Degree-weighted kernel matrices and streaming RBF degrees (DESIGN §3b).
  m.def(
      "degree_weighted_kernel(Tensor X, Tensor sigma, str kernel, float clamp_eps, "
      "bool return_kernel) -> (Tensor, Tensor, Tensor)");
  m.def(
      "degree_weighted_kernel_backward(Tensor? grad_P, Tensor? grad_degrees, Tensor? grad_K, "
      "Tensor X, Tensor sigma, Tensor P, Tensor degrees, str kernel, float clamp_eps) -> Tensor");
  m.def("rbf_row_sums(Tensor X, Tensor Y, Tensor weights, Tensor sigma) -> Tensor");
  m.def("rbf_row_moments(Tensor X, Tensor Y, Tensor weights, Tensor sigma) -> (Tensor, Tensor)");

  // RBF affinity and the streaming ratio cut (DESIGN §3c).
  m.def("rbf_affinity(Tensor X, Tensor sigma, bool zero_diagonal) -> Tensor");
  m.def(
      "rbf_ratio_cut(Tensor X, Tensor Z, Tensor sigma, bool zero_diagonal) -> "
      "(Tensor cut, Tensor degree, Tensor SZ)");
  m.def(
      "rbf_ratio_cut_backward_x(Tensor X, Tensor Z, Tensor sigma, Tensor grad_cut, "
      "Tensor grad_degree, bool zero_diagonal) -> Tensor");
  // Rectangular form for data-parallel RSM (DESIGN §6): rows X, Z (a rank's slice, starting at
  // row row_offset of the gathered batch) against columns Xc, Zc (the gathered batch).
  // cut_grad_Zc = d cut / d Zc, reduced in the forward's pass over S (the backward then
  // streams over S again only for gradients of the inputs X, Xc).
  m.def(
      "rbf_ratio_cut_rows(Tensor X, Tensor Z, Tensor Xc, Tensor Zc, Tensor sigma, int row_offset, "
      "bool zero_diagonal) -> (Tensor cut, Tensor degree, Tensor SZ, Tensor cut_grad_Zc)");
  m.def(
      "rbf_ratio_cut_rows_backward(Tensor X, Tensor Z, Tensor Xc, Tensor Zc, Tensor sigma, "
      "Tensor grad_cut, Tensor grad_degree, int row_offset, bool zero_diagonal, "
      "bool[2] output_mask) -> (Tensor grad_X, Tensor grad_Xc)");

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
  m.def("release_cpu_output_cache", &pydeepclust::release_output_cache,
        "Free the buffers the CPU ops keep for reuse; returns the bytes freed.");
  m.def("cpu_output_cache_bytes", &pydeepclust::output_cache_bytes,
        "Bytes of freed CPU op outputs kept for reuse.");
}
