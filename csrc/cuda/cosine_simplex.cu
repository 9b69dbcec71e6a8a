// CUDA kernels of the cosine-to-simplex ops: one thread per row, grid-stride
// loops, the current stream. The math is in simplex.h, shared with the CPU.
// Codes are tiny (k x m) and read by every thread, so they stay in global
// memory behind the read-only cache.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "pydeepclust/simplex.h"

namespace pydeepclust {
namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <typename T>
__global__ void assign_kernel(const T* __restrict__ e, int64_t rs, int64_t es,
                              const T* __restrict__ codes, const T* __restrict__ inv_cn,
                              int64_t n, int64_t k, int64_t m, T scale, T* __restrict__ dist,
                              int64_t* __restrict__ label) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    simplex::row_assign(e + i * rs, es, codes, inv_cn, k, m, scale, dist + i, label + i);
  }
}

template <typename T>
__global__ void assign_backward_kernel(const T* __restrict__ e, int64_t rs, int64_t es,
                                       const T* __restrict__ codes, const T* __restrict__ inv_cn,
                                       const T* __restrict__ grad_dist, int64_t gs,
                                       const int64_t* __restrict__ label, int64_t n, int64_t m,
                                       T scale, T* __restrict__ grad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    simplex::row_assign_grad(e + i * rs, es, codes, inv_cn, m, label[i], scale,
                             grad_dist[i * gs], grad + i * m, int64_t(1));
  }
}

template <typename T>
__global__ void memberships_kernel(const T* __restrict__ e, int64_t rs, int64_t es,
                                   const T* __restrict__ codes, const T* __restrict__ inv_cn,
                                   int64_t n, int64_t k, int64_t m, T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    simplex::row_distances(e + i * rs, es, codes, inv_cn, k, m, out + i * k, int64_t(1));
    simplex::memberships_from_distances(out + i * k, int64_t(1), k);
  }
}

std::tuple<at::Tensor, at::Tensor> assign_cuda(const at::Tensor& E, const at::Tensor& codes,
                                               double scale) {
  check_simplex_inputs(E, codes, "cosine_simplex_assign");
  const c10::cuda::CUDAGuard guard(E.device());
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const auto codes_c = codes.contiguous();
  const auto inv_cn = codes_c.norm(2, {1}).reciprocal();
  const int64_t n = rows.size(0);
  auto dist = at::empty({n}, E.options());
  auto label = at::empty({n}, E.options().dtype(at::kLong));
  if (n > 0) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "cosine_simplex_assign_cuda", [&] {
      assign_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
          rows.data_ptr<scalar_t>(), rows.stride(0), rows.stride(1), codes_c.data_ptr<scalar_t>(),
          inv_cn.data_ptr<scalar_t>(), n, k, m, static_cast<scalar_t>(scale),
          dist.data_ptr<scalar_t>(), label.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  const auto batch = E.sizes().slice(0, E.dim() - 1);
  return {dist.view(batch), label.view(batch)};
}

at::Tensor assign_backward_cuda(const at::Tensor& grad_dist, const at::Tensor& E,
                                const at::Tensor& codes, const at::Tensor& label, double scale) {
  check_simplex_inputs(E, codes, "cosine_simplex_assign_backward");
  const c10::cuda::CUDAGuard guard(E.device());
  const int64_t m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const int64_t n = rows.size(0);
  // The gradient of dist.sum() is an expanded scalar (stride 0): read it through its
  // stride instead of materialising it.
  const auto g = grad_dist.reshape({n});
  const auto lab = label.reshape({n}).contiguous();
  const auto codes_c = codes.contiguous();
  const auto inv_cn = codes_c.norm(2, {1}).reciprocal();
  auto grad = at::empty({n, m}, E.options());
  if (n > 0) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "cosine_simplex_assign_backward_cuda", [&] {
      assign_backward_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
          rows.data_ptr<scalar_t>(), rows.stride(0), rows.stride(1), codes_c.data_ptr<scalar_t>(),
          inv_cn.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), g.stride(0),
          lab.data_ptr<int64_t>(), n, m, static_cast<scalar_t>(scale), grad.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return grad.view(E.sizes());
}

at::Tensor memberships_cuda(const at::Tensor& E, const at::Tensor& codes) {
  check_simplex_inputs(E, codes, "soft_memberships");
  const c10::cuda::CUDAGuard guard(E.device());
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const auto codes_c = codes.contiguous();
  const auto inv_cn = codes_c.norm(2, {1}).reciprocal();
  const int64_t n = rows.size(0);
  auto out = at::empty({n, k}, E.options());
  if (n > 0) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "soft_memberships_cuda", [&] {
      memberships_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
          rows.data_ptr<scalar_t>(), rows.stride(0), rows.stride(1), codes_c.data_ptr<scalar_t>(),
          inv_cn.data_ptr<scalar_t>(), n, k, m, out.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  auto shape = E.sizes().vec();
  shape.back() = k;
  return out.view(shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CUDA, m) {
  m.impl("cosine_simplex_assign", &assign_cuda);
  m.impl("cosine_simplex_assign_backward", &assign_backward_cuda);
  m.impl("soft_memberships", &memberships_cuda);
}

}  // namespace pydeepclust
