// CUDA kernel of the low-rank Cayley retraction.
//
// The O(n p^2) work (Gram blocks X^T X, X^T G, G^T G and the final
// Y = X Kx + G Kg) goes through ATen's bmm/baddbmm (cuBLAS, batched). The
// 2p x 2p solve of cayley.h runs in one kernel, one thread block per batch
// matrix: threads share the entries of each phase (A P, the augmented system,
// the row eliminations of each pivot step, the back substitutions, the
// coefficients) and synchronise between phases. Its workspace lives in global
// memory (8 p^2 per matrix, cached in L1/L2). That block runs the 2p x 2p elimination
// alone, so above p = kMaxKernelP (0.72x the plain-torch Woodbury at 1024 x 40 on an H100)
// the system is built from the same Gram blocks by batched products and solved by
// at::linalg_solve_ex (cuSOLVER / MAGMA, batched; no host sync: info is not inspected).
#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "pydeepclust/cayley.h"

namespace pydeepclust {
namespace {

constexpr int kThreads = 128;
// Widest p for the one-block elimination kernel; wider ones go through linalg_solve_ex.
constexpr int64_t kMaxKernelP = 16;

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
  T* c_block = ap + pp;
  T* aug = c_block + pp;
  T* k_out = K + b * 2 * pp;
  __shared__ int64_t pivot;

  for (int64_t e = threadIdx.x; e < pp; e += blockDim.x)
    cayley::ap_entries(a, pm, p, e / p, e % p, e % p + 1, ap);
  __syncthreads();
  for (int64_t e = threadIdx.x; e < pp; e += blockDim.x)
    cayley::c_entries(pm, q, ap, p, e / p, e % p, e % p + 1, c_block);
  __syncthreads();
  for (int64_t e = threadIdx.x; e < rows * cols; e += blockDim.x)
    cayley::system_entry(a, pm, ap, c_block, p, t, e / cols, e % cols, aug);
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
    cayley::back_substitute(aug, rows, cols, c, c + 1);
  __syncthreads();
  for (int64_t e = threadIdx.x; e < 2 * pp; e += blockDim.x)
    cayley::coefficient_entries(aug, pm, p, t, e / p, e % p, e % p + 1, k_out);
}

// Y = X - tau U (I + tau/2 V^T U)^-1 V^T X with U = [Ghat, X], V = [X, -Ghat],
// Ghat = G - X P / 2, from A = X^T X, P = X^T G, Q = G^T G (cayley.h's system, in batched
// products): with C = X^T Ghat = P - A P / 2 and E = Ghat^T Ghat = Q - P^T P + P^T A P / 4,
// V^T U = [[C, A], [-E, -C^T]] and V^T X = [[A], [-C^T]]; for the solution W = [W1; W2],
// Y = X (I - tau W2 + tau/2 P W1) + G (-tau W1).
at::Tensor cayley_by_solve(const at::Tensor& Xb, const at::Tensor& Gb, const at::Tensor& A,
                           const at::Tensor& P, const at::Tensor& Q, const at::Tensor& tau) {
  const int64_t batch = Xb.size(0), p = Xb.size(2);
  const auto t = tau.reshape({-1, 1, 1});
  const auto AP = at::bmm(A, P);
  const auto C = P.sub(AP, 0.5);
  const auto Pt = P.transpose(1, 2);
  const auto E = Q.sub(at::bmm(Pt, P)).add(at::bmm(Pt, AP), 0.25);
  const auto Ct = C.transpose(1, 2);
  const auto VtU = at::cat({at::cat({C, A}, 2), at::cat({E.neg(), Ct.neg()}, 2)}, 1);
  const auto eye2 = at::eye(2 * p, Xb.options()).expand({batch, 2 * p, 2 * p});
  const auto rhs = at::cat({A, Ct.neg()}, 1);
  const auto W = std::get<0>(at::linalg_solve_ex(eye2.add(VtU.mul(t), 0.5), rhs));
  const auto W1 = W.narrow(1, 0, p), W2 = W.narrow(1, p, p);
  const auto eye = at::eye(p, Xb.options()).expand({batch, p, p});
  const auto Kx = eye.sub(W2.mul(t)).add(at::bmm(P, W1).mul(t), 0.5);
  return at::baddbmm(at::bmm(Xb, Kx), Gb, W1.mul(t).neg());
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
  if (p > kMaxKernelP) {
    const auto Y = cayley_by_solve(Xb, Gb, A, P, Q, t.numel() == 1 ? t.expand({batch}) : t);
    return X.dim() == 2 ? Y.squeeze(0) : Y;
  }
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
