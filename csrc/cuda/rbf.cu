// CUDA kernels of the RBF ops (DESIGN §3c). The math is in rbf.h, shared with
// the CPU kernels.
//
// Streaming ratio cut: tiles of R rows against all n rows, (B, R, n) at a time.
// The Gram tile X_I X^T is a cuBLAS product (at::bmm), one elementwise kernel
// turns it into S (forward) or the backward weights W in place, and a second
// cuBLAS product folds it into the row reductions S [Z, 1] or W X. No n x n
// buffer exists: memory is O(n (d + k)) plus one tile of at most tiling::kTileElements in the
// forward and two (S or W, and the Gram tile of Z) in the backward; a batch with
// B * n > kTileElements takes one row per tile, which is then B * n elements.
// (A first version, one thread per row with shared-memory tiles of x_j, ran
// 7-13x slower than the dense reference on an H100: the Gram products hold the
// flops, and cuBLAS does them best.)
// The materialised affinity is the same fill on one full (B, n, n) Gram product.
//
// The rectangular form (rows X (B, n, d) against columns Xc (B, m, d), DESIGN §6) runs the
// same pipeline on (B, R, m) tiles: forward S [Zc, 1, ||zc||^2] per tile; backward, per
// tile, S^T [Z, 1] (column sums and S^T Z, for Zc), then W in place and W Xc, W 1 for the
// rows and W^T X, W^T 1 for the columns (accumulated over tiles with baddbmm_).
#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <tuple>

#include "../checks.h"
#include "pydeepclust/rbf.h"
#include "tiling.cuh"

namespace pydeepclust {
namespace {

using tiling::grid_for;
using tiling::kThreads;
using tiling::tile_rows;

at::Tensor as_batched(const at::Tensor& t) {
  return (t.dim() == 2 ? t.unsqueeze(0) : t).contiguous();
}

at::Tensor squared_norms(const at::Tensor& t) {
  return at::linalg_vector_norm(t, 2, {2}, false, c10::nullopt).square().contiguous();
}


// In place: Gram tile g (batch, rows, n) of rows i0.. against all n rows -> S.
template <typename T>
__global__ void fill_affinity_kernel(T* __restrict__ g, const T* __restrict__ sq,
                                     const T* __restrict__ sigma, int64_t batch, int64_t rows,
                                     int64_t n, int64_t i0, T diag) {
  const int64_t total = batch * rows * n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t b = idx / (rows * n), i = i0 + (idx / n) % rows, j = idx % n;
    g[idx] = i == j ? diag
                    : rbf::affinity(rbf::sq_dist_from_dot(sq[b * n + i], sq[b * n + j], g[idx]),
                                    rbf::exponent_scale(sigma[b]));
  }
}

// In place: affinity tile s -> backward weights W (zg: Gram tile of Z).
template <typename T>
__global__ void fill_weight_kernel(T* __restrict__ s, const T* __restrict__ zg,
                                   const T* __restrict__ sqz, const T* __restrict__ grad_cut,
                                   const T* __restrict__ grad_degree, int64_t batch,
                                   int64_t rows, int64_t n, int64_t i0) {
  const int64_t total = batch * rows * n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t b = idx / (rows * n), i = i0 + (idx / n) % rows, j = idx % n;
    const T r = rbf::sq_dist_from_dot(sqz[b * n + i], sqz[b * n + j], zg[idx]);
    // the diagonal multiplies x_i - x_i: weight 0
    s[idx] = i == j ? T(0)
                    : rbf::pair_weight(s[idx], r, grad_cut[b], grad_degree[b * n + i],
                                       grad_degree[b * n + j]);
  }
}

// Row i's share of the cut from its degree and (SZ)_i (acc row = [(SZ)_i, d_i]).
template <typename T>
__global__ void row_cut_kernel(const T* __restrict__ z, const T* __restrict__ acc, int64_t rows,
                               int64_t k, T* __restrict__ row_terms) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(blockDim.x) * gridDim.x) {
    const T* a = acc + r * (k + 1);
    row_terms[r] = rbf::row_cut_term(a[k], z + r * k, a, k);
  }
}

// In place: (W X)_i -> d/dx_i, for every row of the batch.
template <typename T>
__global__ void grad_x_kernel(const T* __restrict__ x, const T* __restrict__ weight_sum,
                              const T* __restrict__ sigma, int64_t batch, int64_t n, int64_t d,
                              T* __restrict__ wx) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < batch * n;
       r += int64_t(blockDim.x) * gridDim.x) {
    rbf::grad_x_row(x + r * d, weight_sum[r], wx + r * d, d, rbf::exponent_scale(sigma[r / n]),
                    wx + r * d);
  }
}

// ---- rectangular form: kernels

// In place: Gram tile g (batch, rows, m) of rows i0.. against all m columns -> S; the self
// pairs (i, row_offset + i) are exactly 0 with zero_diagonal.
template <typename T>
__global__ void fill_rect_affinity_kernel(T* __restrict__ g, const T* __restrict__ sq_rows,
                                          const T* __restrict__ sq_cols,
                                          const T* __restrict__ sigma, int64_t batch,
                                          int64_t rows, int64_t n, int64_t m, int64_t i0,
                                          int64_t row_offset, bool zero_diagonal) {
  const int64_t total = batch * rows * m;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t b = idx / (rows * m), i = i0 + (idx / m) % rows, j = idx % m;
    g[idx] = rbf::is_self_pair(i, j, row_offset, zero_diagonal)
                 ? T(0)
                 : rbf::affinity(rbf::sq_dist_from_dot(sq_rows[b * n + i], sq_cols[b * m + j],
                                                       g[idx]),
                                 rbf::exponent_scale(sigma[b]));
  }
}

// In place: affinity tile s -> backward weights W_ij = S_ij (g_c r_ij + g_i) (zg: Gram tile
// of Z against Zc).
template <typename T>
__global__ void fill_rect_weight_kernel(T* __restrict__ s, const T* __restrict__ zg,
                                        const T* __restrict__ sqz_rows,
                                        const T* __restrict__ sqz_cols,
                                        const T* __restrict__ grad_cut,
                                        const T* __restrict__ grad_degree, int64_t batch,
                                        int64_t rows, int64_t n, int64_t m, int64_t i0,
                                        int64_t row_offset, bool zero_diagonal) {
  const int64_t total = batch * rows * m;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t b = idx / (rows * m), i = i0 + (idx / m) % rows, j = idx % m;
    const T r = rbf::sq_dist_from_dot(sqz_rows[b * n + i], sqz_cols[b * m + j], zg[idx]);
    s[idx] = rbf::is_self_pair(i, j, row_offset, zero_diagonal)
                 ? T(0)
                 : rbf::rect_pair_weight(s[idx], r, grad_cut[b], grad_degree[b * n + i]);
  }
}

// Row i's share of the partial cut (acc row = [(S Zc)_i, d_i, (S q)_i]).
template <typename T>
__global__ void rect_row_cut_kernel(const T* __restrict__ z, const T* __restrict__ acc,
                                    int64_t rows, int64_t k, T* __restrict__ row_terms) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(blockDim.x) * gridDim.x) {
    const T* a = acc + r * (k + 2);
    row_terms[r] = rbf::rect_row_cut_term(a[k], a[k + 1], z + r * k, a, k);
  }
}

// In place: (W Y)_i -> d/dx_i for every row of a (batch, count, d) operand.
template <typename T>
__global__ void rect_grad_x_kernel(const T* __restrict__ x, const T* __restrict__ weight_sum,
                                   const T* __restrict__ sigma, int64_t batch, int64_t count,
                                   int64_t d, T* __restrict__ wx) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < batch * count;
       r += int64_t(blockDim.x) * gridDim.x) {
    rbf::rect_grad_x_row(x + r * d, weight_sum[r], wx + r * d, d,
                         rbf::exponent_scale(sigma[r / count]), wx + r * d);
  }
}

// d cut / dzc_j = 2 (e_j zc_j - (S^T Z)_j) (acc row = [(S^T Z)_j, e_j]).
template <typename T>
__global__ void rect_cut_grad_zc_kernel(const T* __restrict__ zc, const T* __restrict__ acc,
                                        int64_t count, int64_t k, T* __restrict__ out) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < count;
       r += int64_t(blockDim.x) * gridDim.x) {
    const T* a = acc + r * (k + 1);
    rbf::rect_grad_z_row(a[k], zc + r * k, a, k, T(1), out + r * k);
  }
}

at::Tensor affinity_cuda(const at::Tensor& X, const at::Tensor& sigma, bool zero_diagonal) {
  const int64_t batch = check_rbf_inputs(X, sigma, nullptr, "rbf_affinity");
  // sigma > 0 is checked by the Python wrapper (with its other value checks, in one host
  // sync); a check here would synchronise the device on every call.
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X);
  const int64_t n = Xb.size(1);
  auto S = at::bmm(Xb, Xb.transpose(1, 2)).contiguous();
  const auto sq = squared_norms(Xb);
  const auto sig = sigma.reshape({batch}).contiguous();
  const int64_t total = batch * n * n;
  if (total > 0) {
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_affinity_cuda", [&] {
      fill_affinity_kernel<scalar_t><<<grid_for(total), kThreads, 0,
                                       c10::cuda::getCurrentCUDAStream()>>>(
          S.data_ptr<scalar_t>(), sq.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(), batch, n, n,
          0, scalar_t(zero_diagonal ? 0 : 1));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return X.dim() == 2 ? S.squeeze(0) : S;
}

// Returns (cut (B,), degree (B, n), SZ (B, n, k)), squeezed for an unbatched X.
std::tuple<at::Tensor, at::Tensor, at::Tensor> ratio_cut_cuda(const at::Tensor& X,
                                                              const at::Tensor& Z,
                                                              const at::Tensor& sigma,
                                                              bool zero_diagonal) {
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, "rbf_ratio_cut");
  // sigma > 0 is checked by the Python wrapper (with its other value checks, in one host
  // sync); a check here would synchronise the device on every call.
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X), Zb = as_batched(Z);
  const int64_t n = Xb.size(1), k = Zb.size(2);
  const auto sq = squared_norms(Xb);
  const auto sig = sigma.reshape({batch}).contiguous();
  // [Z, 1]: one product S [Z, 1] gives (SZ, degree).
  const auto z_one = at::cat({Zb, at::ones({batch, n, 1}, Zb.options())}, 2);
  auto acc = at::empty({batch, n, k + 1}, Zb.options());
  auto row_terms = at::zeros({batch, n}, Xb.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (n > 0 && batch > 0) {
    const int64_t step = tile_rows(batch, n, n);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_cuda", [&] {
      for (int64_t i0 = 0; i0 < n; i0 += step) {
        const int64_t rows = std::min(step, n - i0);
        auto tile = at::bmm(Xb.narrow(1, i0, rows), Xb.transpose(1, 2));
        fill_affinity_kernel<scalar_t><<<grid_for(tile.numel()), kThreads, 0, stream>>>(
            tile.data_ptr<scalar_t>(), sq.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(), batch,
            rows, n, i0, scalar_t(zero_diagonal ? 0 : 1));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        acc.narrow(1, i0, rows).copy_(at::bmm(tile, z_one));
      }
      row_cut_kernel<scalar_t><<<grid_for(batch * n), kThreads, 0, stream>>>(
          Zb.data_ptr<scalar_t>(), acc.data_ptr<scalar_t>(), batch * n, k,
          row_terms.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  auto cut = row_terms.sum(1);
  auto degree = acc.select(2, k).clone(at::MemoryFormat::Contiguous);
  auto sz = acc.narrow(2, 0, k).clone(at::MemoryFormat::Contiguous);
  if (X.dim() == 2) return {cut.squeeze(0), degree.squeeze(0), sz.squeeze(0)};
  return {cut, degree, sz};
}

// Gradient of g_c * cut + sum_i g_i d_i with respect to X (see rbf.h), by
// recomputing S tile by tile.
at::Tensor ratio_cut_backward_x_cuda(const at::Tensor& X, const at::Tensor& Z,
                                     const at::Tensor& sigma, const at::Tensor& grad_cut,
                                     const at::Tensor& grad_degree, bool zero_diagonal) {
  (void)zero_diagonal;  // W_ii = 0 either way: S_ii does not depend on X
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, "rbf_ratio_cut_backward_x");
  check_same_device_dtype(X, "X", grad_cut, "grad_cut", "rbf_ratio_cut_backward_x");
  check_same_device_dtype(X, "X", grad_degree, "grad_degree", "rbf_ratio_cut_backward_x");
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X), Zb = as_batched(Z);
  const int64_t n = Xb.size(1), d = Xb.size(2);
  const auto sqx = squared_norms(Xb), sqz = squared_norms(Zb);
  const auto sig = sigma.reshape({batch}).contiguous();
  const auto gc = grad_cut.reshape({batch}).contiguous();
  const auto gd = grad_degree.reshape({batch, n}).contiguous();
  auto wx = at::empty({batch, n, d}, Xb.options());
  auto weight_sum = at::empty({batch, n}, Xb.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (n > 0 && batch > 0) {
    const int64_t step = tile_rows(batch, n, n);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_backward_x_cuda", [&] {
      for (int64_t i0 = 0; i0 < n; i0 += step) {
        const int64_t rows = std::min(step, n - i0);
        auto tile = at::bmm(Xb.narrow(1, i0, rows), Xb.transpose(1, 2));
        const auto ztile = at::bmm(Zb.narrow(1, i0, rows), Zb.transpose(1, 2));
        fill_affinity_kernel<scalar_t><<<grid_for(tile.numel()), kThreads, 0, stream>>>(
            tile.data_ptr<scalar_t>(), sqx.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(),
            batch, rows, n, i0, scalar_t(0));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        fill_weight_kernel<scalar_t><<<grid_for(tile.numel()), kThreads, 0, stream>>>(
            tile.data_ptr<scalar_t>(), ztile.data_ptr<scalar_t>(), sqz.data_ptr<scalar_t>(),
            gc.data_ptr<scalar_t>(), gd.data_ptr<scalar_t>(), batch, rows, n, i0);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        wx.narrow(1, i0, rows).copy_(at::bmm(tile, Xb));
        weight_sum.narrow(1, i0, rows).copy_(tile.sum(2));
      }
      grad_x_kernel<scalar_t><<<grid_for(batch * n), kThreads, 0, stream>>>(
          Xb.data_ptr<scalar_t>(), weight_sum.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(),
          batch, n, d, wx.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return X.dim() == 2 ? wx.squeeze(0) : wx;
}

// ---- rectangular form: ops

// Returns (partial cut (B,), row degree (B, n), S Zc (B, n, k)), squeezed for unbatched input.
// Returns (cut, degree, S Zc, d cut / d Zc), the last from S^T [Z, 1] in the same pass.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ratio_cut_rows_cuda(
    const at::Tensor& X, const at::Tensor& Z, const at::Tensor& Xc, const at::Tensor& Zc,
    const at::Tensor& sigma, int64_t row_offset, bool zero_diagonal) {
  constexpr const char* op = "rbf_ratio_cut_rows";
  const int64_t batch = check_rows_inputs(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal, op);
  // sigma > 0 is checked by the Python wrapper (no host sync here).
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X), Zb = as_batched(Z), Xcb = as_batched(Xc), Zcb = as_batched(Zc);
  const int64_t n = Xb.size(1), m = Xcb.size(1), k = Zb.size(2);
  const auto sqx = squared_norms(Xb), sqc = squared_norms(Xcb);
  const auto sig = sigma.reshape({batch}).contiguous();
  // [Zc, 1, ||zc||^2]: one product S [Zc, 1, q] gives (S Zc, degree, S q).
  const auto cols_ext = at::cat(
      {Zcb, at::ones({batch, m, 1}, Zcb.options()), squared_norms(Zcb).unsqueeze(2)}, 2);
  auto acc = at::zeros({batch, n, k + 2}, Zb.options());
  auto acc_c = at::zeros({batch, m, k + 1}, Zb.options());  // S^T [Z, 1]
  auto grad_zc = at::zeros({batch, m, k}, Zb.options());
  auto row_terms = at::zeros({batch, n}, Xb.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (n > 0 && m > 0 && batch > 0) {
    const int64_t step = tile_rows(batch, n, m);
    const auto xc_t = Xcb.transpose(1, 2);
    const auto z_one = at::cat({Zb, at::ones({batch, n, 1}, Zb.options())}, 2);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_rows_cuda", [&] {
      for (int64_t i0 = 0; i0 < n; i0 += step) {
        const int64_t rows = std::min(step, n - i0);
        auto tile = at::bmm(Xb.narrow(1, i0, rows), xc_t);
        fill_rect_affinity_kernel<scalar_t><<<grid_for(tile.numel()), kThreads, 0, stream>>>(
            tile.data_ptr<scalar_t>(), sqx.data_ptr<scalar_t>(), sqc.data_ptr<scalar_t>(),
            sig.data_ptr<scalar_t>(), batch, rows, n, m, i0, row_offset, zero_diagonal);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        acc.narrow(1, i0, rows).copy_(at::bmm(tile, cols_ext));
        acc_c.baddbmm_(tile.transpose(1, 2), z_one.narrow(1, i0, rows));
      }
      rect_cut_grad_zc_kernel<scalar_t><<<grid_for(batch * m), kThreads, 0, stream>>>(
          Zcb.data_ptr<scalar_t>(), acc_c.data_ptr<scalar_t>(), batch * m, k,
          grad_zc.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      rect_row_cut_kernel<scalar_t><<<grid_for(batch * n), kThreads, 0, stream>>>(
          Zb.data_ptr<scalar_t>(), acc.data_ptr<scalar_t>(), batch * n, k,
          row_terms.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  auto cut = row_terms.sum(1);
  auto degree = acc.select(2, k).clone(at::MemoryFormat::Contiguous);
  auto sz = acc.narrow(2, 0, k).clone(at::MemoryFormat::Contiguous);
  if (X.dim() == 2) {
    return {cut.squeeze(0), degree.squeeze(0), sz.squeeze(0), grad_zc.squeeze(0)};
  }
  return {cut, degree, sz, grad_zc};
}

// Gradients of g_c * cut + sum_i g_i d_i with respect to X, Xc and Zc (see rbf.h), by
// recomputing S tile by tile; output_mask picks (X, Xc), an unwanted one is zeros.
std::tuple<at::Tensor, at::Tensor> ratio_cut_rows_backward_cuda(
    const at::Tensor& X, const at::Tensor& Z, const at::Tensor& Xc, const at::Tensor& Zc,
    const at::Tensor& sigma, const at::Tensor& grad_cut, const at::Tensor& grad_degree,
    int64_t row_offset, bool zero_diagonal, std::array<bool, 2> output_mask) {
  constexpr const char* op = "rbf_ratio_cut_rows_backward";
  const int64_t batch = check_rows_inputs(X, Z, Xc, Zc, sigma, row_offset, zero_diagonal, op);
  check_same_device_dtype(X, "X", grad_cut, "grad_cut", op);
  check_same_device_dtype(X, "X", grad_degree, "grad_degree", op);
  const c10::cuda::CUDAGuard guard(X.device());
  const bool need_x = output_mask[0], need_xc = output_mask[1];
  const auto Xb = as_batched(X), Zb = as_batched(Z), Xcb = as_batched(Xc), Zcb = as_batched(Zc);
  const int64_t n = Xb.size(1), m = Xcb.size(1), d = Xb.size(2), k = Zb.size(2);
  TORCH_CHECK(grad_cut.numel() == batch && grad_degree.numel() == batch * n, op,
              ": grad_cut and grad_degree must have the shapes of cut and degree, got ",
              grad_cut.sizes(), " and ", grad_degree.sizes());
  const auto sqx = squared_norms(Xb), sqc = squared_norms(Xcb);
  const auto sqz = squared_norms(Zb), sqzc = squared_norms(Zcb);
  const auto sig = sigma.reshape({batch}).contiguous();
  const auto gc = grad_cut.reshape({batch}).contiguous();
  const auto gd = grad_degree.reshape({batch, n}).contiguous();
  auto wx = at::zeros({batch, n, d}, Xb.options());
  auto ws = at::zeros({batch, n}, Xb.options());
  auto wxc = at::zeros({batch, m, d}, Xb.options());
  auto wsc = at::zeros({batch, m}, Xb.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (n > 0 && m > 0 && batch > 0) {
    const int64_t step = tile_rows(batch, n, m);
    const auto xc_t = Xcb.transpose(1, 2), zc_t = Zcb.transpose(1, 2);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_rows_backward_cuda", [&] {
      for (int64_t i0 = 0; i0 < n; i0 += step) {
        const int64_t rows = std::min(step, n - i0);
        const auto xi = Xb.narrow(1, i0, rows);
        auto tile = at::bmm(xi, xc_t);
        fill_rect_affinity_kernel<scalar_t><<<grid_for(tile.numel()), kThreads, 0, stream>>>(
            tile.data_ptr<scalar_t>(), sqx.data_ptr<scalar_t>(), sqc.data_ptr<scalar_t>(),
            sig.data_ptr<scalar_t>(), batch, rows, n, m, i0, row_offset, zero_diagonal);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const auto ztile = at::bmm(Zb.narrow(1, i0, rows), zc_t);
        fill_rect_weight_kernel<scalar_t><<<grid_for(tile.numel()), kThreads, 0, stream>>>(
            tile.data_ptr<scalar_t>(), ztile.data_ptr<scalar_t>(), sqz.data_ptr<scalar_t>(),
            sqzc.data_ptr<scalar_t>(), gc.data_ptr<scalar_t>(), gd.data_ptr<scalar_t>(), batch,
            rows, n, m, i0, row_offset, zero_diagonal);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        if (need_x) {
          wx.narrow(1, i0, rows).copy_(at::bmm(tile, Xcb));
          ws.narrow(1, i0, rows).copy_(tile.sum(2));
        }
        if (need_xc) {
          wxc.baddbmm_(tile.transpose(1, 2), xi);
          wsc.add_(tile.sum(1));
        }
      }
      if (need_x) {
        rect_grad_x_kernel<scalar_t><<<grid_for(batch * n), kThreads, 0, stream>>>(
            Xb.data_ptr<scalar_t>(), ws.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(), batch, n,
            d, wx.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      if (need_xc) {
        rect_grad_x_kernel<scalar_t><<<grid_for(batch * m), kThreads, 0, stream>>>(
            Xcb.data_ptr<scalar_t>(), wsc.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(), batch,
            m, d, wxc.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  if (X.dim() == 2) return {wx.squeeze(0), wxc.squeeze(0)};
  return {wx, wxc};
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CUDA, m) {
  m.impl("rbf_affinity", &affinity_cuda);
  m.impl("rbf_ratio_cut", &ratio_cut_cuda);
  m.impl("rbf_ratio_cut_backward_x", &ratio_cut_backward_x_cuda);
  m.impl("rbf_ratio_cut_rows", &ratio_cut_rows_cuda);
  m.impl("rbf_ratio_cut_rows_backward", &ratio_cut_rows_backward_cuda);
}

}  // namespace pydeepclust
