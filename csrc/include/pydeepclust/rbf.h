// RBF affinities and the streaming ratio cut of RSM (DESIGN §3c).
//
// Torch-free, header-only: the CPU and CUDA kernels (elementwise over BLAS /
// cuBLAS Gram tiles) and the C++ unit tests call these functions.
//
// Notation, per batch element: S_ij = exp(-c ||x_i - x_j||^2), c = 1 / (2 sigma^2);
// degrees d_i = sum_j S_ij; (SZ)_i = sum_j S_ij z_j; r_ij = ||z_i - z_j||^2.
//
// Ratio cut:  cut = sum_ij S_ij r_ij = 2 tr(Z^T (D - S) Z) = sum_i row_cut_term(i),
//             row_cut_term(i) = 2 (d_i ||z_i||^2 - z_i . (SZ)_i)
//             (the two forms agree because S is symmetric).
// Gradients, for an upstream g_c on cut and g_i on each degree d_i:
//   d/dz_i = 4 g_c (d_i z_i - (SZ)_i)
//   d/dx_i = -4c sum_j W_ij (x_i - x_j) = -4c (x_i sum_j W_ij - (W X)_i),
//            W_ij = S_ij (g_c r_ij + (g_i + g_j) / 2),
// because dS_ij/dx_i = -2c S_ij (x_i - x_j) and every S_ij appears twice in the
// sums (as (i, j) and (j, i)). The diagonal has x_i - x_i = 0: W_ii may be set to 0.
//
// Rectangular form (data-parallel RSM, DESIGN §6): rows x_i (n of them, a rank's slice)
// against columns y_j (m of them, the gathered batch), embeddings z_i and w_j,
// S_ij = exp(-c ||x_i - y_j||^2), row degrees d_i = sum_j S_ij, (SW)_i = sum_j S_ij w_j,
// q_j = ||w_j||^2, and zero_diagonal drops the pairs (i, row_offset + i).
//   partial cut = sum_ij S_ij ||z_i - w_j||^2 = sum_i rect_row_cut_term(i),
//   rect_row_cut_term(i) = d_i ||z_i||^2 - 2 z_i . (SW)_i + (S q)_i
//   (no symmetry to use: (S q)_i is one more column of the reduction S [W, 1, q]).
// Gradients, for an upstream g_c on the cut and g_i on each row degree d_i, with
// W_ij = S_ij (g_c r_ij + g_i) (rect_pair_weight) and col sums e_j = sum_i S_ij:
//   d/dz_i = 2 g_c (d_i z_i - (SW)_i)        d/dw_j = 2 g_c (e_j w_j - (S^T Z)_j)
//   d/dx_i = -2c (x_i sum_j W_ij - (W Y)_i)  d/dy_j = -2c (y_j sum_i W_ij - (W^T X)_j)
// (rect_grad_z_row and rect_grad_x_row serve rows and columns alike). With rows = cols
// and row_offset 0 the row and column gradients add up to the square ones above.
#pragma once

#include <stdint.h>

#include "pydeepclust/macros.h"

#if !defined(__CUDACC__) && !defined(__HIPCC__)
#include <cmath>
#endif

namespace pydeepclust {
namespace rbf {

// exp(-x) with the device intrinsic on the GPU and std::exp on the host.
template <typename T>
PDC_HOST_DEVICE T exp_neg(T x) {
#if defined(__CUDA_ARCH__)
  return exp(-x);
#else
  return std::exp(-x);
#endif
}

// c = 1 / (2 sigma^2), the factor of the squared distance in the exponent.
template <typename T>
PDC_HOST_DEVICE T exponent_scale(T sigma) {
  return T(1) / (T(2) * sigma * sigma);
}

// ||a - b||^2 from ||a||^2, ||b||^2 and a . b (the BLAS form); rounding can make
// it slightly negative for near-equal rows, so clamp at 0.
template <typename T>
PDC_HOST_DEVICE T sq_dist_from_dot(T sq_norm_a, T sq_norm_b, T dot) {
  const T s = sq_norm_a + sq_norm_b - T(2) * dot;
  return s > T(0) ? s : T(0);
}

// ||a - b||^2 by differences (the direct pair-by-pair form of the C++ tests), strides 1.
template <typename T>
PDC_HOST_DEVICE T sq_dist(const T* a, const T* b, int64_t d) {
  T s = T(0);
  for (int64_t j = 0; j < d; ++j) {
    const T diff = a[j] - b[j];
    s += diff * diff;
  }
  return s;
}

// The exponent -c ||x_i - x_j||^2 of S_ij (the CPU kernels exponentiate whole
// tiles at once with ATen's vectorised exp), and S_ij itself.
template <typename T>
PDC_HOST_DEVICE T log_affinity(T sq_distance, T c) {
  return -c * sq_distance;
}

template <typename T>
PDC_HOST_DEVICE T affinity(T sq_distance, T c) {
  return exp_neg(c * sq_distance);
}

// Forward reductions of one pair (i, j): d_i += s, (SZ)_i += s z_j.
template <typename T>
PDC_HOST_DEVICE void accumulate_pair(T s, const T* z_j, int64_t k, T* degree, T* sz) {
  *degree += s;
  for (int64_t c = 0; c < k; ++c) sz[c] += s * z_j[c];
}

// Row i's share of the cut: 2 (d_i ||z_i||^2 - z_i . (SZ)_i).
template <typename T>
PDC_HOST_DEVICE T row_cut_term(T degree, const T* z_i, const T* sz, int64_t k) {
  T zz = T(0), zsz = T(0);
  for (int64_t c = 0; c < k; ++c) {
    zz += z_i[c] * z_i[c];
    zsz += z_i[c] * sz[c];
  }
  return T(2) * (degree * zz - zsz);
}

// Backward weight of one pair: W_ij = S_ij (g_c r_ij + (g_i + g_j) / 2).
template <typename T>
PDC_HOST_DEVICE T pair_weight(T s, T r, T grad_cut, T grad_degree_i, T grad_degree_j) {
  return s * (grad_cut * r + T(0.5) * (grad_degree_i + grad_degree_j));
}

// ---- rectangular form (rows against columns), see the top of this file

// Row i's share of the partial cut: d_i ||z_i||^2 - 2 z_i . (SW)_i + (S q)_i.
template <typename T>
PDC_HOST_DEVICE T rect_row_cut_term(T degree, T s_sq, const T* z_i, const T* sw, int64_t k) {
  T zz = T(0), zsw = T(0);
  for (int64_t c = 0; c < k; ++c) {
    zz += z_i[c] * z_i[c];
    zsw += z_i[c] * sw[c];
  }
  return degree * zz - T(2) * zsw + s_sq;
}

// Whether (row i, column j) is an excluded self pair: row i of a slice starting at
// row_offset of the gathered batch is column row_offset + i.
PDC_HOST_DEVICE bool is_self_pair(int64_t i, int64_t j, int64_t row_offset,
                                         bool zero_diagonal) {
  return zero_diagonal && row_offset + i == j;
}

// Backward weight of one rectangular pair: W_ij = S_ij (g_c r_ij + g_i).
template <typename T>
PDC_HOST_DEVICE T rect_pair_weight(T s, T r, T grad_cut, T grad_degree_i) {
  return s * (grad_cut * r + grad_degree_i);
}

// d/dz_i = 2 g_c (d_i z_i - (SW)_i) (rows), or d/dw_j = 2 g_c (e_j w_j - (S^T Z)_j)
// (columns), written to out (may alias sz).
template <typename T>
PDC_HOST_DEVICE void rect_grad_z_row(T degree, const T* z_i, const T* sz, int64_t k, T grad_cut,
                                     T* out) {
  const T coef = T(2) * grad_cut;
  for (int64_t c = 0; c < k; ++c) out[c] = coef * (degree * z_i[c] - sz[c]);
}

// d/dx_i = -2c (x_i sum_j W_ij - (W Y)_i) (rows; columns alike with W^T), written to out
// (may alias wx).
template <typename T>
PDC_HOST_DEVICE void rect_grad_x_row(const T* x_i, T weight_sum, const T* wx, int64_t d, T c,
                                     T* out) {
  const T coef = T(-2) * c;
  for (int64_t j = 0; j < d; ++j) out[j] = coef * (x_i[j] * weight_sum - wx[j]);
}

// The square form's gradients: each pair counted from both ends, twice the rectangular ones
// (the doubling is exact).
// d/dz_i = 4 g_c (d_i z_i - (SZ)_i), written to out (may alias sz).
template <typename T>
PDC_HOST_DEVICE void grad_z_row(T degree, const T* z_i, const T* sz, int64_t k, T grad_cut,
                                T* out) {
  rect_grad_z_row(degree, z_i, sz, k, T(2) * grad_cut, out);
}

// d/dx_i = -4c (x_i sum_j W_ij - (W X)_i), written to out (may alias wx).
template <typename T>
PDC_HOST_DEVICE void grad_x_row(const T* x_i, T weight_sum, const T* wx, int64_t d, T c,
                                T* out) {
  rect_grad_x_row(x_i, weight_sum, wx, d, T(2) * c, out);
}

}  // namespace rbf
}  // namespace pydeepclust
