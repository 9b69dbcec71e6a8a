// CPU kernels of the RBF ops (DESIGN §3c).
//
// The streaming ratio cut never holds more than one kBlock x kBlock tile of S:
// for each pair of row blocks (I, J) with J >= I, the Gram tile X_I X_J^T comes
// from BLAS (at::mm, threaded), the affinities / backward weights are filled in
// place by the rbf.h functions (at::parallel_for over tile rows), and the tile is
// folded into the row reductions of both blocks (S is symmetric, so the tile
// (J, I) is the transpose of (I, J) and is never computed: half the Gram flops of
// the dense form). Memory: O(n (d + k)) plus the tile.
//
// The rectangular form (rows X against columns Xc, DESIGN §6) tiles both sides the
// same way, every (I, J) pair (no symmetry); its backward folds each recomputed tile
// into the row reductions (W Xc, W 1) and the column reductions (W^T X, W^T 1, S^T [Z, 1]).
// Memory: O((n + m) (d + k)) plus one S tile and one Gram tile of Z.
#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <limits>
#include <tuple>

#include "../checks.h"
#include "output_cache.h"
#include "pydeepclust/rbf.h"

namespace pydeepclust {
namespace {

// Rows per block. Measured on the 2-core dev machine (n = 4096, d = 784,
// float32): 256-row tiles ran the Gram products 4.2x slower than one n x n
// product (threaded BLAS pays its fork/join per call), 1024-row tiles 1.5x;
// symmetry then saves 37.5% of the tiles at n = 4096 (more for larger n).
// A tile is at most 4 MiB (float32) / 8 MiB (float64), whatever n.
constexpr int64_t kBlock = 1024;

// X (n, d) or (B, n, d) as (B, n, d), contiguous.
at::Tensor as_batched(const at::Tensor& t) {
  return (t.dim() == 2 ? t.unsqueeze(0) : t).contiguous();
}

// ||row||^2 of each row of a (B, n, m) tensor, without an (n, m) temporary.
at::Tensor squared_norms(const at::Tensor& t) {
  return at::linalg_vector_norm(t, 2, {2}, false, c10::nullopt).square().contiguous();
}

// In place: Gram tile g (rows x cols, contiguous) -> S. The exponents come from
// rbf.h, the exp from ATen's vectorised at::exp_. Global row/column offsets i0,
// j0 locate the diagonal, where S_ii is exactly 0 (zero_diagonal) or 1.
template <typename T>
void fill_affinity_tile(at::Tensor& tile, const T* sq_rows, const T* sq_cols, T c, int64_t i0,
                        int64_t j0, bool zero_diagonal) {
  const int64_t rows = tile.size(0), cols = tile.size(1);
  T* g = tile.data_ptr<T>();
  const T diag = zero_diagonal ? -std::numeric_limits<T>::infinity() : T(0);
  at::parallel_for(0, rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* row = g + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        row[j] = (i0 + i == j0 + j)
                     ? diag
                     : rbf::log_affinity(rbf::sq_dist_from_dot(sq_rows[i], sq_cols[j], row[j]), c);
      }
    }
  });
  tile.exp_();
}

// In place: affinity tile s -> backward weights W (zg: Gram tile of Z).
template <typename T>
void fill_weight_tile(at::Tensor& tile, const T* zg, const T* sqz_rows, const T* sqz_cols,
                      const T* gd_rows, const T* gd_cols, T grad_cut, int64_t i0, int64_t j0) {
  const int64_t rows = tile.size(0), cols = tile.size(1);
  T* s = tile.data_ptr<T>();
  at::parallel_for(0, rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* row = s + i * cols;
      const T* zrow = zg + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const T r = rbf::sq_dist_from_dot(sqz_rows[i], sqz_cols[j], zrow[j]);
        // the diagonal multiplies x_i - x_i: weight 0
        row[j] = (i0 + i == j0 + j) ? T(0)
                                    : rbf::pair_weight(row[j], r, grad_cut, gd_rows[i], gd_cols[j]);
      }
    }
  });
}

at::Tensor affinity_cpu(const at::Tensor& X, const at::Tensor& sigma, bool zero_diagonal) {
  const int64_t batch = check_rbf_inputs(X, sigma, nullptr, "rbf_affinity");
  TORCH_CHECK(sigma.gt(0).all().item<bool>(), "rbf_affinity: sigma must be > 0, got ", sigma);
  const auto Xb = as_batched(X);
  const int64_t n = Xb.size(1);
  auto S = at::bmm(Xb, Xb.transpose(1, 2)).contiguous();
  const auto sq = squared_norms(Xb);
  const auto sig = sigma.reshape({batch}).contiguous();
  // One pass over all batch rows, then one vectorised exp: small batch elements
  // would not amortise a parallel region each.
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_affinity", [&] {
    scalar_t* s = S.data_ptr<scalar_t>();
    const scalar_t* sqs = sq.data_ptr<scalar_t>();
    const scalar_t* sg = sig.data_ptr<scalar_t>();
    const scalar_t diag = zero_diagonal ? -std::numeric_limits<scalar_t>::infinity() : 0;
    at::parallel_for(0, batch * n, grain_for(n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / n, i = r % n;
        const scalar_t c = rbf::exponent_scale(sg[b]);
        const scalar_t* sqb = sqs + b * n;
        scalar_t* row = s + r * n;
        for (int64_t j = 0; j < n; ++j) {
          row[j] = i == j ? diag
                          : rbf::log_affinity(rbf::sq_dist_from_dot(sqb[i], sqb[j], row[j]), c);
        }
      }
    });
  });
  S.exp_();
  return X.dim() == 2 ? S.squeeze(0) : S;
}

// Returns (cut (B,), degree (B, n), SZ (B, n, k)), squeezed for an unbatched X.
std::tuple<at::Tensor, at::Tensor, at::Tensor> ratio_cut_cpu(const at::Tensor& X,
                                                             const at::Tensor& Z,
                                                             const at::Tensor& sigma,
                                                             bool zero_diagonal) {
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, "rbf_ratio_cut");
  TORCH_CHECK(sigma.gt(0).all().item<bool>(), "rbf_ratio_cut: sigma must be > 0, got ", sigma);
  const auto Xb = as_batched(X), Zb = as_batched(Z);
  const int64_t n = Xb.size(1), k = Zb.size(2);
  const auto sqx = squared_norms(Xb);
  const auto sig = sigma.reshape({batch}).contiguous();
  // [Z, 1]: one product S [Z, 1] gives (SZ, degree).
  const auto z_one = at::cat({Zb, at::ones({batch, n, 1}, Zb.options())}, 2);
  auto acc = at::zeros({batch, n, k + 1}, Zb.options());
  auto cut = at::empty({batch}, Zb.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut", [&] {
    for (int64_t b = 0; b < batch; ++b) {
      const auto x = Xb[b], zo = z_one[b], out = acc[b];
      const scalar_t* sq = sqx.data_ptr<scalar_t>() + b * n;
      const auto c = rbf::exponent_scale(sig.data_ptr<scalar_t>()[b]);
      for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t rows = std::min(kBlock, n - i0);
        const auto xi = x.narrow(0, i0, rows);
        for (int64_t j0 = i0; j0 < n; j0 += kBlock) {
          const int64_t cols = std::min(kBlock, n - j0);
          const auto xj = x.narrow(0, j0, cols);
          auto tile = at::mm(xi, xj.t());
          fill_affinity_tile(tile, sq + i0, sq + j0, c, i0, j0, zero_diagonal);
          out.narrow(0, i0, rows).addmm_(tile, zo.narrow(0, j0, cols));
          if (j0 != i0) out.narrow(0, j0, cols).addmm_(tile.t(), zo.narrow(0, i0, rows));
        }
      }
      const scalar_t* z = Zb.data_ptr<scalar_t>() + b * n * k;
      const scalar_t* a = out.data_ptr<scalar_t>();
      scalar_t total = 0;
      for (int64_t i = 0; i < n; ++i) {
        total += rbf::row_cut_term(a[i * (k + 1) + k], z + i * k, a + i * (k + 1), k);
      }
      cut.data_ptr<scalar_t>()[b] = total;
    }
  });
  // copies: as views of acc the two outputs would alias (the schema says they do not)
  auto degree = acc.select(2, k).clone(at::MemoryFormat::Contiguous);
  auto sz = acc.narrow(2, 0, k).clone(at::MemoryFormat::Contiguous);
  if (X.dim() == 2) return {cut.squeeze(0), degree.squeeze(0), sz.squeeze(0)};
  return {cut, degree, sz};
}

// Gradient of g_c * cut + sum_i g_i d_i with respect to X (see rbf.h), by
// recomputing S tile by tile.
at::Tensor ratio_cut_backward_x_cpu(const at::Tensor& X, const at::Tensor& Z,
                                    const at::Tensor& sigma, const at::Tensor& grad_cut,
                                    const at::Tensor& grad_degree, bool zero_diagonal) {
  (void)zero_diagonal;  // W_ii = 0 either way: S_ii does not depend on X
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, "rbf_ratio_cut_backward_x");
  check_same_device_dtype(X, "X", grad_cut, "grad_cut", "rbf_ratio_cut_backward_x");
  check_same_device_dtype(X, "X", grad_degree, "grad_degree", "rbf_ratio_cut_backward_x");
  const auto Xb = as_batched(X), Zb = as_batched(Z);
  const int64_t n = Xb.size(1), d = Xb.size(2);
  const auto sqx = squared_norms(Xb);
  const auto sqz = squared_norms(Zb);
  const auto sig = sigma.reshape({batch}).contiguous();
  const auto gc = grad_cut.reshape({batch}).contiguous();
  const auto gd = grad_degree.reshape({batch, n}).contiguous();
  auto wx = empty_output({batch, n, d}, Xb.options()).zero_();
  auto weight_sum = at::zeros({batch, n}, Xb.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_backward_x", [&] {
    for (int64_t b = 0; b < batch; ++b) {
      const auto x = Xb[b], z = Zb[b], out = wx[b], ws = weight_sum[b];
      const scalar_t* sx = sqx.data_ptr<scalar_t>() + b * n;
      const scalar_t* sz = sqz.data_ptr<scalar_t>() + b * n;
      const scalar_t* g = gd.data_ptr<scalar_t>() + b * n;
      const auto c = rbf::exponent_scale(sig.data_ptr<scalar_t>()[b]);
      const auto g_cut = gc.data_ptr<scalar_t>()[b];
      for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t rows = std::min(kBlock, n - i0);
        const auto xi = x.narrow(0, i0, rows), zi = z.narrow(0, i0, rows);
        for (int64_t j0 = i0; j0 < n; j0 += kBlock) {
          const int64_t cols = std::min(kBlock, n - j0);
          const auto xj = x.narrow(0, j0, cols);
          auto tile = at::mm(xi, xj.t());
          const auto ztile = at::mm(zi, z.narrow(0, j0, cols).t()).contiguous();
          fill_affinity_tile(tile, sx + i0, sx + j0, c, i0, j0, true);
          fill_weight_tile(tile, ztile.data_ptr<scalar_t>(), sz + i0, sz + j0, g + i0, g + j0,
                           g_cut, i0, j0);
          out.narrow(0, i0, rows).addmm_(tile, xj);
          ws.narrow(0, i0, rows).add_(tile.sum(1));
          if (j0 != i0) {
            out.narrow(0, j0, cols).addmm_(tile.t(), xi);
            ws.narrow(0, j0, cols).add_(tile.sum(0));
          }
        }
      }
      scalar_t* o = out.data_ptr<scalar_t>();
      const scalar_t* xs = x.data_ptr<scalar_t>();
      const scalar_t* w = ws.data_ptr<scalar_t>();
      at::parallel_for(0, n, grain_for(d), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          rbf::grad_x_row(xs + i * d, w[i], o + i * d, d, c, o + i * d);
        }
      });
    }
  });
  return X.dim() == 2 ? wx.squeeze(0) : wx;
}

// ---------------------------------------------------------------- rectangular form

// In place: Gram tile g (rows x cols) of rows i0.. (counted in columns: i0 includes
// row_offset) against columns j0.. -> S; self pairs i0 + i == j0 + j are exactly 0
// with zero_diagonal and plain affinities without.
template <typename T>
void fill_rect_affinity_tile(at::Tensor& tile, const T* sq_rows, const T* sq_cols, T c,
                             int64_t i0, int64_t j0, bool zero_diagonal) {
  const int64_t rows = tile.size(0), cols = tile.size(1);
  T* g = tile.data_ptr<T>();
  at::parallel_for(0, rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* row = g + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        row[j] = rbf::is_self_pair(i0 + i, j0 + j, 0, zero_diagonal)
                     ? -std::numeric_limits<T>::infinity()
                     : rbf::log_affinity(rbf::sq_dist_from_dot(sq_rows[i], sq_cols[j], row[j]), c);
      }
    }
  });
  tile.exp_();
}

// In place: affinity tile s -> backward weights W_ij = S_ij (g_c r_ij + g_i).
template <typename T>
void fill_rect_weight_tile(at::Tensor& tile, const T* zg, const T* sqz_rows, const T* sqz_cols,
                           const T* gd_rows, T grad_cut, int64_t i0, int64_t j0,
                           bool zero_diagonal) {
  const int64_t rows = tile.size(0), cols = tile.size(1);
  T* s = tile.data_ptr<T>();
  at::parallel_for(0, rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* row = s + i * cols;
      const T* zrow = zg + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const T r = rbf::sq_dist_from_dot(sqz_rows[i], sqz_cols[j], zrow[j]);
        row[j] = rbf::is_self_pair(i0 + i, j0 + j, 0, zero_diagonal)
                     ? T(0)
                     : rbf::rect_pair_weight(row[j], r, grad_cut, gd_rows[i]);
      }
    }
  });
}

// Returns (partial cut (B,), row degree (B, n), S Zc (B, n, k)), squeezed for unbatched input.
// Returns (cut, degree, S Zc, d cut / d Zc); the last from S^T [Z, 1] reduced in the same
// pass (one skinny product more per tile), so that the backward of RSM, whose inputs need no
// gradient, streams over S no second time.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ratio_cut_rows_cpu(
    const at::Tensor& X, const at::Tensor& Z, const at::Tensor& Xc, const at::Tensor& Zc,
    const at::Tensor& sigma, int64_t row_offset, bool zero_diagonal) {
  constexpr const char* op = "rbf_ratio_cut_rows";
  const int64_t batch = check_rows_inputs(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal, op);
  TORCH_CHECK(sigma.gt(0).all().item<bool>(), op, ": sigma must be > 0, got ", sigma);
  const auto Xb = as_batched(X), Zb = as_batched(Z), Xcb = as_batched(Xc), Zcb = as_batched(Zc);
  const int64_t n = Xb.size(1), m = Xcb.size(1), k = Zb.size(2);
  const auto sqx = squared_norms(Xb), sqc = squared_norms(Xcb);
  const auto sig = sigma.reshape({batch}).contiguous();
  // [Zc, 1, ||zc||^2]: one product S [Zc, 1, q] gives (S Zc, degree, S q).
  const auto cols_ext = at::cat(
      {Zcb, at::ones({batch, m, 1}, Zcb.options()), squared_norms(Zcb).unsqueeze(2)}, 2);
  auto acc = at::zeros({batch, n, k + 2}, Zb.options());
  // S^T [Z, 1] = (S^T Z, column sums)
  const auto z_one = at::cat({Zb, at::ones({batch, n, 1}, Zb.options())}, 2);
  auto acc_c = at::zeros({batch, m, k + 1}, Zb.options());
  auto grad_zc = at::empty({batch, m, k}, Zb.options());
  auto cut = at::empty({batch}, Zb.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), op, [&] {
    for (int64_t b = 0; b < batch; ++b) {
      const auto x = Xb[b], xc = Xcb[b], ce = cols_ext[b], out = acc[b], out_c = acc_c[b];
      const scalar_t* sx = sqx.data_ptr<scalar_t>() + b * n;
      const scalar_t* sc = sqc.data_ptr<scalar_t>() + b * m;
      const auto c = rbf::exponent_scale(sig.data_ptr<scalar_t>()[b]);
      for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t rows = std::min(kBlock, n - i0);
        const auto xi = x.narrow(0, i0, rows);
        auto out_i = out.narrow(0, i0, rows);
        for (int64_t j0 = 0; j0 < m; j0 += kBlock) {
          const int64_t cols = std::min(kBlock, m - j0);
          auto tile = at::mm(xi, xc.narrow(0, j0, cols).t());
          fill_rect_affinity_tile(tile, sx + i0, sc + j0, c, row_offset + i0, j0, zero_diagonal);
          out_i.addmm_(tile, ce.narrow(0, j0, cols));
          out_c.narrow(0, j0, cols).addmm_(tile.t(), z_one[b].narrow(0, i0, rows));
        }
      }
      const scalar_t* ac = out_c.data_ptr<scalar_t>();
      const scalar_t* w = Zcb[b].data_ptr<scalar_t>();
      scalar_t* o = grad_zc[b].data_ptr<scalar_t>();
      for (int64_t j = 0; j < m; ++j) {
        rbf::rect_grad_z_row(ac[j * (k + 1) + k], w + j * k, ac + j * (k + 1), k, scalar_t(1),
                             o + j * k);
      }
      const scalar_t* z = Zb.data_ptr<scalar_t>() + b * n * k;
      const scalar_t* a = out.data_ptr<scalar_t>();
      scalar_t total = 0;
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t* ai = a + i * (k + 2);
        total += rbf::rect_row_cut_term(ai[k], ai[k + 1], z + i * k, ai, k);
      }
      cut.data_ptr<scalar_t>()[b] = total;
    }
  });
  auto degree = acc.select(2, k).clone(at::MemoryFormat::Contiguous);
  auto sz = acc.narrow(2, 0, k).clone(at::MemoryFormat::Contiguous);
  if (X.dim() == 2) {
    return {cut.squeeze(0), degree.squeeze(0), sz.squeeze(0), grad_zc.squeeze(0)};
  }
  return {cut, degree, sz, grad_zc};
}

// Gradients of g_c * cut + sum_i g_i d_i with respect to X and Xc (see rbf.h; those of Z
// and Zc follow from the forward's outputs), by recomputing S tile by tile.
// output_mask picks (X, Xc); an unwanted gradient is returned as zeros.
std::tuple<at::Tensor, at::Tensor> ratio_cut_rows_backward_cpu(
    const at::Tensor& X, const at::Tensor& Z, const at::Tensor& Xc, const at::Tensor& Zc,
    const at::Tensor& sigma, const at::Tensor& grad_cut, const at::Tensor& grad_degree,
    int64_t row_offset, bool zero_diagonal, std::array<bool, 2> output_mask) {
  constexpr const char* op = "rbf_ratio_cut_rows_backward";
  const int64_t batch = check_rows_inputs(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal, op);
  check_same_device_dtype(X, "X", grad_cut, "grad_cut", op);
  check_same_device_dtype(X, "X", grad_degree, "grad_degree", op);
  const bool need_x = output_mask[0], need_xc = output_mask[1];
  const auto Xb = as_batched(X), Zb = as_batched(Z), Xcb = as_batched(Xc), Zcb = as_batched(Zc);
  const int64_t n = Xb.size(1), m = Xcb.size(1), d = Xb.size(2);
  TORCH_CHECK(grad_cut.numel() == batch && grad_degree.numel() == batch * n, op,
              ": grad_cut and grad_degree must have the shapes of cut and degree, got ",
              grad_cut.sizes(), " and ", grad_degree.sizes());
  const auto sqx = squared_norms(Xb), sqc = squared_norms(Xcb);
  const auto sqz = squared_norms(Zb), sqzc = squared_norms(Zcb);
  const auto sig = sigma.reshape({batch}).contiguous();
  const auto gc = grad_cut.reshape({batch}).contiguous();
  const auto gd = grad_degree.reshape({batch, n}).contiguous();
  auto wx = empty_output({batch, n, d}, Xb.options()).zero_();
  auto ws = at::zeros({batch, n}, Xb.options());
  auto wxc = empty_output({batch, m, d}, Xb.options()).zero_();
  auto wsc = at::zeros({batch, m}, Xb.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), op, [&] {
    for (int64_t b = 0; b < batch; ++b) {
      const auto x = Xb[b], z = Zb[b], xc = Xcb[b], zc = Zcb[b];
      const scalar_t* sx = sqx.data_ptr<scalar_t>() + b * n;
      const scalar_t* sc = sqc.data_ptr<scalar_t>() + b * m;
      const scalar_t* sz = sqz.data_ptr<scalar_t>() + b * n;
      const scalar_t* szc = sqzc.data_ptr<scalar_t>() + b * m;
      const scalar_t* g = gd.data_ptr<scalar_t>() + b * n;
      const auto c = rbf::exponent_scale(sig.data_ptr<scalar_t>()[b]);
      const auto g_cut = gc.data_ptr<scalar_t>()[b];
      for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t rows = std::min(kBlock, n - i0);
        const auto xi = x.narrow(0, i0, rows), zi = z.narrow(0, i0, rows);
        for (int64_t j0 = 0; j0 < m; j0 += kBlock) {
          const int64_t cols = std::min(kBlock, m - j0);
          const auto xj = xc.narrow(0, j0, cols);
          auto tile = at::mm(xi, xj.t());
          fill_rect_affinity_tile(tile, sx + i0, sc + j0, c, row_offset + i0, j0, zero_diagonal);
          const auto ztile = at::mm(zi, zc.narrow(0, j0, cols).t()).contiguous();
          fill_rect_weight_tile(tile, ztile.data_ptr<scalar_t>(), sz + i0, szc + j0, g + i0,
                                g_cut, row_offset + i0, j0, zero_diagonal);
          if (need_x) {
            wx[b].narrow(0, i0, rows).addmm_(tile, xj);
            ws[b].narrow(0, i0, rows).add_(tile.sum(1));
          }
          if (need_xc) {
            wxc[b].narrow(0, j0, cols).addmm_(tile.t(), xi);
            wsc[b].narrow(0, j0, cols).add_(tile.sum(0));
          }
        }
      }
      // per-row epilogues, in place: (W Xc)_i -> d/dx_i, (W^T X)_j -> d/dxc_j
      const auto epilogue = [&](const scalar_t* xs, const scalar_t* w, scalar_t* o,
                                int64_t count) {
        at::parallel_for(0, count, grain_for(d), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            rbf::rect_grad_x_row(xs + i * d, w[i], o + i * d, d, c, o + i * d);
          }
        });
      };
      if (need_x) {
        epilogue(x.data_ptr<scalar_t>(), ws[b].data_ptr<scalar_t>(), wx[b].data_ptr<scalar_t>(),
                 n);
      }
      if (need_xc) {
        epilogue(xc.data_ptr<scalar_t>(), wsc[b].data_ptr<scalar_t>(),
                 wxc[b].data_ptr<scalar_t>(), m);
      }
    }
  });
  if (X.dim() == 2) return {wx.squeeze(0), wxc.squeeze(0)};
  return {wx, wxc};
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CPU, m) {
  m.impl("rbf_affinity", &affinity_cpu);
  m.impl("rbf_ratio_cut", &ratio_cut_cpu);
  m.impl("rbf_ratio_cut_backward_x", &ratio_cut_backward_x_cpu);
  m.impl("rbf_ratio_cut_rows", &ratio_cut_rows_cpu);
  m.impl("rbf_ratio_cut_rows_backward", &ratio_cut_rows_backward_cpu);
}

}  // namespace pydeepclust
