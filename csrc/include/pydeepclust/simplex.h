// Cosine distance to simplex codes (GenKSC cluster loss, soft KSC memberships).
//
// Torch-free, header-only: the CPU kernels, the CUDA kernels and the C++ unit
// tests all call these functions, so the arithmetic tested on the CPU is the
// arithmetic that runs on the GPU.
//
// Conventions
//   e      one score row of width m, element stride `es`
//   codes  k rows of width m, contiguous (k x m)
//   inv_cn 1 / ||s_c|| per code (precomputed once per call)
//   scale  multiplies the distance 1 - cos (GenKSC divides by the largest
//          possible nearest-code distance so the loss lies in [0, 1])
// A zero row has cos = 0 to every code by definition: distance `scale`,
// label 0, zero gradient. A non-finite row gets label -1 and a NaN distance
// so that callers can report it (the kernels never raise per row).
#pragma once

#include <stdint.h>

#include "pydeepclust/macros.h"

namespace pydeepclust {
namespace simplex {

// True for finite x; false for NaN and +-inf (no <cmath> needed on the device).
template <typename T>
PDC_HOST_DEVICE bool is_finite(T x) {
  return (x - x) == T(0);
}

// ||e||^2, summed in index order (the blocked CPU kernels sum in the same order).
template <typename T>
PDC_HOST_DEVICE T row_sumsq(const T* e, int64_t es, int64_t m) {
  T s = T(0);
  for (int64_t j = 0; j < m; ++j) {
    const T v = e[j * es];
    s += v * v;
  }
  return s;
}

template <typename T>
PDC_HOST_DEVICE T row_norm(const T* e, int64_t es, int64_t m) {
  return PDC_SQRT(row_sumsq(e, es, m));
}

template <typename T>
PDC_HOST_DEVICE T dot_with_code(const T* e, int64_t es, const T* code, int64_t m) {
  T s = T(0);
  for (int64_t j = 0; j < m; ++j) s += e[j * es] * code[j];
  return s;
}

// 1 - cos(e, s_c), scaled; `norm` is ||e|| (> 0).
template <typename T>
PDC_HOST_DEVICE T distance_from_dot(T dot, T norm, T inv_code_norm, T scale) {
  return scale * (T(1) - dot * inv_code_norm / norm);
}

// Whether code c, with cdot = dot(e, s_c) / ||s_c||, is nearer than the best so far
// (cos(e, s_c) = cdot / ||e||; ||e|| is common to all codes). Strictly greater: ties
// keep the lower index (like torch.max).
template <typename T>
PDC_HOST_DEVICE bool nearer(T cdot, T best_dot) {
  return cdot > best_dot;
}

// Distance and label of one row from ||e|| and the best cdot (label `best`): NaN
// and -1 for a non-finite row, `scale` and 0 for a zero row. Written as selects (no
// early return) so that the CPU blocks evaluate them in SIMD lanes.
template <typename T>
PDC_HOST_DEVICE T assign_distance(T norm, T best_dot, T scale) {
  const T d = scale * (T(1) - best_dot / (norm == T(0) ? T(1) : norm));
  return is_finite(norm) ? (norm == T(0) ? scale : d) : norm - norm;  // NaN: NaN or inf in
}                                                                     // the row (or overflow)

template <typename T, typename I>
PDC_HOST_DEVICE I assign_label(T norm, I best) {
  return is_finite(norm) ? (norm == T(0) ? I(0) : best) : I(-1);
}

template <typename T>
PDC_HOST_DEVICE void finish_assign(T sumsq, T best_dot, int64_t best, T scale, T* dist,
                                   int64_t* label) {
  const T norm = PDC_SQRT(sumsq);
  *dist = assign_distance(norm, best_dot, scale);
  *label = assign_label(norm, best);
}

// Nearest code of one row. Ties go to the lowest index (like torch.min).
template <typename T>
PDC_HOST_DEVICE void row_assign(const T* e, int64_t es, const T* codes, const T* inv_cn,
                                int64_t k, int64_t m, T scale, T* dist, int64_t* label) {
  const T sumsq = row_sumsq(e, es, m);
  T best_dot = T(0);
  int64_t best = 0;
  if (is_finite(sumsq) && sumsq > T(0)) {
    for (int64_t c = 0; c < k; ++c) {
      const T cdot = dot_with_code(e, es, codes + c * m, m) * inv_cn[c];
      if (c == 0 || nearer(cdot, best_dot)) {
        best_dot = cdot;
        best = c;
      }
    }
  }
  finish_assign(sumsq, best_dot, best, scale, dist, label);
}

// Coefficients of the gradient of g * scale * (1 - cos(e, s_c)) with respect to e,
//   -g * scale / ||e|| * (s_c / ||s_c|| - cos * e / ||e||)  =  a * s_c + b * e,
// from ||e|| and dot = dot(e, s_c). Returns false (and a = b = 0) for a zero or
// non-finite row or label < 0: their gradient is zero (write zeros: a * s_c + b * e
// would be NaN for a row holding inf). Selects only, as assign_distance.
template <typename T>
PDC_HOST_DEVICE bool grad_coefficients(T norm, T dot, T inv_code_norm, int64_t label, T scale,
                                       T g, T* a, T* b) {
  const bool usable = label >= 0 && norm > T(0) && is_finite(norm);
  const T inv_norm = T(1) / (usable ? norm : T(1));
  const T cos = dot * inv_code_norm * inv_norm;
  const T coef = -g * scale * inv_norm;
  *a = usable ? coef * inv_code_norm : T(0);
  *b = usable ? -coef * cos * inv_norm : T(0);
  return usable;
}

// Gradient of one row (see grad_coefficients), written with stride gs.
template <typename T>
PDC_HOST_DEVICE void row_assign_grad(const T* e, int64_t es, const T* codes, const T* inv_cn,
                                     int64_t m, int64_t label, T scale, T g, T* grad,
                                     int64_t gs) {
  const int64_t c = label > 0 ? label : 0;
  const T* code = codes + c * m;
  T a, b;
  if (!grad_coefficients(row_norm(e, es, m), dot_with_code(e, es, code, m), inv_cn[c], label,
                         scale, g, &a, &b)) {
    for (int64_t j = 0; j < m; ++j) grad[j * gs] = T(0);
    return;
  }
  for (int64_t j = 0; j < m; ++j) grad[j * gs] = a * code[j] + b * e[j * es];
}

// The weight dmin / d of one code's distance d, given the row's smallest distance dmin
// (dmin <= 0: 1 for the codes at distance <= 0, 0 for the others).
template <typename T>
PDC_HOST_DEVICE T membership_weight(T d, T dmin) {
  return dmin <= T(0) ? (d <= T(0) ? T(1) : T(0)) : dmin / d;
}

// Soft KSC memberships (Langone, Mall & Suykens 2013):
//   m_c = prod_{j != c} d_j / sum_l prod_{j != l} d_j  =  (1/d_c) / sum_l (1/d_l).
// Computed as (d_min/d_c) / sum_l (d_min/d_l): every ratio lies in [0, 1], so
// nothing overflows or underflows for large k. Distances equal to d_min = 0
// (a row exactly on a code) share the membership equally.
// In place: `row` holds the k distances on entry and the memberships on exit.
template <typename T>
PDC_HOST_DEVICE void memberships_from_distances(T* row, int64_t rs, int64_t k) {
  T dmin = row[0];
  for (int64_t c = 1; c < k; ++c) dmin = row[c * rs] < dmin ? row[c * rs] : dmin;
  if (!(dmin == dmin)) {  // NaN distances: NaN memberships
    for (int64_t c = 0; c < k; ++c) row[c * rs] = dmin;
    return;
  }
  T total = T(0);
  for (int64_t c = 0; c < k; ++c) {
    const T w = membership_weight(row[c * rs], dmin);
    row[c * rs] = w;
    total += w;
  }
  const T inv_total = T(1) / total;
  for (int64_t c = 0; c < k; ++c) row[c * rs] *= inv_total;
}

// Unscaled 1 - cos(e, s_c) from dot = dot(e, s_c), the row's ||e|| and 1 / ||e||:
// NaN for a non-finite row, 1 (cos = 0) for a zero row.
template <typename T>
PDC_HOST_DEVICE T code_distance(T dot, T norm, T inv_norm, T inv_code_norm) {
  if (!is_finite(norm)) return norm - norm;
  if (norm == T(0)) return T(1);
  return T(1) - dot * inv_code_norm * inv_norm;
}

// All k distances of one row (unscaled 1 - cos), written with stride rs.
template <typename T>
PDC_HOST_DEVICE void row_distances(const T* e, int64_t es, const T* codes, const T* inv_cn,
                                   int64_t k, int64_t m, T* out, int64_t rs) {
  const T norm = row_norm(e, es, m);
  const T inv_norm = T(1) / norm;
  for (int64_t c = 0; c < k; ++c) {
    out[c * rs] = code_distance(dot_with_code(e, es, codes + c * m, m), norm, inv_norm, inv_cn[c]);
  }
}

// ---------------------------------------------------------------- rows from dots
// The per-row results from precomputed dots dot[c * ds] = dot(e, s_c) (a GEMM's, in the
// CUDA kernels for wide codes), in pieces that run over codes c0 .. c0 + count - 1 so that
// a kernel can feed them one staged chunk of codes at a time. Called over consecutive
// chunks in order, they compute exactly what row_assign and row_distances +
// memberships_from_distances compute from the same dots (same operations, same order).

// 1 / ||s_c|| of one code of width m (summed in index order, as row_norm).
template <typename T>
PDC_HOST_DEVICE T inv_row_norm(const T* code, int64_t m) {
  return T(1) / row_norm(code, int64_t(1), m);
}

// Whether row_assign compares codes for a row with this ||e||^2 (finite and nonzero);
// finish_assign overrides the nearest code of any other row.
template <typename T>
PDC_HOST_DEVICE bool row_usable(T sumsq) {
  return is_finite(sumsq) && sumsq > T(0);
}

// s + ||e[0 .. count)||^2, continuing row_sumsq's index-order sum from s.
template <typename T>
PDC_HOST_DEVICE T accumulate_sumsq(T s, const T* e, int64_t es, int64_t count) {
  for (int64_t j = 0; j < count; ++j) {
    const T v = e[j * es];
    s += v * v;
  }
  return s;
}

// The running nearest code (row_assign's loop) over codes c0 .. c0 + count - 1.
template <typename T>
PDC_HOST_DEVICE void take_nearest(const T* dot, int64_t ds, const T* inv_cn, int64_t c0,
                                  int64_t count, T* best_dot, int64_t* best) {
  for (int64_t u = 0; u < count; ++u) {
    const int64_t c = c0 + u;
    const T cdot = dot[u * ds] * inv_cn[c];
    if (c == 0 || nearer(cdot, *best_dot)) {
      *best_dot = cdot;
      *best = c;
    }
  }
}

// row_assign from ||e||^2 and the k dots.
template <typename T>
PDC_HOST_DEVICE void assign_from_dots(T sumsq, const T* dot, int64_t ds, const T* inv_cn,
                                      int64_t k, T scale, T* dist, int64_t* label) {
  T best_dot = T(0);
  int64_t best = 0;
  if (row_usable(sumsq)) take_nearest(dot, ds, inv_cn, int64_t(0), k, &best_dot, &best);
  finish_assign(sumsq, best_dot, best, scale, dist, label);
}

// memberships_from_distances in three passes over the codes, each distance recomputed
// from its dot by code_distance (norm = sqrt(||e||^2), inv_norm = 1 / norm, as
// row_distances): (1) the smallest distance, (2) the sum of the weights, (3) the
// memberships.

template <typename T>
PDC_HOST_DEVICE void take_min_distance(const T* dot, int64_t ds, T norm, T inv_norm,
                                       const T* inv_cn, int64_t c0, int64_t count, T* dmin) {
  for (int64_t u = 0; u < count; ++u) {
    const int64_t c = c0 + u;
    const T d = code_distance(dot[u * ds], norm, inv_norm, inv_cn[c]);
    *dmin = c == 0 ? d : (d < *dmin ? d : *dmin);
  }
}

template <typename T>
PDC_HOST_DEVICE void add_weights(const T* dot, int64_t ds, T norm, T inv_norm, const T* inv_cn,
                                 int64_t c0, int64_t count, T dmin, T* total) {
  for (int64_t u = 0; u < count; ++u) {
    *total += membership_weight(code_distance(dot[u * ds], norm, inv_norm, inv_cn[c0 + u]), dmin);
  }
}

// out may alias dot (out == dot, os == ds): each dot is read before its membership is
// written. NaN distances (dmin NaN) give NaN memberships.
template <typename T>
PDC_HOST_DEVICE void write_memberships(const T* dot, int64_t ds, T norm, T inv_norm,
                                       const T* inv_cn, int64_t c0, int64_t count, T dmin,
                                       T inv_total, T* out, int64_t os) {
  for (int64_t u = 0; u < count; ++u) {
    const T w = membership_weight(code_distance(dot[u * ds], norm, inv_norm, inv_cn[c0 + u]),
                                  dmin);
    out[u * os] = dmin == dmin ? w * inv_total : dmin;
  }
}

// ||e|| and 1 / ||e|| from ||e||^2, as row_distances computes them.
template <typename T>
PDC_HOST_DEVICE void norm_and_inverse(T sumsq, T* norm, T* inv_norm) {
  *norm = PDC_SQRT(sumsq);
  *inv_norm = T(1) / *norm;
}

// row_distances + memberships_from_distances from ||e||^2 and the k dots.
template <typename T>
PDC_HOST_DEVICE void memberships_from_dots(T sumsq, const T* dot, int64_t ds, const T* inv_cn,
                                           int64_t k, T* out, int64_t os) {
  T norm, inv_norm;
  norm_and_inverse(sumsq, &norm, &inv_norm);
  T dmin = T(0), total = T(0);
  take_min_distance(dot, ds, norm, inv_norm, inv_cn, int64_t(0), k, &dmin);
  add_weights(dot, ds, norm, inv_norm, inv_cn, int64_t(0), k, dmin, &total);
  write_memberships(dot, ds, norm, inv_norm, inv_cn, int64_t(0), k, dmin, T(1) / total, out, os);
}

// ---------------------------------------------------------------- register rows
// A row of width m <= W held in W registers (T r[W], zero past m), for kernels templated
// on a width bucket W: every loop has the compile-time length W and is unrolled, so that
// r[j] is a register. Sums run in index order over j < m, as row_sumsq and dot_with_code
// (sumsq also adds the padding's 0 * 0 = +0, which leaves a sum of squares unchanged: it
// is never -0), and the per-row results go through the functions above, so each helper
// computes exactly what its per-row counterpart computes.
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__) || defined(__clang__)
#define PDC_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__) || defined(__HIPCC__)
#define PDC_UNROLL  // nvcc's host pass: these helpers run on the device only there
#elif defined(__GNUC__)
#define PDC_UNROLL _Pragma("GCC unroll 64")
#else
#define PDC_UNROLL
#endif

// r[j0 + c] = e[c * es] for c < count and 0 for count <= c < C (j0 + c < W): one chunk of
// C columns of a row (a staged tile holds C columns of 32 rows). j0 must be a
// compile-time constant after unrolling (a multiple of C in an unrolled loop).
template <typename T, int W, int C>
PDC_HOST_DEVICE void load_row_chunk(const T* e, int64_t es, int j0, int count, T (&r)[W]) {
  PDC_UNROLL for (int c = 0; c < C; ++c) {
    if (j0 + c < W) r[j0 + c] = c < count ? e[c * es] : T(0);
  }
}

// r = the row e[0 .. m) (m <= W), zero past m.
template <typename T, int W>
PDC_HOST_DEVICE void load_row(const T* e, int64_t es, int m, T (&r)[W]) {
  load_row_chunk<T, W, W>(e, es, 0, m, r);
}

// out[c * os] = r[j0 + c] for c < count (count <= C, j0 + c < W).
template <typename T, int W, int C>
PDC_HOST_DEVICE void store_row_chunk(const T (&r)[W], int j0, int count, T* out, int64_t os) {
  PDC_UNROLL for (int c = 0; c < C; ++c) {
    if (j0 + c < W && c < count) out[c * os] = r[j0 + c];
  }
}

// row_sumsq of a register row.
template <typename T, int W>
PDC_HOST_DEVICE T reg_sumsq(const T (&r)[W]) {
  T s = T(0);
  PDC_UNROLL for (int j = 0; j < W; ++j) s += r[j] * r[j];
  return s;
}

// dot_with_code of a register row (code read for j < m only).
template <typename T, int W>
PDC_HOST_DEVICE T reg_dot(const T (&r)[W], const T* code, int m) {
  T s = T(0);
  PDC_UNROLL for (int j = 0; j < W; ++j) {
    if (j < m) s += r[j] * code[j];
  }
  return s;
}

// row_assign of a register row (codes k x m, contiguous).
template <typename T, int W>
PDC_HOST_DEVICE void reg_assign(const T (&r)[W], int m, const T* codes, const T* inv_cn,
                                int64_t k, T scale, T* dist, int64_t* label) {
  const T sumsq = reg_sumsq<T, W>(r);
  T best_dot = T(0);
  int64_t best = 0;
  if (row_usable(sumsq)) {
    for (int64_t c = 0; c < k; ++c) {
      const T cdot = reg_dot<T, W>(r, codes + c * m, m) * inv_cn[c];
      if (c == 0 || nearer(cdot, best_dot)) {
        best_dot = cdot;
        best = c;
      }
    }
  }
  finish_assign(sumsq, best_dot, best, scale, dist, label);
}

// row_distances + memberships_from_distances of a register row, out with stride os.
template <typename T, int W>
PDC_HOST_DEVICE void reg_memberships(const T (&r)[W], int m, const T* codes, const T* inv_cn,
                                     int64_t k, T* out, int64_t os) {
  const T norm = PDC_SQRT((reg_sumsq<T, W>(r)));
  const T inv_norm = T(1) / norm;
  for (int64_t c = 0; c < k; ++c) {
    out[c * os] = code_distance(reg_dot<T, W>(r, codes + c * m, m), norm, inv_norm, inv_cn[c]);
  }
  memberships_from_distances(out, os, k);
}

// row_assign_grad of a register row, in place: r holds the row on entry and its
// gradient on exit (zero past m).
template <typename T, int W>
PDC_HOST_DEVICE void reg_assign_grad(T (&r)[W], int m, const T* codes, const T* inv_cn,
                                     int64_t label, T scale, T g) {
  const int64_t c = label > 0 ? label : 0;
  const T* code = codes + c * m;
  T a, b;
  const bool usable = grad_coefficients(PDC_SQRT((reg_sumsq<T, W>(r))), reg_dot<T, W>(r, code, m),
                                        inv_cn[c], label, scale, g, &a, &b);
  PDC_UNROLL for (int j = 0; j < W; ++j) {
    r[j] = usable && j < m ? a * code[j] + b * r[j] : T(0);
  }
}

#if !defined(__CUDACC__) && !defined(__HIPCC__)
// ---------------------------------------------------------------- CPU row blocks
// Rows in lanes: a block of up to L rows is transposed to (m, L), so that every loop
// below does the same operation on L independent rows, which compilers vectorise
// without reassociating any sum. Each row's sums run in the order of row_sumsq and
// dot_with_code, and the per-row results go through the functions above, so a block
// computes what the per-row functions compute (the CUDA kernels call those).

#if defined(_OPENMP)
#define PDC_LANES _Pragma("omp simd")
#else
#define PDC_LANES
#endif

// et (m x L) <- rows [0, rows) of e (row stride rs, element stride es); lanes past
// `rows` are zero.
template <typename T, int L>
PDC_CPU_INLINE void load_rows(const T* e, int64_t rs, int64_t es, int64_t rows, int64_t m,
                              T* et) {
  if (rows == L) {
    for (int64_t j = 0; j < m; ++j) {
      PDC_LANES for (int i = 0; i < L; ++i) et[j * L + i] = e[i * rs + j * es];
    }
    return;
  }
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = e + i * rs;
    for (int64_t j = 0; j < m; ++j) et[j * L + i] = row[j * es];
  }
  for (int64_t i = rows; i < L; ++i) {
    for (int64_t j = 0; j < m; ++j) et[j * L + i] = T(0);
  }
}

template <typename T, int L>
PDC_CPU_INLINE void lanes_sumsq(const T* et, int64_t m, T* sumsq) {
  PDC_LANES for (int i = 0; i < L; ++i) sumsq[i] = T(0);
  for (int64_t j = 0; j < m; ++j) {
    PDC_LANES for (int i = 0; i < L; ++i) sumsq[i] += et[j * L + i] * et[j * L + i];
  }
}

// norm[i] = sqrt(sumsq[i]). A plain loop: std::sqrt may set errno, which keeps it out
// of SIMD lanes unless built with -fno-math-errno; the selects that follow vectorise.
template <typename T, int L>
PDC_CPU_INLINE void lanes_sqrt(const T* sumsq, T* norm) {
  for (int i = 0; i < L; ++i) norm[i] = PDC_SQRT(sumsq[i]);
}

// dot[c * L + i] = dot(row i, code c) for the C codes at `codes` (row stride m), each
// summed in index order; C > 1 reads each element of the block once for C codes.
template <typename T, int L, int C>
PDC_CPU_INLINE void lanes_dot(const T* et, int64_t m, const T* codes, T* dot) {
  T acc[C][L];
  for (int c = 0; c < C; ++c) {
    PDC_LANES for (int i = 0; i < L; ++i) acc[c][i] = T(0);
  }
  for (int64_t j = 0; j < m; ++j) {
    const T* col = et + j * L;
    for (int c = 0; c < C; ++c) {
      const T cj = codes[c * m + j];
      PDC_LANES for (int i = 0; i < L; ++i) acc[c][i] += col[i] * cj;
    }
  }
  for (int c = 0; c < C; ++c) {
    PDC_LANES for (int i = 0; i < L; ++i) dot[c * L + i] = acc[c][i];
  }
}

// Codes per sweep over a block.
constexpr int kCodesPerSweep = 2;

// The running nearest code of each lane, given code c's dots. The label is held as a
// T (exact: k < 2^24 codes), so that it is selected by the same mask as the dot.
// (Selects into new arrays: compilers turn `x[i] = take ? y : x[i]` into masked
// stores, which stall the next sweep's loads.)
template <typename T, int L>
PDC_CPU_INLINE void block_take(const T* dot, T icn, int64_t c, T* best, T* lab) {
  const T cc = static_cast<T>(c);
  T nb[L], nl[L];
  PDC_LANES for (int i = 0; i < L; ++i) {
    const T cdot = dot[i] * icn;
    const bool take = nearer(cdot, best[i]);
    nb[i] = take ? cdot : best[i];
    nl[i] = take ? cc : lab[i];
  }
  PDC_LANES for (int i = 0; i < L; ++i) {
    best[i] = nb[i];
    lab[i] = nl[i];
  }
}

// row_assign for `rows` (<= L) rows; et: scratch of m * L.
template <typename T, int L>
PDC_CPU_INLINE void block_assign(const T* e, int64_t rs, int64_t es, int64_t rows,
                                 const T* codes, const T* inv_cn, int64_t k, int64_t m, T scale,
                                 T* dist, int64_t* label, T* et) {
  load_rows<T, L>(e, rs, es, rows, m, et);
  T sumsq[L], dot[kCodesPerSweep * L], best[L], lab[L];
  lanes_sumsq<T, L>(et, m, sumsq);
  lanes_dot<T, L, 1>(et, m, codes, dot);
  PDC_LANES for (int i = 0; i < L; ++i) {
    best[i] = dot[i] * inv_cn[0];
    lab[i] = T(0);
  }
  int64_t c = 1;
  for (; c + kCodesPerSweep <= k; c += kCodesPerSweep) {
    lanes_dot<T, L, kCodesPerSweep>(et, m, codes + c * m, dot);
    for (int u = 0; u < kCodesPerSweep; ++u) block_take<T, L>(dot + u * L, inv_cn[c + u], c + u,
                                                             best, lab);
  }
  for (; c < k; ++c) {
    lanes_dot<T, L, 1>(et, m, codes + c * m, dot);
    block_take<T, L>(dot, inv_cn[c], c, best, lab);
  }
  T norm[L];
  lanes_sqrt<T, L>(sumsq, norm);
  PDC_LANES for (int i = 0; i < L; ++i) {
    best[i] = assign_distance(norm[i], best[i], scale);
    lab[i] = assign_label(norm[i], lab[i]);  // -1, 0 or the code, as a T
  }
  if (rows == L) {
    PDC_LANES for (int i = 0; i < L; ++i) {
      dist[i] = best[i];
      label[i] = static_cast<int64_t>(lab[i]);
    }
    return;
  }
  for (int64_t i = 0; i < rows; ++i) {
    dist[i] = best[i];
    label[i] = static_cast<int64_t>(lab[i]);
  }
}

// row_assign_grad for `rows` (<= L) rows, gradient rows contiguous (width m); et:
// scratch of m * L. The norms come from the transposed block (L independent sums per
// instruction); the dot with each row's own code and the gradient row go row by row.
template <typename T, int L>
PDC_CPU_INLINE void block_assign_grad(const T* e, int64_t rs, int64_t es, int64_t rows,
                                      const T* codes, const T* inv_cn, int64_t m,
                                      const int64_t* label, T scale, const T* g, int64_t gs,
                                      T* grad, T* et) {
  load_rows<T, L>(e, rs, es, rows, m, et);
  T sumsq[L], norm[L];
  lanes_sumsq<T, L>(et, m, sumsq);
  lanes_sqrt<T, L>(sumsq, norm);
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = e + i * rs;
    const int64_t c = label[i] > 0 ? label[i] : 0;
    const T* code = codes + c * m;
    T a, b;
    T* out = grad + i * m;
    if (!grad_coefficients(norm[i], dot_with_code(row, es, code, m), inv_cn[c], label[i], scale,
                           g[i * gs], &a, &b)) {
      for (int64_t j = 0; j < m; ++j) out[j] = T(0);
      continue;
    }
    for (int64_t j = 0; j < m; ++j) out[j] = a * code[j] + b * row[j * es];
  }
}

// row_distances + memberships_from_distances for `rows` (<= L) rows, out (rows x k,
// row stride os); scratch: et (m * L) and dk (k * L).
template <typename T, int L>
PDC_CPU_INLINE void block_memberships(const T* e, int64_t rs, int64_t es, int64_t rows,
                                      const T* codes, const T* inv_cn, int64_t k, int64_t m,
                                      T* out, int64_t os, T* et, T* dk) {
  load_rows<T, L>(e, rs, es, rows, m, et);
  T sumsq[L];
  lanes_sumsq<T, L>(et, m, sumsq);
  int64_t c = 0;
  for (; c + kCodesPerSweep <= k; c += kCodesPerSweep) {
    lanes_dot<T, L, kCodesPerSweep>(et, m, codes + c * m, dk + c * L);
  }
  for (; c < k; ++c) lanes_dot<T, L, 1>(et, m, codes + c * m, dk + c * L);
  T norm[L];
  lanes_sqrt<T, L>(sumsq, norm);
  for (int64_t i = 0; i < rows; ++i) {
    const T inv_norm = T(1) / norm[i];
    T* o = out + i * os;
    for (int64_t c = 0; c < k; ++c) {
      o[c] = code_distance(dk[c * L + i], norm[i], inv_norm, inv_cn[c]);
    }
    memberships_from_distances(o, int64_t(1), k);
  }
}
#endif  // !__CUDACC__

}  // namespace simplex
}  // namespace pydeepclust
