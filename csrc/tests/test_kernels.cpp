// Unit tests of csrc/include/pydeepclust/kernels.h: RBF entries, the degree
// policy for d <= 0, the D^-1 row scaling and the entry gradient (against
// finite differences of a tiny D^-1 K computed with the same functions).
#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "pydeepclust/kernels.h"

namespace kn = pydeepclust::kernels;

template <typename T>
void test_rbf_entries(double tol) {
  // x = (1, 2), y = (3, -1): ||x - y||^2 = 4 + 9 = 13, dot = 1, norms 5 and 10.
  CHECK_NEAR(kn::sqdist_from_gram(T(5), T(10), T(1)), 13.0, tol);
  // rounding below zero is clamped (x = y in the Gram form)
  CHECK(kn::sqdist_from_gram(T(2), T(2), T(2.0000001)) == T(0));
  const T gamma = kn::gamma_from_sigma(T(2));  // 1 / 8
  CHECK_NEAR(gamma, 0.125, tol);
  CHECK_NEAR(kn::rbf_from_sqdist(T(13), gamma), std::exp(-13.0 / 8), tol);
  CHECK(kn::rbf_from_sqdist(T(0), gamma) == T(1));
}

template <typename T>
void test_degree_policy() {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T inf = std::numeric_limits<T>::infinity();
  // raise mode (clamp_eps = 0): 1/d for d > 0, NaN (never inf) otherwise
  CHECK(kn::inverse_degree(T(4), T(0)) == T(0.25));
  for (const T d : {T(0), T(-0), T(-3), nan, -inf}) {
    const T inv = kn::inverse_degree(d, T(0));
    CHECK(std::isnan(inv));
    CHECK(kn::degree_is_free(d, T(0)));
  }
  // clamp mode: max(d, eps), finite for every finite d
  const T eps = T(0.5);
  CHECK(kn::inverse_degree(T(4), eps) == T(0.25));
  CHECK(kn::inverse_degree(T(0.1), eps) == T(2));
  CHECK(kn::inverse_degree(T(-7), eps) == T(2));
  CHECK(kn::inverse_degree(T(0), eps) == T(2));
  CHECK(kn::used_degree(T(-7), eps) == eps && kn::used_degree(T(4), eps) == T(4));
  CHECK(!kn::degree_is_free(T(-7), eps) && !kn::degree_is_free(eps, eps));
  CHECK(kn::degree_is_free(T(4), eps));
}

template <typename T>
void test_row_sum_and_scale() {
  const T strided[6] = {T(1), T(99), T(2), T(99), T(5), T(99)};
  CHECK(kn::row_sum(strided, 3, 2) == T(8));
  const T k[3] = {T(1), T(2), T(5)};
  T p[3];
  kn::scale_row(k, kn::inverse_degree(kn::row_sum(k, 3, 1), T(0)), 3, p);
  CHECK_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6);
  CHECK_NEAR(p[2], 5.0 / 8, 1e-7);
  T in_place[3] = {T(1), T(2), T(5)};
  kn::scale_row(in_place, T(0.5), 3, in_place);
  CHECK(in_place[2] == T(2.5));
}

// L = sum_ij G_ij P_ij + sum_i g_i d_i + sum_ij H_ij K_ij for a 3 x 3 K, P = D^-1 K.
double loss(const double* K, const double* G, const double* g, const double* H, double eps) {
  double total = 0;
  for (int i = 0; i < 3; ++i) {
    const double d = kn::row_sum(K + 3 * i, 3, 1);
    const double inv = kn::inverse_degree(d, eps);
    total += g[i] * d;
    for (int j = 0; j < 3; ++j) total += G[3 * i + j] * K[3 * i + j] * inv + H[3 * i + j] * K[3 * i + j];
  }
  return total;
}

void test_entry_gradient(double eps, const double (&K0)[9]) {
  const double G[9] = {0.3, -1.2, 0.5, 2.0, 0.1, -0.7, 0.4, 0.9, -0.2};
  const double H[9] = {0.05, 0.2, -0.1, 0.0, 0.3, 0.1, -0.4, 0.2, 0.6};
  const double g[3] = {0.7, -0.3, 1.1};
  for (int i = 0; i < 3; ++i) {
    const double d = kn::row_sum(K0 + 3 * i, 3, 1);
    const double inv = kn::inverse_degree(d, eps);
    double t = 0;
    for (int l = 0; l < 3; ++l) t += G[3 * i + l] * K0[3 * i + l] * inv;
    for (int j = 0; j < 3; ++j) {
      const double analytic =
          kn::kernel_entry_grad(G[3 * i + j], H[3 * i + j], g[i], inv, t, kn::degree_is_free(d, eps));
      double Kp[9], Km[9];
      for (int e = 0; e < 9; ++e) Kp[e] = Km[e] = K0[e];
      const double h = 1e-6;
      Kp[3 * i + j] += h;
      Km[3 * i + j] -= h;
      CHECK_NEAR(analytic, (loss(Kp, G, g, H, eps) - loss(Km, G, g, H, eps)) / (2 * h), 1e-7);
    }
  }
}

int main() {
  test_rbf_entries<float>(1e-6);
  test_rbf_entries<double>(1e-15);
  test_degree_policy<float>();
  test_degree_policy<double>();
  test_row_sum_and_scale<float>();
  test_row_sum_and_scale<double>();
  const double positive[9] = {1.0, 0.4, 0.2, 0.4, 1.0, 0.7, 0.2, 0.7, 1.0};
  test_entry_gradient(0.0, positive);
  test_entry_gradient(1e-3, positive);
  // row 1 sums to -0.5: clamped, so D^-1 no longer depends on that row's entries
  const double signed_rows[9] = {1.0, 0.4, 0.2, -0.9, 0.1, 0.3, 0.2, 0.7, 1.0};
  test_entry_gradient(0.25, signed_rows);
  return pdc_test::report("test_kernels");
}
