// Unit tests of csrc/include/pydeepclust/cayley.h: the small solve against a
// hand-computed system, and the low-rank step against the dense Cayley
// transform (I + tau/2 W)^-1 (I - tau/2 W) X on a small example.
#include <cmath>
#include <vector>

#include "check.h"
#include "pydeepclust/cayley.h"

namespace cy = pydeepclust::cayley;

// [[0,2,1],[1,1,1],[2,1,0]] x = b for x = (1,2,3) and x = (-1,0,2); the zero in
// the top-left corner needs a row swap.
void test_gauss_solve_hand_system() {
  double aug[3 * 5] = {0, 2, 1, 7, 2,   //
                       1, 1, 1, 6, 1,   //
                       2, 1, 0, 4, -2};
  cy::gauss_solve(aug, 3, 5);
  const double x1[3] = {1, 2, 3}, x2[3] = {-1, 0, 2};
  for (int r = 0; r < 3; ++r) {
    CHECK_NEAR(aug[r * 5 + 3], x1[r], 1e-14);
    CHECK_NEAR(aug[r * 5 + 4], x2[r], 1e-14);
  }
  CHECK(cy::pivot_row(aug, 3, 5, 0) == 0);  // after elimination row 0 holds the pivot
  // a singular system yields inf/NaN, not a trap
  double singular[2 * 3] = {1, 2, 1, 2, 4, 1};
  cy::gauss_solve(singular, 2, 3);
  CHECK(!std::isfinite(singular[1 * 3 + 2]));
}

// Orthonormal X (n x p): the first p columns of the Householder matrix I - 2 v v^T / v^T v.
template <typename T>
std::vector<T> householder_columns(int n, int p) {
  std::vector<double> v(n);
  double vv = 0;
  for (int i = 0; i < n; ++i) {
    v[i] = std::cos(1.3 * i + 0.2) + 0.5;
    vv += v[i] * v[i];
  }
  std::vector<T> X(n * p);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < p; ++j) X[i * p + j] = T((i == j ? 1.0 : 0.0) - 2 * v[i] * v[j] / vv);
  return X;
}

template <typename T>
std::vector<T> direction(int n, int p) {
  std::vector<T> G(n * p);
  for (int e = 0; e < n * p; ++e) G[e] = T(std::sin(0.7 * e + 1.0) * 1.5);
  return G;
}

template <typename T>
double orthonormality_error(const std::vector<T>& Y, int n, int p) {
  double worst = 0;
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < p; ++j) {
      double s = 0;
      for (int r = 0; r < n; ++r) s += double(Y[r * p + i]) * double(Y[r * p + j]);
      worst = std::fmax(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

template <typename T>
std::vector<T> step(const std::vector<T>& X, const std::vector<T>& G, int n, int p, T tau) {
  std::vector<T> Y(n * p), work(cy::retract_workspace_size(p));
  cy::retract(X.data(), G.data(), n, p, tau, work.data(), Y.data());
  return Y;
}

// Rounding grows with the conditioning of the 2p x 2p system, about (tau ||G||)^2:
// here ||G||_F ~ 4.5, so tau = 3 is a step of ~14 units of the gradient.
template <typename T>
void test_step_is_orthonormal(double tol) {
  const int n = 7, p = 3;
  const auto X = householder_columns<T>(n, p);
  const auto G = direction<T>(n, p);
  CHECK(orthonormality_error(X, n, p) < tol);
  for (T tau : {T(0.01), T(0.5), T(3.0)}) {
    CHECK(orthonormality_error(step(X, G, n, p, tau), n, p) < tol);
  }
  // a huge step (tau ||G|| ~ 180) is still orthonormal, less tightly
  CHECK(orthonormality_error(step(X, G, n, p, T(40)), n, p) < 1e6 * tol);
  const auto same = step(X, G, n, p, T(0));  // tau = 0: Y = X
  for (int e = 0; e < n * p; ++e) CHECK_NEAR(same[e], X[e], 0);
}

// Dense Cayley transform with W = Ghat X^T - X Ghat^T (n x n), solved by the
// same Gaussian elimination: (I + tau/2 W) Y = (I - tau/2 W) X.
void test_step_matches_dense_cayley() {
  const int n = 6, p = 2;
  const double tau = 0.8;
  const auto X = householder_columns<double>(n, p);
  const auto G = direction<double>(n, p);
  std::vector<double> xtg(p * p, 0.0), ghat(n * p);
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < p; ++j)
      for (int r = 0; r < n; ++r) xtg[i * p + j] += X[r * p + i] * G[r * p + j];
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < p; ++j) {
      double s = 0;
      for (int k = 0; k < p; ++k) s += X[r * p + k] * xtg[k * p + j];
      ghat[r * p + j] = G[r * p + j] - 0.5 * s;
    }
  const int cols = n + p;
  std::vector<double> aug(n * cols);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      double w = 0;
      for (int k = 0; k < p; ++k) w += ghat[i * p + k] * X[j * p + k] - X[i * p + k] * ghat[j * p + k];
      aug[i * cols + j] = (i == j ? 1.0 : 0.0) + 0.5 * tau * w;
    }
  }
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < p; ++c) {
      double wx = 0;  // (W X)_{ic}
      for (int j = 0; j < n; ++j) wx += (aug[i * cols + j] - (i == j ? 1.0 : 0.0)) / (0.5 * tau) * X[j * p + c];
      aug[i * cols + n + c] = X[i * p + c] - 0.5 * tau * wx;
    }
  cy::gauss_solve(aug.data(), n, cols);
  const auto Y = step(X, G, n, p, tau);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < p; ++c) CHECK_NEAR(Y[i * p + c], aug[i * cols + n + c], 1e-13);
}

// tau = 0: the coefficients are K = [I; 0].
void test_coefficients_at_zero_step() {
  const int p = 2;
  const double A[4] = {1, 0, 0, 1}, P[4] = {0.3, -1, 2, 0.5}, Q[4] = {5, 1, 1, 4};
  double work[7 * 4], K[8];
  cy::coefficients(A, P, Q, p, 0.0, work, K);
  const double expected[8] = {1, 0, 0, 1, 0, 0, 0, 0};
  for (int e = 0; e < 8; ++e) CHECK_NEAR(K[e], expected[e], 0);
}

int main() {
  test_gauss_solve_hand_system();
  test_step_is_orthonormal<double>(1e-14);
  test_step_is_orthonormal<float>(4e-6);
  test_step_matches_dense_cayley();
  test_coefficients_at_zero_step();
  return pdc_test::report("test_cayley");
}
