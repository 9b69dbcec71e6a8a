// CUDA kernel of the low-rank Cayley retraction.
//
// The O(n p^2) work (Gram blocks X^T X, X^T G, G^T G and the final
// Y = X Kx + G Kg) goes through ATen's bmm/baddbmm (cuBLAS, batched). The
// 2p x 2p solve of cayley.h runs in one kernel, one thread block per batch
// matrix: threads share the entries of each phase (A P, the augmented system,
// the row eliminations of each pivot step, the back substitutions, the
// coefficients) and synchronise between phases. Its workspace lives in global
// memory (7 p^2 per matrix, cached in L1/L2).
#include <ATen/Dispatch.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "pydeepclust/cayley.h"

namespace pydeepclust {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void coefficients_kernel(const T* __restrict__ A, const T* __restrict__ P,
                                    const T* __restrict__ Q, const T* __restrict__ tau,
                                    int64_t tau_stride, int64_t p, T* __restrict__ work,
                                    T* __restrict__ K) {
  const int64_t b = blockIdx.x;
  const int64_t pp = p * p, rows = 2 * p, cols = 3 * p;
  const T* a = A + b * pp;
  const T* pm = P + b * pp;
  const T* q = Q + b * pp;
  const T t = tau[b * tau_stride];
  T* ap = work + b * cayley::workspace_size(p);
  T* aug = ap + pp;
  T* k_out = K + b * 2 * pp;
  __shared__ int64_t pivot;

  for (int64_t e = threadIdx.x; e < pp; e += blockDim.x) cayley::ap_entry(a, pm, p, e / p, e % p, ap);
  __syncthreads();
  for (int64_t e = threadIdx.x; e < rows * cols; e += blockDim.x)
    cayley::system_entry(a, pm, q, ap, p, t, e / cols, e % cols, aug);
  __syncthreads();
  for (int64_t k = 0; k < rows; ++k) {
    if (threadIdx.x == 0) pivot = cayley::pivot_row(aug, rows, cols, k);
    __syncthreads();
    if (pivot != k) {
      for (int64_t c = k + threadIdx.x; c < cols; c += blockDim.x)
        cayley::swap_entry(aug, cols, k, pivot, c);
      __syncthreads();
    }
    for (int64_t r = k + 1 + threadIdx.x; r < rows; r += blockDim.x)
      cayley::eliminate_row(aug, cols, k, r);
    __syncthreads();
  }
  for (int64_t c = rows + threadIdx.x; c < cols; c += blockDim.x)
    cayley::back_substitute(aug, rows, cols, c);
  __syncthreads();
  for (int64_t e = threadIdx.x; e < 2 * pp; e += blockDim.x)
    cayley::coefficient_entry(aug, pm, p, t, e / p, e % p, k_out);
}

at::Tensor cayley_retraction_cuda(const at::Tensor& X, const at::Tensor& G, const at::Tensor& tau) {
  check_cayley_inputs(X, G, tau, "cayley_retraction");
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = X.dim() == 2 ? X.unsqueeze(0) : X;
  const auto Gb = G.dim() == 2 ? G.unsqueeze(0) : G;
  if (X.numel() == 0) return at::empty(X.sizes(), X.options());
  const int64_t batch = Xb.size(0), p = Xb.size(2);
  const auto Xt = Xb.transpose(1, 2);
  const auto A = at::bmm(Xt, Xb).contiguous();
  const auto P = at::bmm(Xt, Gb).contiguous();
  const auto Q = at::bmm(Gb.transpose(1, 2), Gb).contiguous();
  const auto t = tau.contiguous();
  auto K = at::empty({batch, 2 * p, p}, X.options());
  auto work = at::empty({batch, cayley::workspace_size(p)}, X.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "cayley_retraction_cuda", [&] {
    coefficients_kernel<scalar_t><<<static_cast<unsigned int>(batch), kThreads, 0, stream>>>(
        A.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(), Q.data_ptr<scalar_t>(),
        t.data_ptr<scalar_t>(), t.numel() == 1 ? 0 : 1, p, work.data_ptr<scalar_t>(),
        K.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  auto Y = at::baddbmm(at::bmm(Xb, K.narrow(1, 0, p)), Gb, K.narrow(1, p, p));
  return X.dim() == 2 ? Y.squeeze(0) : Y;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CUDA, m) { m.impl("cayley_retraction", &cayley_retraction_cuda); }

}  // namespace pydeepclust
