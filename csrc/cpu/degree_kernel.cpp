// CPU kernels of the degree-weighted kernel ops (DESIGN §3b).
//
// degree_weighted_kernel: the Gram matrix X X^T by ATen's batched BLAS, then
// one pass per row (at::parallel_for over batch x rows, the row stays in
// cache) turns it into K, sums the degree and scales by D^-1.
// rbf_row_sums / rbf_row_moments: never form an n x m matrix; each thread
// takes a block of rows and walks the columns in tiles whose Gram block comes
// from BLAS (O(tile^2) scratch per thread).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "../degree_kernel_common.h"
#include "output_cache.h"
#include "pydeepclust/kernels.h"

namespace pydeepclust {
namespace {

constexpr const char* kForward = "degree_weighted_kernel";
constexpr const char* kBackward = "degree_weighted_kernel_backward";
constexpr int64_t kRowTile = 64;
constexpr int64_t kColTile = 256;

std::tuple<at::Tensor, at::Tensor, at::Tensor> degree_weighted_kernel_cpu(
    const at::Tensor& X, const at::Tensor& sigma, c10::string_view kernel, double clamp_eps,
    bool return_kernel) {
  const bool rbf = check_kernel_inputs(X, sigma, kernel, kForward);
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // ATen calls below are internal
  const int64_t B = X.size(0), n = X.size(1);
  const auto Xc = X.contiguous();
  auto K = at::bmm(Xc, Xc.transpose(1, 2)).contiguous();  // the Gram matrix, made K in place
  auto P = return_kernel ? empty_output(K.sizes(), K.options()) : K;
  auto degrees = at::empty({B, n}, X.options());
  const auto norms = rbf ? squared_norms(Xc) : at::Tensor();
  const auto sig = rbf ? sigma.contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), kForward, [&] {
    scalar_t* k = K.data_ptr<scalar_t>();
    scalar_t* p = P.data_ptr<scalar_t>();
    scalar_t* deg = degrees.data_ptr<scalar_t>();
    const scalar_t* nrm = rbf ? norms.data_ptr<scalar_t>() : nullptr;
    const scalar_t* sg = rbf ? sig.data_ptr<scalar_t>() : nullptr;
    const auto eps = static_cast<scalar_t>(clamp_eps);
    at::parallel_for(0, B * n, grain_for(n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / n, i = r % n;
        scalar_t* row = k + r * n;
        if (rbf) {
          const scalar_t gamma = kernels::gamma_from_sigma(sg[b]);
          const scalar_t* nb = nrm + b * n;
          for (int64_t j = 0; j < n; ++j) {
            row[j] = j == i ? scalar_t(1)
                            : kernels::rbf_from_sqdist(
                                  kernels::sqdist_from_gram(nb[i], nb[j], row[j]), gamma);
          }
        }
        deg[r] = kernels::row_sum(row, n, int64_t(1));
        kernels::scale_row(row, kernels::inverse_degree(deg[r], eps), n, p + r * n);
      }
    });
  });
  return {P, degrees, return_kernel ? K : at::empty({0}, X.options())};
}

at::Tensor degree_weighted_kernel_backward_cpu(
    const std::optional<at::Tensor>& grad_P, const std::optional<at::Tensor>& grad_degrees,
    const std::optional<at::Tensor>& grad_K, const at::Tensor& X, const at::Tensor& sigma,
    const at::Tensor& P, const at::Tensor& degrees, c10::string_view kernel, double clamp_eps) {
  const bool rbf = check_kernel_inputs(X, sigma, kernel, kBackward);
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t B = X.size(0), n = X.size(1);
  const auto gp = grad_P.has_value() ? grad_P->contiguous() : at::Tensor();
  const auto gd = grad_degrees.has_value() ? grad_degrees->contiguous() : at::Tensor();
  const auto gk = grad_K.has_value() ? grad_K->contiguous() : at::Tensor();
  const auto Pc = P.contiguous();
  const auto dc = degrees.contiguous();
  auto W = empty_output({B, n, n}, X.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), kBackward, [&] {
    const scalar_t* gpp = gp.defined() ? gp.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gdp = gd.defined() ? gd.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gkp = gk.defined() ? gk.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p = Pc.data_ptr<scalar_t>();
    const scalar_t* deg = dc.data_ptr<scalar_t>();
    scalar_t* w = W.data_ptr<scalar_t>();
    const auto eps = static_cast<scalar_t>(clamp_eps);
    at::parallel_for(0, B * n, grain_for(2 * n), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t o = r * n;
        const scalar_t inv = kernels::inverse_degree(deg[r], eps);
        const scalar_t used = kernels::used_degree(deg[r], eps);
        const bool free = kernels::degree_is_free(deg[r], eps);
        scalar_t t = 0;
        if (gpp) for (int64_t l = 0; l < n; ++l) t += gpp[o + l] * p[o + l];
        const scalar_t g_d = gdp ? gdp[r] : scalar_t(0);
        for (int64_t j = 0; j < n; ++j) {
          const scalar_t g = kernels::kernel_entry_grad(gpp ? gpp[o + j] : scalar_t(0),
                                                        gkp ? gkp[o + j] : scalar_t(0), g_d, inv,
                                                        t, free);
          w[o + j] = rbf ? g * p[o + j] * used : g;  // rbf: dL/dK o K, with K = P d
        }
      }
    });
  });
  return kernel_grad_to_x(W, X.contiguous(), sigma, rbf);
}

// s_i = sum_j w_j K(x_i, y_j) and, with moments, M_i = sum_j w_j K(x_i, y_j) y_j.
// (cpublas::gemm is not exported by libtorch, so the tile products go through
// at::mm_out on views of a per-thread buffer; inside at::parallel_for they run
// single-threaded.)
template <typename scalar_t>
void rbf_sums_blocked(const at::Tensor& A, const at::Tensor& Y, const at::Tensor& weights,
                      const at::Tensor& sigma, at::Tensor& s, at::Tensor* M) {
  const int64_t B = A.size(0), n = A.size(1), m = Y.size(1);
  const auto na = squared_norms(A), ny = squared_norms(Y);
  const scalar_t* w = weights.data_ptr<scalar_t>();
  const scalar_t* sg = sigma.data_ptr<scalar_t>();
  const scalar_t* nap = na.data_ptr<scalar_t>();
  const scalar_t* nyp = ny.data_ptr<scalar_t>();
  scalar_t* sp = s.data_ptr<scalar_t>();
  const int64_t row_blocks = (n + kRowTile - 1) / kRowTile;
  at::parallel_for(0, B * row_blocks, 1, [&](int64_t begin, int64_t end) {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;  // thread-local: set per worker
    std::vector<scalar_t> buffer(kRowTile * kColTile);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / row_blocks, i0 = (task % row_blocks) * kRowTile;
      const int64_t rows = std::min(kRowTile, n - i0);
      const scalar_t gamma = kernels::gamma_from_sigma(sg[b]);
      const auto a_blk = A[b].narrow(0, i0, rows);
      const scalar_t* na_blk = nap + b * n + i0;
      scalar_t* s_blk = sp + b * n + i0;
      auto m_blk = M ? (*M)[b].narrow(0, i0, rows) : at::Tensor();
      for (int64_t j0 = 0; j0 < m; j0 += kColTile) {
        const int64_t cols = std::min(kColTile, m - j0);
        const auto y_blk = Y[b].narrow(0, j0, cols);
        auto tile = at::from_blob(buffer.data(), {rows, cols}, A.options());
        at::mm_out(tile, a_blk, y_blk.t());
        const scalar_t* ny_blk = nyp + b * m + j0;
        const scalar_t* w_blk = w + b * m + j0;
        for (int64_t r = 0; r < rows; ++r) {
          scalar_t* t = buffer.data() + r * cols;
          for (int64_t c = 0; c < cols; ++c) {
            t[c] = w_blk[c] * kernels::rbf_from_sqdist(
                                  kernels::sqdist_from_gram(na_blk[r], ny_blk[c], t[c]), gamma);
          }
          s_blk[r] += kernels::row_sum(t, cols, int64_t(1));
        }
        if (M) m_blk.addmm_(tile, y_blk);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> rbf_sums_cpu(const at::Tensor& X, const at::Tensor& Y,
                                                const at::Tensor& weights,
                                                const at::Tensor& sigma, bool moments,
                                                const char* op) {
  check_rbf_sum_inputs(X, Y, weights, sigma, op);
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const auto A = X.contiguous(), Yc = Y.contiguous();
  const auto w = weights.contiguous(), sg = sigma.contiguous();
  auto s = at::zeros({X.size(0), X.size(1)}, X.options());
  auto M = moments ? at::zeros(X.sizes(), X.options()) : at::Tensor();
  if (X.size(0) * X.size(1) > 0) {
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_sums", [&] {
      rbf_sums_blocked<scalar_t>(A, Yc, w, sg, s, moments ? &M : nullptr);
    });
  }
  return {s, M};
}

at::Tensor rbf_row_sums_cpu(const at::Tensor& X, const at::Tensor& Y, const at::Tensor& weights,
                            const at::Tensor& sigma) {
  return std::get<0>(rbf_sums_cpu(X, Y, weights, sigma, false, "rbf_row_sums"));
}

std::tuple<at::Tensor, at::Tensor> rbf_row_moments_cpu(const at::Tensor& X, const at::Tensor& Y,
                                                       const at::Tensor& weights,
                                                       const at::Tensor& sigma) {
  return rbf_sums_cpu(X, Y, weights, sigma, true, "rbf_row_moments");
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CPU, m) {
  m.impl("degree_weighted_kernel", &degree_weighted_kernel_cpu);
  m.impl("degree_weighted_kernel_backward", &degree_weighted_kernel_backward_cpu);
  m.impl("rbf_row_sums", &rbf_row_sums_cpu);
  m.impl("rbf_row_moments", &rbf_row_moments_cpu);
}

}  // namespace pydeepclust
