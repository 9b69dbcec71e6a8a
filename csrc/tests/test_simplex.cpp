// Unit tests of csrc/include/pydeepclust/simplex.h against hand-computed values,
// finite differences and the product form of the soft memberships.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "pydeepclust/simplex.h"

namespace sx = pydeepclust::simplex;

// Regular simplex codes for k = 3 in R^2 (unit norm, pairwise cosine -1/2).
template <typename T>
std::vector<T> codes3() {
  const T h = T(std::sqrt(3.0) / 2);
  return {T(1), T(0), T(-0.5), h, T(-0.5), -h};
}

template <typename T>
void test_assign_table(double tol) {
  const auto codes = codes3<T>();
  const T inv_cn[3] = {1, 1, 1};
  struct Case { T e0, e1; int64_t label; double dist; };
  const Case cases[] = {
      {T(2), T(0), 0, 0.0},                     // on code 0
      {T(-0.5), T(std::sqrt(3.0) / 2), 1, 0.0},  // on code 1
      {T(0), T(-1), 2, 1 - std::sqrt(3.0) / 2},  // between codes 0 and 2 -> nearer code 2
      {T(-1), T(0), 1, 0.5},                    // opposite code 0: equidistant 1 and 2, lower index
      {T(0), T(0), 0, 1.0},                     // zero row: cos = 0, label 0
  };
  for (const auto& c : cases) {
    const T e[2] = {c.e0, c.e1};
    T dist = -1;
    int64_t label = -2;
    sx::row_assign(e, 1, codes.data(), inv_cn, 3, 2, T(1), &dist, &label);
    CHECK(label == c.label);
    CHECK_NEAR(dist, c.dist, tol);
  }
  // scale multiplies, strides are honoured
  const T strided[4] = {T(0), T(99), T(-1), T(99)};
  T dist;
  int64_t label;
  sx::row_assign(strided, 2, codes.data(), inv_cn, 3, 2, T(2), &dist, &label);
  CHECK(label == 2);
  CHECK_NEAR(dist, 2 * (1 - std::sqrt(3.0) / 2), tol);
}

template <typename T>
void test_non_finite_rows() {
  const auto codes = codes3<T>();
  const T inv_cn[3] = {1, 1, 1};
  const T rows[3][2] = {{std::numeric_limits<T>::quiet_NaN(), T(1)},
                        {T(1), std::numeric_limits<T>::infinity()},
                        {-std::numeric_limits<T>::infinity(), T(0)}};
  for (const auto& e : rows) {
    T dist = 0;
    int64_t label = 0;
    sx::row_assign(e, 1, codes.data(), inv_cn, 3, 2, T(1), &dist, &label);
    CHECK(label == -1);
    CHECK(std::isnan(dist));
    T grad[2] = {T(7), T(7)};
    sx::row_assign_grad(e, 1, codes.data(), inv_cn, 2, 0, T(1), T(1), grad, 1);
    CHECK(grad[0] == T(0) && grad[1] == T(0));
  }
}

// Gradient against central differences of the distance to the chosen code.
void test_gradient_finite_differences() {
  const auto codes = codes3<double>();
  const double inv_cn[3] = {1, 1, 1};
  const double e[2] = {0.3, -0.9};
  double dist;
  int64_t label;
  sx::row_assign(e, 1, codes.data(), inv_cn, 3, 2, 1.5, &dist, &label);
  double grad[2];
  sx::row_assign_grad(e, 1, codes.data(), inv_cn, 2, label, 1.5, 0.7, grad, 1);
  for (int j = 0; j < 2; ++j) {
    double ep[2] = {e[0], e[1]}, em[2] = {e[0], e[1]};
    const double h = 1e-6;
    ep[j] += h;
    em[j] -= h;
    double dp, dm;
    int64_t lp, lm;
    sx::row_assign(ep, 1, codes.data(), inv_cn, 3, 2, 1.5, &dp, &lp);
    sx::row_assign(em, 1, codes.data(), inv_cn, 3, 2, 1.5, &dm, &lm);
    CHECK(lp == label && lm == label);
    CHECK_NEAR(grad[j], 0.7 * (dp - dm) / (2 * h), 1e-8);
  }
  const double zero[2] = {0, 0};
  sx::row_assign_grad(zero, 1, codes.data(), inv_cn, 2, 0, 1.0, 1.0, grad, 1);
  CHECK(grad[0] == 0 && grad[1] == 0);
}

// Memberships: the stable form equals Langone et al.'s product form.
void test_memberships_product_form() {
  const double d[4] = {0.2, 1.3, 0.7, 1.9};
  double m[4] = {d[0], d[1], d[2], d[3]};
  sx::memberships_from_distances(m, 1, 4);
  double prods[4], total = 0;
  for (int c = 0; c < 4; ++c) {
    prods[c] = 1;
    for (int j = 0; j < 4; ++j)
      if (j != c) prods[c] *= d[j];
    total += prods[c];
  }
  double sum = 0;
  for (int c = 0; c < 4; ++c) {
    CHECK_NEAR(m[c], prods[c] / total, 1e-15);
    sum += m[c];
  }
  CHECK_NEAR(sum, 1.0, 1e-15);
  // exactly on a code; two codes tied at zero share equally
  double on[3] = {0.0, 1.5, 1.5};
  sx::memberships_from_distances(on, 1, 3);
  CHECK(on[0] == 1.0 && on[1] == 0.0 && on[2] == 0.0);
  double tie[3] = {0.0, 0.0, 1.0};
  sx::memberships_from_distances(tie, 1, 3);
  CHECK_NEAR(tie[0], 0.5, 0);
  CHECK_NEAR(tie[1], 0.5, 0);
}

// k = 100 in float32: products of 99 distances underflow, the ratio form must not.
void test_memberships_large_k_float() {
  const int k = 100;
  std::vector<float> row(k);
  for (int c = 0; c < k; ++c) row[c] = 1e-3f + 1e-4f * float(c);
  sx::memberships_from_distances(row.data(), 1, k);
  float sum = 0;
  for (int c = 0; c < k; ++c) {
    CHECK(std::isfinite(row[c]) && row[c] > 0);
    sum += row[c];
  }
  CHECK_NEAR(sum, 1.0, 1e-5);
  CHECK(row[0] > row[k - 1]);
}

void test_row_distances_zero_row() {
  const auto codes = codes3<double>();
  const double inv_cn[3] = {1, 1, 1};
  const double zero[2] = {0, 0};
  double out[3];
  sx::row_distances(zero, 1, codes.data(), inv_cn, 3, 2, out, 1);
  CHECK(out[0] == 1 && out[1] == 1 && out[2] == 1);
}

// The CPU row blocks (rows in SIMD lanes) against the per-row functions (distances,
// labels, memberships and the gradient): random rows
// with zero, NaN and inf rows among them, a partial last block, strided rows, ties.
template <typename T>
void test_blocks_match_rows(int64_t k, int64_t m, int64_t es) {
  constexpr int L = 8;
  const int64_t n = 2 * L + 3, rs = m * es + 1;
  std::vector<T> codes(k * m), inv_cn(k), e(n * rs, T(7));
  uint64_t state = 12345 + k;
  auto uniform = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return double(state >> 11) / double(1ULL << 53) * 2 - 1;
  };
  for (auto& v : codes) v = T(uniform());
  for (int64_t c = 0; c < k; ++c) inv_cn[c] = T(1) / sx::row_norm(codes.data() + c * m, 1, m);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) e[i * rs + j * es] = T(uniform());
  }
  for (int64_t j = 0; j < m; ++j) {
    e[1 * rs + j * es] = T(0);                 // zero row
    e[4 * rs + j * es] = codes[0 * m + j] + codes[(k - 1) * m + j];  // near a tie
  }
  e[2 * rs] = std::numeric_limits<T>::quiet_NaN();
  e[(n - 1) * rs] = std::numeric_limits<T>::infinity();  // last row, first element
  std::vector<T> dist(n), ref_dist(n), et(m * L), dk(k * L), mem(n * k), ref_mem(n * k);
  std::vector<int64_t> label(n), ref_label(n);
  for (int64_t i0 = 0; i0 < n; i0 += L) {
    const int64_t rows = std::min<int64_t>(L, n - i0);
    sx::block_assign<T, L>(e.data() + i0 * rs, rs, es, rows, codes.data(), inv_cn.data(), k, m,
                           T(1.5), dist.data() + i0, label.data() + i0, et.data());
    sx::block_memberships<T, L>(e.data() + i0 * rs, rs, es, rows, codes.data(), inv_cn.data(), k,
                                m, mem.data() + i0 * k, k, et.data(), dk.data());
  }
  for (int64_t i = 0; i < n; ++i) {
    sx::row_assign(e.data() + i * rs, es, codes.data(), inv_cn.data(), k, m, T(1.5),
                   &ref_dist[i], &ref_label[i]);
    sx::row_distances(e.data() + i * rs, es, codes.data(), inv_cn.data(), k, m,
                      ref_mem.data() + i * k, 1);
    sx::memberships_from_distances(ref_mem.data() + i * k, 1, k);
    CHECK(label[i] == ref_label[i]);
    CHECK((std::isnan(dist[i]) && std::isnan(ref_dist[i])) || dist[i] == ref_dist[i]);
    for (int64_t c = 0; c < k; ++c) {
      const T a = mem[i * k + c], b = ref_mem[i * k + c];
      CHECK((std::isnan(a) && std::isnan(b)) || a == b);
    }
  }
  CHECK(label[1] == 0);
  CHECK_NEAR(dist[1], 1.5, 0);
  CHECK(label[2] == -1 && label[n - 1] == -1);

  // the gradient blocks: per-row upstream gradients, the labels above (zero, -1 rows)
  std::vector<T> g(n), grad(n * m, T(-3)), ref_grad(n * m);
  for (auto& v : g) v = T(uniform());
  for (int64_t i0 = 0; i0 < n; i0 += L) {
    const int64_t rows = std::min<int64_t>(L, n - i0);
    sx::block_assign_grad<T, L>(e.data() + i0 * rs, rs, es, rows, codes.data(), inv_cn.data(), m,
                                label.data() + i0, T(1.5), g.data() + i0, 1,
                                grad.data() + i0 * m, et.data());
  }
  for (int64_t i = 0; i < n; ++i) {
    sx::row_assign_grad(e.data() + i * rs, es, codes.data(), inv_cn.data(), m, label[i], T(1.5),
                        g[i], ref_grad.data() + i * m, 1);
    for (int64_t j = 0; j < m; ++j) CHECK(grad[i * m + j] == ref_grad[i * m + j]);
  }
  for (int64_t j = 0; j < m; ++j) CHECK(grad[1 * m + j] == T(0) && grad[2 * m + j] == T(0));
}

// ---------------------------------------------------------------- register rows, dots
// The helpers the CUDA kernels use (rows in W registers, results from precomputed dots
// fed in chunks) against the per-row functions: bit for bit (NaN matching NaN).
template <typename T>
bool same(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

template <typename T>
struct Lcg {
  uint64_t state;
  T next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return T(double(state >> 11) / double(1ULL << 53) * 2 - 1);
  }
};

// Rows of width m (element stride es) that cover every case: random, zero, NaN, +-inf,
// overflowing ||e||^2, exactly on a code, on a duplicated code (a tie), halfway between
// two codes, tiny (subnormal squares).
template <typename T>
std::vector<std::vector<T>> special_rows(const std::vector<T>& codes, int64_t k, int m,
                                         Lcg<T>& rng) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const T big = std::sqrt(std::numeric_limits<T>::max());
  std::vector<std::vector<T>> rows;
  for (int t = 0; t < 4; ++t) {
    std::vector<T> r(m);
    for (auto& v : r) v = rng.next();
    rows.push_back(r);
  }
  rows.push_back(std::vector<T>(m, T(0)));
  std::vector<T> r(m);
  for (int j = 0; j < m; ++j) r[j] = rng.next();
  r[m / 2] = nan;
  rows.push_back(r);
  r[m / 2] = inf;
  rows.push_back(r);
  r[m - 1] = -inf;
  rows.push_back(r);
  for (int j = 0; j < m; ++j) r[j] = big * T(2) * (j % 2 ? T(1) : T(-1));  // finite, sumsq inf
  rows.push_back(r);
  for (int j = 0; j < m; ++j) r[j] = codes[(k - 1) * m + j] * T(3);       // on the last code
  rows.push_back(r);
  for (int j = 0; j < m; ++j) r[j] = codes[j];                            // codes 0 and 1 tie
  rows.push_back(r);
  for (int j = 0; j < m; ++j) r[j] = codes[j] + codes[(k - 1) * m + j];   // between two
  rows.push_back(r);
  for (int j = 0; j < m; ++j) r[j] = std::numeric_limits<T>::min() * rng.next();  // tiny
  rows.push_back(r);
  return rows;
}

template <typename T, int W>
void test_register_rows_one(int m, int64_t k, int64_t es, uint64_t seed) {
  Lcg<T> rng{seed};
  std::vector<T> codes(k * m), inv_cn(k);
  for (auto& v : codes) v = rng.next();
  if (k > 1) {
    for (int j = 0; j < m; ++j) codes[m + j] = codes[j];  // code 1 duplicates code 0: ties
  }
  for (int64_t c = 0; c < k; ++c) {
    inv_cn[c] = T(1) / sx::row_norm(codes.data() + c * m, 1, m);
    CHECK(same(sx::inv_row_norm(codes.data() + c * m, m), inv_cn[c]));
  }
  const T scale = T(1.5);
  for (const auto& row : special_rows(codes, k, m, rng)) {
    std::vector<T> e(m * es + 1, T(-9));
    for (int j = 0; j < m; ++j) e[j * es] = row[j];
    const T* ep = e.data();

    T r[W];
    for (auto& v : r) v = T(-7);
    sx::load_row<T, W>(ep, es, m, r);
    for (int j = 0; j < W; ++j) CHECK(same(r[j], j < m ? row[j] : T(0)));
    // the same row in chunks of 4 columns
    T rc[W];
    for (int j0 = 0; j0 < W; j0 += 4) {
      const int count = std::max(0, std::min(4, m - j0));
      sx::load_row_chunk<T, W, 4>(ep + j0 * es, es, j0, count, rc);
    }
    for (int j = 0; j < W; ++j) CHECK(same(rc[j], r[j]));

    const T sumsq = sx::row_sumsq(ep, es, m);
    CHECK(same(sx::reg_sumsq<T, W>(r), sumsq));
    for (int64_t c = 0; c < k; ++c) {
      CHECK(same(sx::reg_dot<T, W>(r, codes.data() + c * m, m),
                 sx::dot_with_code(ep, es, codes.data() + c * m, m)));
    }
    for (int chunk : {1, 3, 32}) {
      T s = T(0);
      for (int j0 = 0; j0 < m; j0 += chunk) {
        s = sx::accumulate_sumsq(s, ep + j0 * es, es, std::min(chunk, m - j0));
      }
      CHECK(same(s, sumsq));
    }

    // assignment: registers and dots (whole and in chunks) against row_assign
    T ref_dist, dist;
    int64_t ref_label, label;
    sx::row_assign(ep, es, codes.data(), inv_cn.data(), k, m, scale, &ref_dist, &ref_label);
    sx::reg_assign<T, W>(r, m, codes.data(), inv_cn.data(), k, scale, &dist, &label);
    CHECK(same(dist, ref_dist) && label == ref_label);
    std::vector<T> dots(2 * k, T(-5));  // stride 2
    for (int64_t c = 0; c < k; ++c) {
      dots[2 * c] = sx::dot_with_code(ep, es, codes.data() + c * m, m);
    }
    sx::assign_from_dots(sumsq, dots.data(), 2, inv_cn.data(), k, scale, &dist, &label);
    CHECK(same(dist, ref_dist) && label == ref_label);
    for (int64_t chunk : {1, 7, 32}) {
      T best_dot = T(0);
      int64_t best = 0;
      for (int64_t c0 = 0; c0 < k; c0 += chunk) {
        if (sx::row_usable(sumsq)) {
          sx::take_nearest(dots.data() + 2 * c0, 2, inv_cn.data(), c0, std::min(chunk, k - c0),
                           &best_dot, &best);
        }
      }
      sx::finish_assign(sumsq, best_dot, best, scale, &dist, &label);
      CHECK(same(dist, ref_dist) && label == ref_label);
    }
    if (k > 1 && ref_label >= 0) CHECK(ref_label != 1);  // the tie goes to code 0

    // memberships: registers, dots, dots in chunks (in place), against the per-row path
    std::vector<T> ref_mem(k), mem(2 * k, T(-3));
    sx::row_distances(ep, es, codes.data(), inv_cn.data(), k, m, ref_mem.data(), 1);
    sx::memberships_from_distances(ref_mem.data(), 1, k);
    sx::reg_memberships<T, W>(r, m, codes.data(), inv_cn.data(), k, mem.data(), 2);
    for (int64_t c = 0; c < k; ++c) CHECK(same(mem[2 * c], ref_mem[c]));
    sx::memberships_from_dots(sumsq, dots.data(), 2, inv_cn.data(), k, mem.data(), 1);
    for (int64_t c = 0; c < k; ++c) CHECK(same(mem[c], ref_mem[c]));
    for (int64_t chunk : {1, 5, 32}) {
      std::vector<T> buf(dots);  // overwritten in place, as the CUDA epilogue does
      T norm, inv_norm;
      sx::norm_and_inverse(sumsq, &norm, &inv_norm);
      T dmin = T(0), total = T(0);
      for (int64_t c0 = 0; c0 < k; c0 += chunk) {
        sx::take_min_distance(buf.data() + 2 * c0, 2, norm, inv_norm, inv_cn.data(), c0,
                              std::min(chunk, k - c0), &dmin);
      }
      for (int64_t c0 = 0; c0 < k; c0 += chunk) {
        sx::add_weights(buf.data() + 2 * c0, 2, norm, inv_norm, inv_cn.data(), c0,
                        std::min(chunk, k - c0), dmin, &total);
      }
      for (int64_t c0 = 0; c0 < k; c0 += chunk) {
        sx::write_memberships(buf.data() + 2 * c0, 2, norm, inv_norm, inv_cn.data(), c0,
                              std::min(chunk, k - c0), dmin, T(1) / total, buf.data() + 2 * c0,
                              2);
      }
      for (int64_t c = 0; c < k; ++c) CHECK(same(buf[2 * c], ref_mem[c]));
    }

    // gradient, in place in the registers, for several labels (-1: none)
    for (int64_t lab : {int64_t(-1), int64_t(0), ref_label, k - 1}) {
      const T g = rng.next();
      std::vector<T> ref_grad(m);
      sx::row_assign_grad(ep, es, codes.data(), inv_cn.data(), m, lab, scale, g, ref_grad.data(),
                          1);
      T gr[W];
      sx::load_row<T, W>(ep, es, m, gr);
      sx::reg_assign_grad<T, W>(gr, m, codes.data(), inv_cn.data(), lab, scale, g);
      for (int j = 0; j < W; ++j) CHECK(same(gr[j], j < m ? ref_grad[j] : T(0)));
      std::vector<T> out(3 * m, T(-1));
      for (int j0 = 0; j0 < W; j0 += 8) {
        sx::store_row_chunk<T, W, 8>(gr, j0, std::max(0, std::min(8, m - j0)), out.data() + 3 * j0,
                                     3);
      }
      for (int j = 0; j < 3 * m; ++j) CHECK(same(out[j], j % 3 ? T(-1) : ref_grad[j / 3]));
    }
  }
}

// Every width m = 1 .. W of the bucket W, k from 1 to 50 (and k = m + 1, the simplex
// codes' case), contiguous and strided rows.
template <typename T, int W>
void test_register_rows() {
  for (int m = 1; m <= W; ++m) {
    for (int64_t k : {int64_t(1), int64_t(2), int64_t(3), int64_t(m + 1), int64_t(50)}) {
      if (k > 65) continue;
      test_register_rows_one<T, W>(m, k, 1, 1000 * m + k);
      if (m % 5 == 1) test_register_rows_one<T, W>(m, k, 3, 7 + m);
    }
  }
}

int main() {
  test_blocks_match_rows<float>(3, 2, 1);
  test_blocks_match_rows<float>(10, 9, 1);
  test_blocks_match_rows<float>(50, 49, 2);
  test_blocks_match_rows<double>(7, 6, 1);
  test_blocks_match_rows<double>(50, 49, 3);
  test_assign_table<float>(1e-6);
  test_assign_table<double>(1e-15);
  test_non_finite_rows<float>();
  test_non_finite_rows<double>();
  test_gradient_finite_differences();
  test_memberships_product_form();
  test_memberships_large_k_float();
  test_row_distances_zero_row();
  test_register_rows<float, 4>();
  test_register_rows<float, 8>();
  test_register_rows<float, 16>();
  test_register_rows<float, 32>();
  test_register_rows<float, 64>();
  test_register_rows<double, 4>();
  test_register_rows<double, 8>();
  test_register_rows<double, 16>();
  test_register_rows<double, 32>();
  test_register_rows<double, 64>();
  return pdc_test::report("test_simplex");
}
