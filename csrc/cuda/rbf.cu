// CUDA kernels of the RBF ops (DESIGN §3c). The math is in rbf.h, shared with
// the CPU kernels.
//
// Streaming ratio cut (KeOps style): one thread per row i, grid (row blocks,
// batch). The block walks over the other rows j in tiles of kTileJ; each tile of
// x_j is staged through shared memory kChunk features at a time (so any d fits),
// each thread keeping its kTileJ partial squared distances in registers. No
// n x n buffer exists: memory is O(n (d + k)).
// The materialised affinity is a batched Gram product (cuBLAS via at::bmm, the
// best tool for it) followed by one elementwise kernel.
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

constexpr int kThreads = 128;  // rows per block
constexpr int kTileJ = 32;     // rows j per shared tile
constexpr int kChunk = 32;     // features per shared tile

at::Tensor as_batched(const at::Tensor& t) {
  return (t.dim() == 2 ? t.unsqueeze(0) : t).contiguous();
}

template <typename T>
__global__ void affinity_kernel(T* __restrict__ s, const T* __restrict__ sq,
                                const T* __restrict__ sigma, int64_t batch, int64_t n,
                                T diag) {
  const int64_t total = batch * n * n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t b = idx / (n * n), i = (idx / n) % n, j = idx % n;
    s[idx] = i == j ? diag
                    : rbf::affinity(rbf::sq_dist_from_dot(sq[b * n + i], sq[b * n + j], s[idx]),
                                    rbf::exponent_scale(sigma[b]));
  }
}

// Squared distances from row i (x_i, registers) to the kTileJ rows j0.. of the
// tile, staged through shared memory kChunk features at a time. Every thread of
// the block must call it (it synchronises).
template <typename T>
__device__ void tile_sq_dists(const T* __restrict__ x, int64_t n, int64_t d, int64_t i,
                              int64_t j0, T (*xs)[kChunk], T* dist) {
  for (int jj = 0; jj < kTileJ; ++jj) dist[jj] = T(0);
  for (int64_t f0 = 0; f0 < d; f0 += kChunk) {
    for (int t = threadIdx.x; t < kTileJ * kChunk; t += blockDim.x) {
      const int jj = t / kChunk, ff = t % kChunk;
      const int64_t j = j0 + jj, f = f0 + ff;
      xs[jj][ff] = (j < n && f < d) ? x[j * d + f] : T(0);
    }
    __syncthreads();
    if (i < n) {
      const int64_t width = d - f0 < kChunk ? d - f0 : kChunk;
      for (int64_t ff = 0; ff < width; ++ff) {
        const T xi = x[i * d + f0 + ff];
        for (int jj = 0; jj < kTileJ; ++jj) {
          const T diff = xi - xs[jj][ff];
          dist[jj] += diff * diff;
        }
      }
    }
    __syncthreads();
  }
}

// Stages z_j of the tile (kTileJ x k) into shared memory.
template <typename T>
__device__ void load_z_tile(const T* __restrict__ z, int64_t n, int64_t k, int64_t j0, T* zs) {
  for (int64_t t = threadIdx.x; t < kTileJ * k; t += blockDim.x) {
    const int64_t j = j0 + t / k;
    zs[t] = j < n ? z[j * k + t % k] : T(0);
  }
}

// Forward: degree_i, (SZ)_i and row i's share of the cut.
template <typename T>
__global__ void ratio_cut_kernel(const T* __restrict__ x, const T* __restrict__ z,
                                 const T* __restrict__ sigma, int64_t n, int64_t d, int64_t k,
                                 T diag, T* __restrict__ degree, T* __restrict__ sz,
                                 T* __restrict__ row_terms) {
  __shared__ T xs[kTileJ][kChunk];
  extern __shared__ unsigned char smem[];
  T* zs = reinterpret_cast<T*>(smem);
  const int64_t b = blockIdx.y;
  x += b * n * d;
  z += b * n * k;
  sz += b * n * k;
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const T c = rbf::exponent_scale(sigma[b]);
  T deg = T(0);
  if (i < n)
    for (int64_t t = 0; t < k; ++t) sz[i * k + t] = T(0);
  T dist[kTileJ];
  for (int64_t j0 = 0; j0 < n; j0 += kTileJ) {
    tile_sq_dists(x, n, d, i, j0, xs, dist);
    load_z_tile(z, n, k, j0, zs);
    __syncthreads();
    if (i < n) {
      for (int jj = 0; jj < kTileJ && j0 + jj < n; ++jj) {
        const T s = j0 + jj == i ? diag : rbf::affinity(dist[jj], c);
        rbf::accumulate_pair(s, zs + jj * k, k, &deg, sz + i * k);
      }
    }
    __syncthreads();
  }
  if (i < n) {
    degree[b * n + i] = deg;
    row_terms[b * n + i] = rbf::row_cut_term(deg, z + i * k, sz + i * k, k);
  }
}

// Backward w.r.t. X: weights W_ij per tile, then sum_j W_ij and (W X)_i.
template <typename T>
__global__ void ratio_cut_backward_x_kernel(const T* __restrict__ x, const T* __restrict__ z,
                                            const T* __restrict__ sigma,
                                            const T* __restrict__ grad_cut,
                                            const T* __restrict__ grad_degree, int64_t n,
                                            int64_t d, int64_t k, T* __restrict__ grad) {
  __shared__ T xs[kTileJ][kChunk];
  extern __shared__ unsigned char smem[];
  T* zs = reinterpret_cast<T*>(smem);
  const int64_t b = blockIdx.y;
  x += b * n * d;
  z += b * n * k;
  grad += b * n * d;
  grad_degree += b * n;
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const T c = rbf::exponent_scale(sigma[b]), gc = grad_cut[b];
  const T gd_i = i < n ? grad_degree[i] : T(0);
  T weight_sum = T(0);
  T dist[kTileJ];
  for (int64_t j0 = 0; j0 < n; j0 += kTileJ) {
    tile_sq_dists(x, n, d, i, j0, xs, dist);
    load_z_tile(z, n, k, j0, zs);
    __syncthreads();
    if (i < n) {
      for (int jj = 0; jj < kTileJ; ++jj) {  // dist[jj] becomes W_ij
        const int64_t j = j0 + jj;
        dist[jj] = (j >= n || j == i)
                       ? T(0)
                       : rbf::pair_weight(rbf::affinity(dist[jj], c),
                                          rbf::sq_dist(z + i * k, zs + jj * k, k), gc, gd_i,
                                          grad_degree[j]);
        weight_sum += dist[jj];
      }
    }
    __syncthreads();
    for (int64_t f0 = 0; f0 < d; f0 += kChunk) {  // (W X)_i over the tile, chunk by chunk
      for (int t = threadIdx.x; t < kTileJ * kChunk; t += blockDim.x) {
        const int jj = t / kChunk, ff = t % kChunk;
        const int64_t j = j0 + jj, f = f0 + ff;
        xs[jj][ff] = (j < n && f < d) ? x[j * d + f] : T(0);
      }
      __syncthreads();
      if (i < n) {
        const int64_t width = d - f0 < kChunk ? d - f0 : kChunk;
        for (int64_t ff = 0; ff < width; ++ff) {
          T acc = T(0);
          for (int jj = 0; jj < kTileJ; ++jj) acc += dist[jj] * xs[jj][ff];
          grad[i * d + f0 + ff] += acc;
        }
      }
      __syncthreads();
    }
  }
  if (i < n) rbf::grad_x_row(x + i * d, weight_sum, grad + i * d, d, c, grad + i * d);
}

dim3 row_grid(int64_t n, int64_t batch) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned int>(blocks > 0 ? blocks : 1), static_cast<unsigned int>(batch));
}

at::Tensor affinity_cuda(const at::Tensor& X, const at::Tensor& sigma, bool zero_diagonal) {
  const int64_t batch = check_rbf_inputs(X, sigma, nullptr, "rbf_affinity");
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X);
  const int64_t n = Xb.size(1);
  auto S = at::bmm(Xb, Xb.transpose(1, 2)).contiguous();
  const auto sq = at::linalg_vector_norm(Xb, 2, {2}, false, c10::nullopt).square().contiguous();
  const auto sig = sigma.reshape({batch}).contiguous();
  const int64_t total = batch * n * n;
  if (total > 0) {
    const int64_t blocks = std::min<int64_t>((total + 255) / 256, 65535);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_affinity_cuda", [&] {
      affinity_kernel<scalar_t><<<static_cast<unsigned int>(blocks), 256, 0,
                                  c10::cuda::getCurrentCUDAStream()>>>(
          S.data_ptr<scalar_t>(), sq.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(), batch, n,
          scalar_t(zero_diagonal ? 0 : 1));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return X.dim() == 2 ? S.squeeze(0) : S;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ratio_cut_cuda(const at::Tensor& X,
                                                              const at::Tensor& Z,
                                                              const at::Tensor& sigma,
                                                              bool zero_diagonal) {
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, "rbf_ratio_cut");
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X), Zb = as_batched(Z);
  const int64_t n = Xb.size(1), d = Xb.size(2), k = Zb.size(2);
  const auto sig = sigma.reshape({batch}).contiguous();
  auto degree = at::zeros({batch, n}, Xb.options());
  auto sz = at::zeros({batch, n, k}, Xb.options());
  auto row_terms = at::zeros({batch, n}, Xb.options());
  if (n > 0 && batch > 0) {
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_cuda", [&] {
      ratio_cut_kernel<scalar_t><<<row_grid(n, batch), kThreads, kTileJ * k * sizeof(scalar_t),
                                   c10::cuda::getCurrentCUDAStream()>>>(
          Xb.data_ptr<scalar_t>(), Zb.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(), n, d, k,
          scalar_t(zero_diagonal ? 0 : 1), degree.data_ptr<scalar_t>(), sz.data_ptr<scalar_t>(),
          row_terms.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  auto cut = row_terms.sum(1);
  if (X.dim() == 2) return {cut.squeeze(0), degree.squeeze(0), sz.squeeze(0)};
  return {cut, degree, sz};
}

at::Tensor ratio_cut_backward_x_cuda(const at::Tensor& X, const at::Tensor& Z,
                                     const at::Tensor& sigma, const at::Tensor& grad_cut,
                                     const at::Tensor& grad_degree, bool zero_diagonal) {
  (void)zero_diagonal;  // W_ii = 0 either way: S_ii does not depend on X
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, "rbf_ratio_cut_backward_x");
  check_same_device_dtype(X, "X", grad_cut, "grad_cut", "rbf_ratio_cut_backward_x");
  check_same_device_dtype(X, "X", grad_degree, "grad_degree", "rbf_ratio_cut_backward_x");
  const c10::cuda::CUDAGuard guard(X.device());
  const auto Xb = as_batched(X), Zb = as_batched(Z);
  const int64_t n = Xb.size(1), d = Xb.size(2), k = Zb.size(2);
  const auto sig = sigma.reshape({batch}).contiguous();
  const auto gc = grad_cut.reshape({batch}).contiguous();
  const auto gd = grad_degree.reshape({batch, n}).contiguous();
  auto grad = at::zeros({batch, n, d}, Xb.options());
  if (n > 0 && batch > 0) {
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "rbf_ratio_cut_backward_x_cuda", [&] {
      ratio_cut_backward_x_kernel<scalar_t>
          <<<row_grid(n, batch), kThreads, kTileJ * k * sizeof(scalar_t),
             c10::cuda::getCurrentCUDAStream()>>>(
              Xb.data_ptr<scalar_t>(), Zb.data_ptr<scalar_t>(), sig.data_ptr<scalar_t>(),
              gc.data_ptr<scalar_t>(), gd.data_ptr<scalar_t>(), n, d, k,
              grad.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return X.dim() == 2 ? grad.squeeze(0) : grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CUDA, m) {
  m.impl("rbf_affinity", &affinity_cuda);
  m.impl("rbf_ratio_cut", &ratio_cut_cuda);
  m.impl("rbf_ratio_cut_backward_x", &ratio_cut_backward_x_cuda);
}

}  // namespace pydeepclust
