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

// ---- rectangular form: rows (x, z), n of them, against columns (y, w), m of them; the rows
// are the columns offset .. offset + n - 1 perturbed (so X and Y differ), self pairs dropped.
struct RectProblem {
  int n = 3, m = 6, d = 3, k = 2, offset = 2;
  double sigma = 1.1;
  bool zero_diagonal = true;
  std::vector<double> x, z, y, w;
  RectProblem() : x(n * d), z(n * k), y(m * d), w(m * k) {
    for (int i = 0; i < m * d; ++i) y[i] = std::sin(0.9 * i + 0.2);
    for (int i = 0; i < m * k; ++i) w[i] = std::cos(0.6 * i + 0.5);
    for (int i = 0; i < n * d; ++i) x[i] = y[offset * d + i] + 0.05 * std::cos(1.3 * i);
    for (int i = 0; i < n * k; ++i) z[i] = w[offset * k + i] - 0.07 * std::sin(0.8 * i);
  }
  double s(int i, int j) const {
    return rb::is_self_pair(i, j, offset, zero_diagonal)
               ? 0.0
               : rb::affinity(rb::sq_dist(&x[i * d], &y[j * d], d), rb::exponent_scale(sigma));
  }
  // g_c * sum_ij S_ij ||z_i - w_j||^2 + sum_i g_i d_i, straight from the definition.
  double objective(double gc, const double* gd) const {
    double total = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j)
        total += s(i, j) * (gc * rb::sq_dist(&z[i * k], &w[j * k], k) + gd[i]);
    return total;
  }
};

double sq_norm(const double* v, int k) {
  double s = 0;
  for (int t = 0; t < k; ++t) s += v[t] * v[t];
  return s;
}

// d objective / d v[t] by central differences, for v one of the problem's vectors.
template <typename F>
double central_difference(RectProblem p, std::vector<double> RectProblem::*v, int t, F f) {
  const double h = 1e-6;
  (p.*v)[t] += h;
  const double up = f(p);
  (p.*v)[t] -= 2 * h;
  return (up - f(p)) / (2 * h);
}

void test_rect_self_pairs() {
  CHECK(rb::is_self_pair(1, 3, 2, true));
  CHECK(!rb::is_self_pair(1, 3, 2, false));
  CHECK(!rb::is_self_pair(1, 2, 2, true));
  CHECK(rb::is_self_pair(0, 0, 0, true));
}

void test_rect_cut_and_gradients() {
  for (const bool zero_diagonal : {true, false}) {
    RectProblem p;
    p.zero_diagonal = zero_diagonal;
    const double gc = 0.8, gd[3] = {0.4, -1.1, 0.6};
    const double c = rb::exponent_scale(p.sigma);
    const double g0[3] = {0, 0, 0};
    // forward: the cut from the row reductions S [W, 1, q]
    double cut = 0;
    std::vector<double> degree(p.n, 0.0), sw(p.n * p.k, 0.0);
    for (int i = 0; i < p.n; ++i) {
      double s_sq = 0;
      for (int j = 0; j < p.m; ++j) {
        const double sij = p.s(i, j);
        rb::accumulate_pair(sij, &p.w[j * p.k], p.k, &degree[i], &sw[i * p.k]);
        s_sq += sij * sq_norm(&p.w[j * p.k], p.k);
      }
      cut += rb::rect_row_cut_term(degree[i], s_sq, &p.z[i * p.k], &sw[i * p.k], p.k);
    }
    CHECK_NEAR(cut, p.objective(1.0, g0), 1e-13);
    // backward: row and column reductions of the pair weights and of S
    std::vector<double> ws(p.n, 0.0), wx(p.n * p.d, 0.0), wsc(p.m, 0.0), wy(p.m * p.d, 0.0);
    std::vector<double> col(p.m, 0.0), stz(p.m * p.k, 0.0);
    for (int i = 0; i < p.n; ++i) {
      for (int j = 0; j < p.m; ++j) {
        const double sij = p.s(i, j);
        const double wij =
            rb::rect_pair_weight(sij, rb::sq_dist(&p.z[i * p.k], &p.w[j * p.k], p.k), gc, gd[i]);
        ws[i] += wij;
        wsc[j] += wij;
        for (int t = 0; t < p.d; ++t) {
          wx[i * p.d + t] += wij * p.y[j * p.d + t];
          wy[j * p.d + t] += wij * p.x[i * p.d + t];
        }
        rb::accumulate_pair(sij, &p.z[i * p.k], p.k, &col[j], &stz[j * p.k]);
      }
    }
    const auto f = [&](const RectProblem& q) { return q.objective(gc, gd); };
    std::vector<double> g(std::max(p.d, p.k));
    for (int i = 0; i < p.n; ++i) {
      rb::rect_grad_x_row(&p.x[i * p.d], ws[i], &wx[i * p.d], p.d, c, g.data());
      for (int t = 0; t < p.d; ++t)
        CHECK_NEAR(g[t], central_difference(p, &RectProblem::x, i * p.d + t, f), 1e-7);
      rb::rect_grad_z_row(degree[i], &p.z[i * p.k], &sw[i * p.k], p.k, gc, g.data());
      for (int t = 0; t < p.k; ++t)
        CHECK_NEAR(g[t], central_difference(p, &RectProblem::z, i * p.k + t, f), 1e-7);
    }
    for (int j = 0; j < p.m; ++j) {
      rb::rect_grad_x_row(&p.y[j * p.d], wsc[j], &wy[j * p.d], p.d, c, g.data());
      for (int t = 0; t < p.d; ++t)
        CHECK_NEAR(g[t], central_difference(p, &RectProblem::y, j * p.d + t, f), 1e-7);
      rb::rect_grad_z_row(col[j], &p.w[j * p.k], &stz[j * p.k], p.k, gc, g.data());
      for (int t = 0; t < p.k; ++t)
        CHECK_NEAR(g[t], central_difference(p, &RectProblem::w, j * p.k + t, f), 1e-7);
    }
  }
}

// Rows = columns (offset 0): row + column gradients are the square op's, the cut its cut.
void test_rect_equals_square_when_rows_are_columns() {
  Problem p;
  const double gc = 0.7, gd[5] = {0.3, -1.2, 0.5, 2.0, -0.4};
  const double c = rb::exponent_scale(p.sigma);
  double square_cut = 0, rect_cut = 0;
  for (int i = 0; i < p.n; ++i) {
    double degree = 0, sz[2] = {0, 0}, s_sq = 0, wsum = 0, wsum_t = 0;
    double wx[3] = {0, 0, 0}, wx_t[3] = {0, 0, 0}, sq_wx[3] = {0, 0, 0}, sq_w = 0;
    double col = 0, stz[2] = {0, 0};
    for (int j = 0; j < p.n; ++j) {
      const double sij = p.s(i, j);  // symmetric, zero diagonal
      rb::accumulate_pair(sij, &p.z[j * p.k], p.k, &degree, sz);
      s_sq += sij * sq_norm(&p.z[j * p.k], p.k);
      const double r = rb::sq_dist(&p.z[i * p.k], &p.z[j * p.k], p.k);
      const double w_row = i == j ? 0.0 : rb::rect_pair_weight(sij, r, gc, gd[i]);
      const double w_col = i == j ? 0.0 : rb::rect_pair_weight(sij, r, gc, gd[j]);  // W_ji
      const double w_sq = i == j ? 0.0 : rb::pair_weight(sij, r, gc, gd[i], gd[j]);
      wsum += w_row;
      wsum_t += w_col;
      sq_w += w_sq;
      for (int t = 0; t < p.d; ++t) {
        wx[t] += w_row * p.x[j * p.d + t];
        wx_t[t] += w_col * p.x[j * p.d + t];
        sq_wx[t] += w_sq * p.x[j * p.d + t];
      }
      rb::accumulate_pair(sij, &p.z[j * p.k], p.k, &col, stz);
    }
    square_cut += rb::row_cut_term(degree, &p.z[i * p.k], sz, p.k);
    rect_cut += rb::rect_row_cut_term(degree, s_sq, &p.z[i * p.k], sz, p.k);
    double gx_row[3], gx_col[3], gx_sq[3], gz_row[2], gz_col[2], gz_sq[2];
    rb::rect_grad_x_row(&p.x[i * p.d], wsum, wx, p.d, c, gx_row);
    rb::rect_grad_x_row(&p.x[i * p.d], wsum_t, wx_t, p.d, c, gx_col);
    rb::grad_x_row(&p.x[i * p.d], sq_w, sq_wx, p.d, c, gx_sq);
    for (int t = 0; t < p.d; ++t) CHECK_NEAR(gx_row[t] + gx_col[t], gx_sq[t], 1e-13);
    rb::rect_grad_z_row(degree, &p.z[i * p.k], sz, p.k, gc, gz_row);
    rb::rect_grad_z_row(col, &p.z[i * p.k], stz, p.k, gc, gz_col);
    rb::grad_z_row(degree, &p.z[i * p.k], sz, p.k, gc, gz_sq);
    for (int t = 0; t < p.k; ++t) CHECK_NEAR(gz_row[t] + gz_col[t], gz_sq[t], 1e-13);
  }
  CHECK_NEAR(rect_cut, square_cut, 1e-12);
}

int main() {
  test_affinity_values();
  test_cut_from_row_reductions();
  test_gradients_against_finite_differences();
  test_in_place_rows();
  test_rect_self_pairs();
  test_rect_cut_and_gradients();
  test_rect_equals_square_when_rows_are_columns();
  return pdc_test::report("test_rbf");
}
