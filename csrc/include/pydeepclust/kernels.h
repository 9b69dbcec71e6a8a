// Kernel entries, degrees and the D^-1 row scaling (DESIGN §3b).
//
// Torch-free, header-only: the CPU and CUDA kernels of the degree-weighted
// kernel ops call these, so the arithmetic tested on the CPU is the one that
// runs on the GPU.
//
// Conventions
//   gamma      1 / (2 sigma^2): K_ij = exp(-gamma ||x_i - x_j||^2)
//   clamp_eps  the policy for degrees <= 0 (possible for a linear kernel on
//              signed features, or for out-of-sample RBF degrees that underflow):
//              clamp_eps > 0 uses max(d, clamp_eps); clamp_eps <= 0 ("raise")
//              gives a NaN inverse so that the caller can name the rows. Never inf.
#pragma once

#include <stdint.h>

#include "pydeepclust/macros.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PDC_EXP(x) exp(x)
#else
#include <cmath>
#define PDC_EXP(x) std::exp(x)
#endif

namespace pydeepclust {
namespace kernels {

// ||a - b||^2 from the Gram form ||a||^2 + ||b||^2 - 2 a.b; rounding can make
// it slightly negative for near-identical points, so it is clamped at 0.
template <typename T>
PDC_HOST_DEVICE T sqdist_from_gram(T norm_a, T norm_b, T dot) {
  const T s = norm_a + norm_b - T(2) * dot;
  return s > T(0) ? s : T(0);
}

template <typename T>
PDC_HOST_DEVICE T rbf_from_sqdist(T sqdist, T gamma) {
  return PDC_EXP(-gamma * sqdist);
}

template <typename T>
PDC_HOST_DEVICE T gamma_from_sigma(T sigma) {
  return T(1) / (T(2) * sigma * sigma);
}

// The degree D^-1 uses: max(d, clamp_eps) when clamping, d itself otherwise.
template <typename T>
PDC_HOST_DEVICE T used_degree(T degree, T clamp_eps) {
  return (clamp_eps > T(0) && !(degree > clamp_eps)) ? clamp_eps : degree;
}

// 1/d under the policy above. With clamping the result is finite for every
// finite d; without it a degree <= 0 (or NaN) gives NaN, never inf.
template <typename T>
PDC_HOST_DEVICE T inverse_degree(T degree, T clamp_eps) {
  const T d = used_degree(degree, clamp_eps);
  if (d > T(0)) return T(1) / d;
  const T zero = degree - degree;  // 0 for finite d, NaN otherwise
  return zero / zero;              // NaN at run time (no constant 0/0 to warn about)
}

// Whether D^-1 depends on d at this row (false where the clamp is active).
template <typename T>
PDC_HOST_DEVICE bool degree_is_free(T degree, T clamp_eps) {
  return !(clamp_eps > T(0)) || degree > clamp_eps;
}

// Sum of a row of n entries with stride s.
template <typename T>
PDC_HOST_DEVICE T row_sum(const T* row, int64_t n, int64_t s) {
  T total = T(0);
  for (int64_t j = 0; j < n; ++j) total += row[j * s];
  return total;
}

// One row of D^-1 K: out_j = k_j * inv_degree (out may alias k).
template <typename T>
PDC_HOST_DEVICE void scale_row(const T* k, T inv_degree, int64_t n, T* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = k[j] * inv_degree;
}

// Gradient of a loss with respect to K_ij, given the gradients of the outputs
// P = D^-1 K (g_p), of the degrees (g_d_i) and of K itself (g_k), where
// P_il = K_il / d_i and d_i = sum_l K_il:
//   dL/dK_ij = g_k + g_d_i + inv_i (g_p - [d_i free] * t_i),  t_i = sum_l g_p_il P_il.
template <typename T>
PDC_HOST_DEVICE T kernel_entry_grad(T g_p, T g_k, T g_d, T inv_degree, T t, bool free) {
  return g_k + g_d + inv_degree * (free ? g_p - t : g_p);
}

}  // namespace kernels
}  // namespace pydeepclust
