// CUDA kernels of the RBF ops (DESIGN §3c). The math is in rbf.h, shared with
// the CPU kernels.
//
// Streaming ratio cut: tiles of R rows against all n rows, (B, R, n) at a time.
// The Gram tile X_I X^T is a cuBLAS product (at::bmm), one elementwise kernel
// turns it into S (forward) or the backward weights W in place, and a second
// cuBLAS product folds it into the row reductions S [Z, 1] or W X. No n x n
// buffer exists: memory is O(n (d + k)) plus one tile of at most kTileElements in the
// forward and two (S or W, and the Gram tile of Z) in the backward; a batch with
// B * n > kTileElements takes one row per tile, which is then B * n elements.
// (A first version, one thread per row with shared-memory tiles of x_j, ran
// 7-13x slower than the dense reference on an H100: the Gram products hold the
// flops, and cuBLAS does them best.)
// The materialised affinity is the same fill on one full (B, n, n) Gram product.
#include <ATen/Dispatch.h>
#include <ATen/Functions.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "pydeepclust/rbf.h"

namespace pydeepclust {
namespace {

// Elements of S held at once: one tile of rows (B, R, n) of the batch.
// 2^25 elements = 128 MiB (float32), whatever n; at n = 65,536 that is R = 512
// rows, still a full-speed cuBLAS product.
constexpr int64_t kTileElements = int64_t(1) << 25;
constexpr int kThreads = 256;

at::Tensor as_batched(const at::Tensor& t) {
  return (t.dim() == 2 ? t.unsqueeze(0) : t).contiguous();
}

at::Tensor squared_norms(const at::Tensor& t) {
  return at::linalg_vector_norm(t, 2, {2}, false, c10::nullopt).square().contiguous();
}

unsigned int grid_for(int64_t total) {
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>((total + kThreads - 1) / kThreads, 1), 65535));
}

// Rows per tile so that a (batch, rows, n) tile stays within kTileElements.
int64_t tile_rows(int64_t batch, int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>(n, kTileElements / std::max<int64_t>(batch * n, 1)));
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
    const int64_t step = tile_rows(batch, n);
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
    const int64_t step = tile_rows(batch, n);
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

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CUDA, m) {
  m.impl("rbf_affinity", &affinity_cuda);
  m.impl("rbf_ratio_cut", &ratio_cut_cuda);
  m.impl("rbf_ratio_cut_backward_x", &ratio_cut_backward_x_cuda);
}

}  // namespace pydeepclust
