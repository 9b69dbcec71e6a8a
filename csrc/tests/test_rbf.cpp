// Unit tests of csrc/include/pydeepclust/rbf.h: hand-computed affinities, the
// ratio cut from row reductions against its pairwise definition, and the
// gradients against central differences of that definition.
#include <cmath>
#include <vector>

#include "check.h"
#include "pydeepclust/rbf.h"

namespace rb = pydeepclust::rbf;

void test_affinity_values() {
  const double a[2] = {0, 0}, b[2] = {3, 4};
  CHECK_NEAR(rb::sq_dist(a, b, 2), 25.0, 0);
  CHECK_NEAR(rb::exponent_scale(2.0), 1.0 / 8, 0);
  CHECK_NEAR(rb::affinity(25.0, rb::exponent_scale(2.0)), std::exp(-25.0 / 8), 1e-16);
  CHECK_NEAR(rb::log_affinity(25.0, 0.125), -25.0 / 8, 0);
  CHECK(rb::affinity(0.0f, 3.0f) == 1.0f);
  // Gram form equals the difference form, and rounding below 0 is clamped.
  CHECK_NEAR(rb::sq_dist_from_dot(0.0, 25.0, 0.0), 25.0, 0);
  CHECK(rb::sq_dist_from_dot(1.0, 1.0, 1.0 + 1e-16) >= 0);
  CHECK(rb::sq_dist_from_dot(1.0f, 1.0f, 1.0000001f) == 0.0f);
}

// A small problem: n points in R^d with embeddings in R^k.
struct Problem {
  int n = 5, d = 3, k = 2;
  double sigma = 1.3;
  std::vector<double> x, z;
  Problem() : x(n * d), z(n * k) {
    for (int i = 0; i < n * d; ++i) x[i] = std::sin(0.7 * i + 0.3);
    for (int i = 0; i < n * k; ++i) z[i] = std::cos(1.1 * i);
  }
  double s(int i, int j) const {
    return i == j ? 0.0 : rb::affinity(rb::sq_dist(&x[i * d], &x[j * d], d), rb::exponent_scale(sigma));
  }
  // g_c * sum_ij S_ij r_ij + sum_i g_i d_i, straight from the definition (zero diagonal).
  double objective(double gc, const double* gd) const {
    double total = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        total += s(i, j) * (gc * rb::sq_dist(&z[i * k], &z[j * k], k) + gd[i]);
    return total;
  }
};

void test_cut_from_row_reductions() {
  Problem p;
  const double gd[5] = {0, 0, 0, 0, 0};
  double cut = 0;
  for (int i = 0; i < p.n; ++i) {
    double degree = 0, sz[2] = {0, 0};
    for (int j = 0; j < p.n; ++j) rb::accumulate_pair(p.s(i, j), &p.z[j * p.k], p.k, &degree, sz);
    cut += rb::row_cut_term(degree, &p.z[i * p.k], sz, p.k);
  }
  CHECK_NEAR(cut, p.objective(1.0, gd), 1e-13);
}

void test_gradients_against_finite_differences() {
  Problem p;
  const double gc = 0.7, gd[5] = {0.3, -1.2, 0.5, 2.0, -0.4};
  const double c = rb::exponent_scale(p.sigma), h = 1e-6;
  for (int i = 0; i < p.n; ++i) {
    // analytic: reductions over j of the pair weights
    double weight_sum = 0, degree = 0;
    std::vector<double> wx(p.d, 0.0), sz(p.k, 0.0), gx(p.d), gz(p.k);
    for (int j = 0; j < p.n; ++j) {
      const double sij = p.s(i, j);
      const double r = rb::sq_dist(&p.z[i * p.k], &p.z[j * p.k], p.k);
      const double w = i == j ? 0.0 : rb::pair_weight(sij, r, gc, gd[i], gd[j]);
      weight_sum += w;
      for (int t = 0; t < p.d; ++t) wx[t] += w * p.x[j * p.d + t];
      rb::accumulate_pair(sij, &p.z[j * p.k], p.k, &degree, sz.data());
    }
    rb::grad_x_row(&p.x[i * p.d], weight_sum, wx.data(), p.d, c, gx.data());
    rb::grad_z_row(degree, &p.z[i * p.k], sz.data(), p.k, gc, gz.data());
    for (int t = 0; t < p.d; ++t) {
      Problem q = p;
      q.x[i * p.d + t] += h;
      const double up = q.objective(gc, gd);
      q.x[i * p.d + t] -= 2 * h;
      CHECK_NEAR(gx[t], (up - q.objective(gc, gd)) / (2 * h), 1e-7);
    }
    for (int t = 0; t < p.k; ++t) {
      Problem q = p;
      q.z[i * p.k + t] += h;
      const double up = q.objective(gc, gd);
      q.z[i * p.k + t] -= 2 * h;
      CHECK_NEAR(gz[t], (up - q.objective(gc, gd)) / (2 * h), 1e-7);
    }
  }
}

// In-place use (out aliasing the accumulator), as the kernels call them.
void test_in_place_rows() {
  double x[2] = {1, 2}, wx[2] = {3, 5};
  rb::grad_x_row(x, 2.0, wx, 2, 0.5, wx);
  CHECK_NEAR(wx[0], -2.0 * (2 - 3), 0);
  CHECK_NEAR(wx[1], -2.0 * (4 - 5), 0);
  float z[2] = {1, -1}, sz[2] = {0.5f, 0.25f};
  rb::grad_z_row(2.0f, z, sz, 2, 1.0f, sz);
  CHECK_NEAR(sz[0], 4 * (2 - 0.5), 1e-6);
  CHECK_NEAR(sz[1], 4 * (-2 - 0.25), 1e-6);
}

int main() {
  test_affinity_values();
  test_cut_from_row_reductions();
  test_gradients_against_finite_differences();
  test_in_place_rows();
  return pdc_test::report("test_rbf");
}
