// ATen-level steps shared by the CPU and CUDA degree-weighted kernel ops: the
// Gram and matrix products go through ATen's BLAS (MKL/OpenBLAS, cuBLAS); the
// per-entry math runs in each device's own kernel (include/pydeepclust/kernels.h).
#pragma once

#include <ATen/ATen.h>

namespace pydeepclust {

// Squared row norms of X (B, n, d), shape (B, n), contiguous.
inline at::Tensor squared_norms(const at::Tensor& X) {
  return X.mul(X).sum(-1).contiguous();
}

// Gradient w.r.t. X from W (B, n, n), the per-entry weights the device kernel
// wrote (see below), for K = X X^T or K_ij = exp(-gamma ||x_i - x_j||^2):
//   linear: W = dL/dK,        grad = (W + W^T) X
//   rbf:    W = dL/dK o K,    grad = -2 gamma [ (W 1 + W^T 1) o X - (W + W^T) X ]
inline at::Tensor kernel_grad_to_x(const at::Tensor& W, const at::Tensor& X,
                                   const at::Tensor& sigma, bool rbf) {
  const auto WX = at::baddbmm(at::bmm(W, X), W.transpose(1, 2), X);
  if (!rbf) return WX;
  const auto two_gamma = sigma.square().reciprocal().view({-1, 1, 1});
  const auto mass = (W.sum(2) + W.sum(1)).unsqueeze(-1);
  return (WX - mass * X) * two_gamma;
}

}  // namespace pydeepclust
