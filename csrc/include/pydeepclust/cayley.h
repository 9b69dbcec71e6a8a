// Low-rank Cayley retraction on the Stiefel manifold (Wen & Yin 2013; DESIGN §3d).
//
// Torch-free, header-only: the CPU kernel, the CUDA kernel and the C++ unit
// tests call these functions, so the arithmetic tested on the CPU is the
// arithmetic that runs on the GPU.
//
// For X (n x p), direction G (n x p), step tau:
//   Ghat = G - 1/2 X (X^T G),  U = [Ghat, X],  V = [X, -Ghat]   (n x 2p)
//   Y    = X - tau U (I_2p + tau/2 V^T U)^-1 V^T X.
// Everything except the n x p products depends only on the Gram blocks
//   A = X^T X,  P = X^T G,  Q = G^T G   (p x p each),
// so the kernels form those with BLAS-like products and this header turns them
// into coefficients K = [Kx; Kg] (2p x p) with Y = X Kx + G Kg:
//   B = X^T Ghat = P - 1/2 A P,   C = Ghat^T Ghat = Q - P^T P + 1/4 P^T A P,
//   V^T U = [[B, A], [-C, -B^T]],  V^T X = [[A], [-B^T]],
//   solve (I + tau/2 V^T U) [Z1; Z2] = V^T X,
//   Kx = I - tau Z2 + tau/2 P Z1,   Kg = -tau Z1.
// The formula assumes X^T X = I (then Y^T Y = I exactly up to rounding); with
// another X the same algebra runs, but Y is not orthonormal.
//
// Layout: every matrix is row-major and contiguous. The 2p x 2p system and its
// p right-hand sides live in one augmented matrix `aug` (2p rows, 3p columns);
// `ap` holds A P and `C` the block C (p x p each). Workspace per matrix:
// workspace_size(p) elements.
#pragma once

#include <stdint.h>

#include "pydeepclust/macros.h"

// The small-matrix loops below write one array while reading others; promising
// no aliasing lets the CPU compiler vectorise them. Not in device code: there a
// const __restrict__ pointer may be read through the non-coherent read-only cache,
// and the CUDA kernel reads rows that other threads wrote earlier in the same launch.
#if defined(__CUDA_ARCH__)
#define PDC_RESTRICT
#else
#define PDC_RESTRICT __restrict__
#endif

namespace pydeepclust {
namespace cayley {

PDC_HOST_DEVICE int64_t workspace_size(int64_t p) { return 8 * p * p; }

template <typename T>
PDC_HOST_DEVICE T abs_value(T x) {
  return x < T(0) ? -x : x;
}

// The phases below are written over a range of columns [c0, c1) of one row: the CUDA
// kernel calls them one entry per thread (c1 = c0 + 1), the serial CPU path one whole
// row at a time, so that every O(p^3) inner loop is a contiguous, vectorisable sweep
// over columns. The summation order per entry is the same either way.

// y[0, count) += a x[0, count).
template <typename T>
PDC_HOST_DEVICE void axpy(T* PDC_RESTRICT y, const T* PDC_RESTRICT x, T a, int64_t count) {
  for (int64_t e = 0; e < count; ++e) y[e] += a * x[e];
}

// Phase 1a, row i of A P, columns [j0, j1).
template <typename T>
PDC_HOST_DEVICE void ap_entries(const T* A, const T* P, int64_t p, int64_t i, int64_t j0,
                                int64_t j1, T* ap) {
  T* row = ap + i * p;
  for (int64_t j = j0; j < j1; ++j) row[j] = T(0);
  for (int64_t k = 0; k < p; ++k) axpy(row + j0, P + k * p + j0, A[i * p + k], j1 - j0);
}

// Phase 1b (after 1a), row u of C = Q - P^T P + 1/4 P^T (A P), columns [v0, v1).
template <typename T>
PDC_HOST_DEVICE void c_entries(const T* PDC_RESTRICT P, const T* PDC_RESTRICT Q,
                               const T* PDC_RESTRICT ap, int64_t p, int64_t u, int64_t v0,
                               int64_t v1, T* PDC_RESTRICT C) {
  T* row = C + u * p;
  for (int64_t v = v0; v < v1; ++v) row[v] = Q[u * p + v];
  for (int64_t k = 0; k < p; ++k) {
    const T f = P[k * p + u];
    for (int64_t v = v0; v < v1; ++v) row[v] += f * (T(0.25) * ap[k * p + v] - P[k * p + v]);
  }
}

// B = P - 1/2 A P, entry (u, v).
template <typename T>
PDC_HOST_DEVICE T b_entry(const T* P, const T* ap, int64_t p, int64_t u, int64_t v) {
  return P[u * p + v] - T(0.5) * ap[u * p + v];
}

// Phase 2, entry (r, c) of the augmented system [I + tau/2 V^T U | V^T X],
// r < 2p, c < 3p. Needs A P and C from phase 1.
template <typename T>
PDC_HOST_DEVICE void system_entry(const T* A, const T* P, const T* ap, const T* C, int64_t p,
                                  T tau, int64_t r, int64_t c, T* aug) {
  const T half = T(0.5) * tau;
  const int64_t i = r < p ? r : r - p;
  const int64_t j = c < p ? c : (c < 2 * p ? c - p : c - 2 * p);
  T value;
  if (c < p) {  // first block column of V^T U: [B; -C]
    value = half * (r < p ? b_entry(P, ap, p, i, j) : -C[i * p + j]);
  } else if (c < 2 * p) {  // second block column: [A; -B^T]
    value = half * (r < p ? A[i * p + j] : -b_entry(P, ap, p, j, i));
  } else {  // right-hand side V^T X = [A; -B^T]
    value = r < p ? A[i * p + j] : -b_entry(P, ap, p, j, i);
  }
  if (c < 2 * p && c == r) value += T(1);
  aug[r * (3 * p) + c] = value;
}

// Row of the largest |aug[r][k]|, r >= k (partial pivoting). Ties: lowest row.
template <typename T>
PDC_HOST_DEVICE int64_t pivot_row(const T* aug, int64_t rows, int64_t cols, int64_t k) {
  int64_t best = k;
  T best_abs = abs_value(aug[k * cols + k]);
  for (int64_t r = k + 1; r < rows; ++r) {
    const T v = abs_value(aug[r * cols + k]);
    if (v > best_abs) {
      best_abs = v;
      best = r;
    }
  }
  return best;
}

// Swap entry c of rows a and b.
template <typename T>
PDC_HOST_DEVICE void swap_entry(T* aug, int64_t cols, int64_t a, int64_t b, int64_t c) {
  const T t = aug[a * cols + c];
  aug[a * cols + c] = aug[b * cols + c];
  aug[b * cols + c] = t;
}

// Row r -= (aug[r][k] / aug[k][k]) row k, columns k..cols-1 (r > k).
template <typename T>
PDC_HOST_DEVICE void eliminate_row(T* aug, int64_t cols, int64_t k, int64_t r) {
  const T factor = aug[r * cols + k] / aug[k * cols + k];
  axpy(aug + r * cols + k, aug + k * cols + k, -factor, cols - k);
}

// Back substitution of right-hand-side columns [c0, c1) (c0 >= rows) of an upper
// triangular system; the solution overwrites those columns.
template <typename T>
PDC_HOST_DEVICE void back_substitute(T* aug, int64_t rows, int64_t cols, int64_t c0,
                                     int64_t c1) {
  for (int64_t r = rows - 1; r >= 0; --r) {
    T* row = aug + r * cols;
    for (int64_t k = r + 1; k < rows; ++k) axpy(row + c0, aug + k * cols + c0, -row[k], c1 - c0);
    const T diagonal = row[r];
    for (int64_t c = c0; c < c1; ++c) row[c] /= diagonal;
  }
}

// Solve the square system in the first `rows` columns of `aug` for the
// right-hand sides in columns rows..cols-1, in place (Gaussian elimination
// with partial pivoting). A singular system gives inf/NaN, never a trap.
template <typename T>
PDC_HOST_DEVICE void gauss_solve(T* aug, int64_t rows, int64_t cols) {
  for (int64_t k = 0; k < rows; ++k) {
    const int64_t piv = pivot_row(aug, rows, cols, k);
    if (piv != k) {
      for (int64_t c = k; c < cols; ++c) swap_entry(aug, cols, k, piv, c);
    }
    for (int64_t r = k + 1; r < rows; ++r) eliminate_row(aug, cols, k, r);
  }
  back_substitute(aug, rows, cols, rows, cols);
}

// Phase 4, row r of K = [Kx; Kg] (2p x p), columns [c0, c1), from the solved
// system, whose columns 2p..3p-1 hold [Z1; Z2].
template <typename T>
PDC_HOST_DEVICE void coefficient_entries(const T* aug, const T* P, int64_t p, T tau, int64_t r,
                                         int64_t c0, int64_t c1, T* K) {
  const int64_t cols = 3 * p;
  const T* z1 = aug + 2 * p;  // Z1[i][j] = z1[i * cols + j]
  const T* z2 = aug + p * cols + 2 * p;
  T* row = K + r * p;
  if (r < p) {  // Kx = I - tau Z2 + tau/2 P Z1
    for (int64_t c = c0; c < c1; ++c) row[c] = T(0);
    for (int64_t k = 0; k < p; ++k) axpy(row + c0, z1 + k * cols + c0, P[r * p + k], c1 - c0);
    for (int64_t c = c0; c < c1; ++c)
      row[c] = (r == c ? T(1) : T(0)) - tau * z2[r * cols + c] + T(0.5) * tau * row[c];
  } else {  // Kg = -tau Z1
    for (int64_t c = c0; c < c1; ++c) row[c] = -tau * z1[(r - p) * cols + c];
  }
}

// All of the above for one matrix, serially, a row at a time: Gram blocks in, K out.
template <typename T>
PDC_HOST_DEVICE void coefficients(const T* A, const T* P, const T* Q, int64_t p, T tau,
                                  T* work, T* K) {
  T* ap = work;
  T* C = ap + p * p;
  T* aug = C + p * p;
  for (int64_t i = 0; i < p; ++i) ap_entries(A, P, p, i, 0, p, ap);
  for (int64_t u = 0; u < p; ++u) c_entries(P, Q, ap, p, u, 0, p, C);
  for (int64_t r = 0; r < 2 * p; ++r)
    for (int64_t c = 0; c < 3 * p; ++c) system_entry(A, P, ap, C, p, tau, r, c, aug);
  gauss_solve(aug, 2 * p, 3 * p);
  for (int64_t r = 0; r < 2 * p; ++r) coefficient_entries(aug, P, p, tau, r, 0, p, K);
}

// Gram blocks of one small n x p pair (row-major rows of stride p):
// A = X^T X, P = X^T G, Q = G^T G, accumulated row by row (contiguous inner loops).
template <typename T>
PDC_HOST_DEVICE void gram_blocks(const T* PDC_RESTRICT X, const T* PDC_RESTRICT G, int64_t n,
                                 int64_t p, T* PDC_RESTRICT A, T* PDC_RESTRICT P,
                                 T* PDC_RESTRICT Q) {
  for (int64_t e = 0; e < p * p; ++e) A[e] = P[e] = Q[e] = T(0);
  for (int64_t row = 0; row < n; ++row) {
    const T* x = X + row * p;
    const T* g = G + row * p;
    for (int64_t i = 0; i < p; ++i) {
      const T xi = x[i], gi = g[i];
      for (int64_t j = 0; j < p; ++j) {
        A[i * p + j] += xi * x[j];
        P[i * p + j] += xi * g[j];
        Q[i * p + j] += gi * g[j];
      }
    }
  }
}

// Y = X Kx + G Kg for one small matrix (row-major, stride p).
template <typename T>
PDC_HOST_DEVICE void combine(const T* PDC_RESTRICT X, const T* PDC_RESTRICT G,
                             const T* PDC_RESTRICT K, int64_t n, int64_t p, T* PDC_RESTRICT Y) {
  const T* kx = K;
  const T* kg = K + p * p;
  for (int64_t row = 0; row < n; ++row) {
    T* y = Y + row * p;
    for (int64_t j = 0; j < p; ++j) y[j] = T(0);
    for (int64_t k = 0; k < p; ++k) {
      const T xk = X[row * p + k], gk = G[row * p + k];
      for (int64_t j = 0; j < p; ++j) y[j] += xk * kx[k * p + j] + gk * kg[k * p + j];
    }
  }
}

// The whole step for one small contiguous matrix. `work` holds
// 3 p^2 (Gram blocks) + 2 p^2 (K) + workspace_size(p) elements.
template <typename T>
PDC_HOST_DEVICE void retract(const T* X, const T* G, int64_t n, int64_t p, T tau, T* work,
                             T* Y) {
  T* A = work;
  T* P = A + p * p;
  T* Q = P + p * p;
  T* K = Q + p * p;
  gram_blocks(X, G, n, p, A, P, Q);
  coefficients(A, P, Q, p, tau, K + 2 * p * p, K);
  combine(X, G, K, n, p, Y);
}

PDC_HOST_DEVICE int64_t retract_workspace_size(int64_t p) { return 5 * p * p + workspace_size(p); }

}  // namespace cayley
}  // namespace pydeepclust
