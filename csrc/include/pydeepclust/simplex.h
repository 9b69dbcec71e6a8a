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

template <typename T>
PDC_HOST_DEVICE T row_norm(const T* e, int64_t es, int64_t m) {
  T s = T(0);
  for (int64_t j = 0; j < m; ++j) {
    const T v = e[j * es];
    s += v * v;
  }
  return PDC_SQRT(s);
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

// Nearest code of one row. Ties go to the lowest index (like torch.min).
template <typename T>
PDC_HOST_DEVICE void row_assign(const T* e, int64_t es, const T* codes, const T* inv_cn,
                                int64_t k, int64_t m, T scale, T* dist, int64_t* label) {
  const T norm = row_norm(e, es, m);
  if (!is_finite(norm)) {  // NaN or inf in the row (or ||e||^2 overflowed)
    *dist = norm - norm;                                // NaN
    *label = -1;
    return;
  }
  if (norm == T(0)) {
    *dist = scale;
    *label = 0;
    return;
  }
  T best_dot = T(0);
  int64_t best = -1;
  for (int64_t c = 0; c < k; ++c) {
    // Compare cos(e, s_c) = dot / ||s_c|| (||e|| is common to all codes).
    const T cdot = dot_with_code(e, es, codes + c * m, m) * inv_cn[c];
    if (best < 0 || cdot > best_dot) {
      best_dot = cdot;
      best = c;
    }
  }
  *dist = scale * (T(1) - best_dot / norm);
  *label = best;
}

// Gradient of g * scale * (1 - cos(e, s_c)) with respect to e:
//   -g * scale / ||e|| * (s_c / ||s_c|| - cos * e / ||e||).
// Zero rows, non-finite rows and label < 0 give a zero gradient.
template <typename T>
PDC_HOST_DEVICE void row_assign_grad(const T* e, int64_t es, const T* codes, const T* inv_cn,
                                     int64_t m, int64_t label, T scale, T g, T* grad,
                                     int64_t gs) {
  const T norm = row_norm(e, es, m);
  const bool usable = label >= 0 && norm > T(0) && is_finite(norm);
  if (!usable) {
    for (int64_t j = 0; j < m; ++j) grad[j * gs] = T(0);
    return;
  }
  const T* code = codes + label * m;
  const T inv_norm = T(1) / norm;
  const T cos = dot_with_code(e, es, code, m) * inv_cn[label] * inv_norm;
  const T coef = -g * scale * inv_norm;
  for (int64_t j = 0; j < m; ++j) {
    grad[j * gs] = coef * (code[j] * inv_cn[label] - cos * e[j * es] * inv_norm);
  }
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
  if (dmin <= T(0)) {
    for (int64_t c = 0; c < k; ++c) {
      const T w = row[c * rs] <= T(0) ? T(1) : T(0);
      row[c * rs] = w;
      total += w;
    }
  } else {
    for (int64_t c = 0; c < k; ++c) {
      const T w = dmin / row[c * rs];
      row[c * rs] = w;
      total += w;
    }
  }
  const T inv_total = T(1) / total;
  for (int64_t c = 0; c < k; ++c) row[c * rs] *= inv_total;
}

// All k distances of one row (unscaled 1 - cos), written with stride rs.
template <typename T>
PDC_HOST_DEVICE void row_distances(const T* e, int64_t es, const T* codes, const T* inv_cn,
                                   int64_t k, int64_t m, T* out, int64_t rs) {
  const T norm = row_norm(e, es, m);
  const bool finite = is_finite(norm);
  for (int64_t c = 0; c < k; ++c) {
    if (!finite) {
      out[c * rs] = norm - norm;
    } else if (norm == T(0)) {
      out[c * rs] = T(1);
    } else {
      out[c * rs] = distance_from_dot(dot_with_code(e, es, codes + c * m, m), norm, inv_cn[c], T(1));
    }
  }
}

}  // namespace simplex
}  // namespace pydeepclust
