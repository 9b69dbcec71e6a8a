// The kernels and raw-pointer launchers of the cosine-to-simplex ops, without torch:
// included by cosine_simplex.cu (the ops) and csrc/tests/device_simplex.cu (their test,
// with its own PDC_LAUNCH_CHECK). The paths and why: cosine_simplex.cu.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include <algorithm>
#include <type_traits>

#include "pydeepclust/simplex.h"

#ifndef PDC_LAUNCH_CHECK
#define PDC_LAUNCH_CHECK() C10_CUDA_KERNEL_LAUNCH_CHECK()
#endif

namespace pydeepclust {
namespace simplex_cuda {

constexpr int kWarp = 32;
constexpr int kWarps = 4;                  // warps per block
constexpr int kThreads = kWarp * kWarps;   // rows per block and pass
constexpr int64_t kSharedBytes = 48 * 1024;
constexpr int64_t kMaxWidth = 64;          // the widest register bucket
constexpr int64_t kGemmMinK = 32;          // GEMM path from k >= 32 and m >= 32 (cosine_simplex.cu)
constexpr int64_t kGemmMinM = 32;

// A warp's staging tile: 32 rows of one chunk of kChunk columns (128 bytes of a row), row
// stride kChunk + 1 (odd: lanes reading their own rows hit distinct banks).
template <typename T>
struct Tile {
  static constexpr int kChunk = 128 / int(sizeof(T));
  static constexpr int kStride = kChunk + 1;
  static constexpr int kWarpElems = kWarp * kStride;
  static constexpr int64_t kBytes = int64_t(sizeof(T)) * kWarps * kWarpElems;
};

// Whether the codes and their inverse norms fit in shared memory beside the tiles.
template <typename T>
inline bool codes_fit(int64_t k, int64_t m) {
  return (k * m + k) * int64_t(sizeof(T)) <= kSharedBytes - Tile<T>::kBytes;
}

// Rows e[i * rs + j * es] (i < n, j < m) against codes (k x m, contiguous). inv_cn: the
// codes' inverse norms in global memory, or nullptr: the kernel copies the codes to shared
// memory and computes them there (the launcher then reserves codes_bytes()).
template <typename T>
struct Rows {
  const T* e;
  int64_t rs, es, n;
  const T* codes;
  const T* inv_cn;
  int64_t k, m;
};

template <typename T>
inline int64_t codes_bytes(const Rows<T>& a) {
  return a.inv_cn != nullptr ? 0 : (a.k * a.m + a.k) * int64_t(sizeof(T));
}

enum class Path { kRegisters, kGemm, kGeneric };

inline Path forward_path(int64_t k, int64_t m) {
  if (k >= kGemmMinK && m >= kGemmMinM) return Path::kGemm;
  return m <= kMaxWidth ? Path::kRegisters : Path::kGeneric;
}

inline Path backward_path(int64_t m) { return m <= kMaxWidth ? Path::kRegisters : Path::kGeneric; }

// Whether a launch on this path needs launch_code_norms first (Rows::inv_cn non-null).
template <typename T>
inline bool needs_global_norms(Path path, int64_t k, int64_t m) {
  return path == Path::kGemm || !codes_fit<T>(k, m);
}

inline unsigned int blocks_for(int64_t n, unsigned int max_blocks) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(b, max_blocks)));
}

// ---------------------------------------------------------------- device helpers

// The codes and inverse norms the kernel reads: from global memory when the launch gave
// inverse norms, else copied to / computed in shared memory at `smem` (all threads of the
// block call this once, before any other use of shared memory).
template <typename T>
__device__ __forceinline__ void block_codes(const Rows<T>& a, T* smem, const T** codes,
                                            const T** inv_cn) {
  if (a.inv_cn != nullptr) {  // uniform over the grid
    *codes = a.codes;
    *inv_cn = a.inv_cn;
    return;
  }
  const int64_t km = a.k * a.m;
  for (int64_t t = threadIdx.x; t < km; t += blockDim.x) smem[t] = a.codes[t];
  __syncthreads();
  for (int64_t c = threadIdx.x; c < a.k; c += blockDim.x) {
    smem[km + c] = simplex::inv_row_norm(smem + c * a.m, a.m);
  }
  __syncthreads();
  *codes = smem;
  *inv_cn = smem + km;
}

// First row of this warp and the step between its rows (a grid-stride loop over warps).
__device__ __forceinline__ int64_t warp_first_row() {
  return (int64_t(blockIdx.x) * kWarps + threadIdx.x / kWarp) * kWarp;
}
__device__ __forceinline__ int64_t warp_row_step() { return int64_t(gridDim.x) * kThreads; }

// Walks the 32 x cw block of a tile (cw <= kChunk <= 32) in flat order, 32 elements a step:
// lane l visits flat indices l, l + 32, ..., i.e. row r = f / cw, column c = f % cw, so that
// a warp's step covers consecutive columns of consecutive rows. f(r, c) is called for rows
// below `rows`.
template <typename F>
__device__ __forceinline__ void walk_tile(int cw, int rows, int lane, F&& f) {
  const int q = kWarp / cw, rem = kWarp - q * cw;
  int r = lane / cw, c = lane - (lane / cw) * cw;
  for (int s = 0; s < cw; ++s) {
    if (r < rows) f(r, c);
    r += q;
    c += rem;
    if (c >= cw) {
      c -= cw;
      ++r;
    }
  }
}

// tile[r * kStride + c] = src[(row0 + r) * rs + c * es] for the warp's rows (row0 + r < n)
// and c < cw; then __syncwarp. Global loads coalesce for es == 1.
template <typename T>
__device__ __forceinline__ void stage_in(const T* __restrict__ src, int64_t rs, int64_t es,
                                         int64_t row0, int64_t n, int cw, T* tile, int lane) {
  const int rows = n - row0 < kWarp ? int(n - row0) : kWarp;
  walk_tile(cw, rows, lane, [&](int r, int c) {
    tile[r * Tile<T>::kStride + c] = src[(row0 + r) * rs + c * es];
  });
  __syncwarp();
}

// dst[(row0 + r) * rs + c] = tile[r * kStride + c] for the warp's rows (row0 + r < n) and
// c < cw, after every lane has written its tile row; coalesced stores.
template <typename T>
__device__ __forceinline__ void stage_out(T* dst, int64_t rs, int64_t row0, int64_t n, int cw,
                                          const T* tile, int lane) {
  __syncwarp();
  const int rows = n - row0 < kWarp ? int(n - row0) : kWarp;
  walk_tile(cw, rows, lane, [&](int r, int c) {
    dst[(row0 + r) * rs + c] = tile[r * Tile<T>::kStride + c];
  });
  __syncwarp();
}

// The lane's row (row0 + lane) into W registers, zero past m, chunk by chunk through the tile.
template <typename T, int W>
__device__ __forceinline__ void load_rows(const Rows<T>& a, int64_t row0, T* tile, int lane,
                                          T (&r)[W]) {
  constexpr int C = Tile<T>::kChunk;
  const int m = static_cast<int>(a.m);
  PDC_UNROLL for (int j0 = 0; j0 < W; j0 += C) {
    const int cw = m - j0 < C ? m - j0 : C;  // <= 0: past the row
    if (cw > 0) stage_in(a.e + j0 * a.es, a.rs, a.es, row0, a.n, cw, tile, lane);
    simplex::load_row_chunk<T, W, C>(tile + lane * Tile<T>::kStride, int64_t(1), j0,
                                     cw > 0 ? cw : 0, r);
    __syncwarp();  // every lane has read the tile before it is rewritten
  }
}

// The lanes' register rows (width m) to out (rows of width m, contiguous), through the tile.
template <typename T, int W>
__device__ __forceinline__ void store_rows(const T (&r)[W], T* out, int64_t m, int64_t row0,
                                           int64_t n, T* tile, int lane) {
  constexpr int C = Tile<T>::kChunk;
  PDC_UNROLL for (int j0 = 0; j0 < W; j0 += C) {
    const int cw = int(m) - j0 < C ? int(m) - j0 : C;
    if (cw > 0) {
      simplex::store_row_chunk<T, W, C>(r, j0, cw, tile + lane * Tile<T>::kStride, int64_t(1));
      stage_out(out + j0, m, row0, n, cw, tile, lane);
    }
  }
}

// ||e||^2 of the lane's row, its chunks staged through the tile (row_sumsq's order).
template <typename T>
__device__ __forceinline__ T staged_sumsq(const Rows<T>& a, int64_t row0, T* tile, int lane) {
  constexpr int C = Tile<T>::kChunk;
  const bool mine = row0 + lane < a.n;
  T s = T(0);
  for (int64_t j0 = 0; j0 < a.m; j0 += C) {
    const int cw = a.m - j0 < C ? int(a.m - j0) : C;
    stage_in(a.e + j0 * a.es, a.rs, a.es, row0, a.n, cw, tile, lane);
    if (mine) {
      s = simplex::accumulate_sumsq(s, tile + lane * Tile<T>::kStride, int64_t(1), int64_t(cw));
    }
    __syncwarp();
  }
  return s;
}

// ---------------------------------------------------------------- kernels

// Shared memory of the register and epilogue kernels: kWarps tiles, then the codes.
#define PDC_SIMPLEX_TILES(T)                                       \
  extern __shared__ __align__(16) unsigned char pdc_smem[];        \
  T* tiles = reinterpret_cast<T*>(pdc_smem);                       \
  const int lane = threadIdx.x % kWarp;                            \
  T* tile = tiles + (threadIdx.x / kWarp) * Tile<T>::kWarpElems;   \
  T* smem_codes = tiles + kWarps * Tile<T>::kWarpElems

template <typename T>
__global__ void code_norms_kernel(const T* __restrict__ codes, int64_t k, int64_t m,
                                  T* __restrict__ inv_cn) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < k;
       c += int64_t(blockDim.x) * gridDim.x) {
    inv_cn[c] = simplex::inv_row_norm(codes + c * m, m);
  }
}

// The register kernels' common frame: the block's codes (shared memory or global), then
// each warp's rows, row0 .. row0 + 31, loaded into registers; body(r, row0, i, codes,
// inv_cn) runs for the lane's row i = row0 + lane (i may be >= n: the body checks, so that
// the whole warp still takes part in the staged stores).
template <typename T, int W, typename Body>
__device__ __forceinline__ void for_register_rows(const Rows<T>& a, T* tile, int lane,
                                                  T* smem_codes, Body&& body) {
  const T *codes, *inv_cn;
  block_codes(a, smem_codes, &codes, &inv_cn);
  for (int64_t row0 = warp_first_row(); row0 < a.n; row0 += warp_row_step()) {
    T r[W];
    load_rows<T, W>(a, row0, tile, lane, r);
    body(r, row0, row0 + lane, codes, inv_cn);
  }
}

template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    assign_registers(Rows<T> a, T scale, T* __restrict__ dist, int64_t* __restrict__ label) {
  PDC_SIMPLEX_TILES(T);
  for_register_rows<T, W>(a, tile, lane, smem_codes,
                          [&](T(&r)[W], int64_t, int64_t i, const T* codes, const T* inv_cn) {
    if (i < a.n) {
      simplex::reg_assign<T, W>(r, int(a.m), codes, inv_cn, a.k, scale, dist + i, label + i);
    }
  });
}

template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    backward_registers(Rows<T> a, T scale, const T* __restrict__ g, int64_t gs,
                       const int64_t* __restrict__ label, T* __restrict__ grad) {
  PDC_SIMPLEX_TILES(T);
  for_register_rows<T, W>(a, tile, lane, smem_codes,
                          [&](T(&r)[W], int64_t row0, int64_t i, const T* codes,
                              const T* inv_cn) {
    if (i < a.n) {
      simplex::reg_assign_grad<T, W>(r, int(a.m), codes, inv_cn, label[i], scale, g[i * gs]);
    }
    store_rows<T, W>(r, grad, a.m, row0, a.n, tile, lane);
  });
}

// kStaged (k <= kChunk): the lane's memberships are formed in its tile row and stored
// through the tile; otherwise in place in out, one row per thread.
template <typename T, int W, bool kStaged>
__global__ void __launch_bounds__(kThreads) memberships_registers(Rows<T> a, T* __restrict__ out) {
  PDC_SIMPLEX_TILES(T);
  for_register_rows<T, W>(a, tile, lane, smem_codes,
                          [&](T(&r)[W], int64_t row0, int64_t i, const T* codes,
                              const T* inv_cn) {
    if constexpr (kStaged) {
      T* mine = tile + lane * Tile<T>::kStride;
      if (i < a.n) simplex::reg_memberships<T, W>(r, int(a.m), codes, inv_cn, a.k, mine, 1);
      stage_out(out, a.k, row0, a.n, int(a.k), tile, lane);
    } else if (i < a.n) {
      simplex::reg_memberships<T, W>(r, int(a.m), codes, inv_cn, a.k, out + i * a.k, 1);
    }
  });
}

// GEMM epilogues: dots (n x k, row stride k) = the rows' dots with the codes; a.inv_cn is
// in global memory.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    assign_epilogue(Rows<T> a, const T* __restrict__ dots, T scale, T* __restrict__ dist,
                    int64_t* __restrict__ label) {
  PDC_SIMPLEX_TILES(T);
  (void)smem_codes;
  constexpr int C = Tile<T>::kChunk;
  for (int64_t row0 = warp_first_row(); row0 < a.n; row0 += warp_row_step()) {
    const int64_t i = row0 + lane;
    const T sumsq = staged_sumsq(a, row0, tile, lane);
    const bool scan = i < a.n && simplex::row_usable(sumsq);
    T best_dot = T(0);
    int64_t best = 0;
    for (int64_t c0 = 0; c0 < a.k; c0 += C) {
      const int cw = a.k - c0 < C ? int(a.k - c0) : C;
      stage_in(dots + c0, a.k, int64_t(1), row0, a.n, cw, tile, lane);
      if (scan) {
        simplex::take_nearest(tile + lane * Tile<T>::kStride, int64_t(1), a.inv_cn, c0,
                              int64_t(cw), &best_dot, &best);
      }
      __syncwarp();
    }
    if (i < a.n) simplex::finish_assign(sumsq, best_dot, best, scale, dist + i, label + i);
  }
}

// In place: out holds the dots on entry and the memberships on exit.
template <typename T>
__global__ void __launch_bounds__(kThreads) memberships_epilogue(Rows<T> a, T* out) {
  PDC_SIMPLEX_TILES(T);
  (void)smem_codes;
  constexpr int C = Tile<T>::kChunk;
  T* mine = tile + lane * Tile<T>::kStride;
  for (int64_t row0 = warp_first_row(); row0 < a.n; row0 += warp_row_step()) {
    const bool valid = row0 + lane < a.n;
    T norm, inv_norm;
    simplex::norm_and_inverse(staged_sumsq(a, row0, tile, lane), &norm, &inv_norm);
    T dmin = T(0), total = T(0);
    for (int64_t c0 = 0; c0 < a.k; c0 += C) {
      const int cw = a.k - c0 < C ? int(a.k - c0) : C;
      stage_in(out + c0, a.k, int64_t(1), row0, a.n, cw, tile, lane);
      if (valid) simplex::take_min_distance(mine, 1, norm, inv_norm, a.inv_cn, c0, cw, &dmin);
      __syncwarp();
    }
    for (int64_t c0 = 0; c0 < a.k; c0 += C) {
      const int cw = a.k - c0 < C ? int(a.k - c0) : C;
      stage_in(out + c0, a.k, int64_t(1), row0, a.n, cw, tile, lane);
      if (valid) simplex::add_weights(mine, 1, norm, inv_norm, a.inv_cn, c0, cw, dmin, &total);
      __syncwarp();
    }
    const T inv_total = T(1) / total;
    for (int64_t c0 = 0; c0 < a.k; c0 += C) {
      const int cw = a.k - c0 < C ? int(a.k - c0) : C;
      stage_in(out + c0, a.k, int64_t(1), row0, a.n, cw, tile, lane);
      if (valid) {
        simplex::write_memberships(mine, 1, norm, inv_norm, a.inv_cn, c0, cw, dmin, inv_total,
                                   mine, 1);
      }
      stage_out(out + c0, a.k, row0, a.n, cw, tile, lane);
    }
  }
}

// Generic: one thread per row on the per-row functions (rows wider than the buckets).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    assign_generic(Rows<T> a, T scale, T* __restrict__ dist, int64_t* __restrict__ label) {
  extern __shared__ __align__(16) unsigned char pdc_smem[];
  const T *codes, *inv_cn;
  block_codes(a, reinterpret_cast<T*>(pdc_smem), &codes, &inv_cn);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.n;
       i += int64_t(blockDim.x) * gridDim.x) {
    simplex::row_assign(a.e + i * a.rs, a.es, codes, inv_cn, a.k, a.m, scale, dist + i,
                        label + i);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_generic(Rows<T> a, T scale, const T* __restrict__ g, int64_t gs,
                     const int64_t* __restrict__ label, T* __restrict__ grad) {
  extern __shared__ __align__(16) unsigned char pdc_smem[];
  const T *codes, *inv_cn;
  block_codes(a, reinterpret_cast<T*>(pdc_smem), &codes, &inv_cn);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.n;
       i += int64_t(blockDim.x) * gridDim.x) {
    simplex::row_assign_grad(a.e + i * a.rs, a.es, codes, inv_cn, a.m, label[i], scale,
                             g[i * gs], grad + i * a.m, int64_t(1));
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) memberships_generic(Rows<T> a, T* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char pdc_smem[];
  const T *codes, *inv_cn;
  block_codes(a, reinterpret_cast<T*>(pdc_smem), &codes, &inv_cn);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.n;
       i += int64_t(blockDim.x) * gridDim.x) {
    simplex::row_distances(a.e + i * a.rs, a.es, codes, inv_cn, a.k, a.m, out + i * a.k,
                           int64_t(1));
    simplex::memberships_from_distances(out + i * a.k, int64_t(1), a.k);
  }
}

#undef PDC_SIMPLEX_TILES

// ---------------------------------------------------------------- launchers
// Raw pointers, the given stream, nothing launched for n == 0, a launch check after each
// launch; max_blocks caps the grid (the kernels loop), so that the codes are loaded by
// few blocks.

// f(std::integral_constant<int, W>) for the smallest width bucket W >= m (m <= kMaxWidth).
template <typename F>
inline void with_width(int64_t m, F&& f) {
  if (m <= 4) f(std::integral_constant<int, 4>());
  else if (m <= 8) f(std::integral_constant<int, 8>());
  else if (m <= 16) f(std::integral_constant<int, 16>());
  else if (m <= 32) f(std::integral_constant<int, 32>());
  else f(std::integral_constant<int, 64>());
}

template <typename T>
void launch_code_norms(const T* codes, int64_t k, int64_t m, T* inv_cn, cudaStream_t stream) {
  const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>((k + 127) / 128, 1024));
  code_norms_kernel<T><<<blocks, 128, 0, stream>>>(codes, k, m, inv_cn);
  PDC_LAUNCH_CHECK();
}

// Registers (m <= kMaxWidth) or generic.
template <typename T>
void launch_assign(const Rows<T>& a, T scale, T* dist, int64_t* label, cudaStream_t stream,
                   unsigned int max_blocks) {
  if (a.n == 0) return;
  const unsigned int blocks = blocks_for(a.n, max_blocks);
  if (a.m <= kMaxWidth) {
    with_width(a.m, [&](auto w) {
      constexpr int W = decltype(w)::value;
      assign_registers<T, W><<<blocks, kThreads, Tile<T>::kBytes + codes_bytes(a), stream>>>(
          a, scale, dist, label);
      PDC_LAUNCH_CHECK();
    });
  } else {
    assign_generic<T><<<blocks, kThreads, codes_bytes(a), stream>>>(a, scale, dist, label);
    PDC_LAUNCH_CHECK();
  }
}

template <typename T>
void launch_backward(const Rows<T>& a, T scale, const T* g, int64_t gs, const int64_t* label,
                     T* grad, cudaStream_t stream, unsigned int max_blocks) {
  if (a.n == 0) return;
  const unsigned int blocks = blocks_for(a.n, max_blocks);
  if (a.m <= kMaxWidth) {
    with_width(a.m, [&](auto w) {
      constexpr int W = decltype(w)::value;
      backward_registers<T, W><<<blocks, kThreads, Tile<T>::kBytes + codes_bytes(a), stream>>>(
          a, scale, g, gs, label, grad);
      PDC_LAUNCH_CHECK();
    });
  } else {
    backward_generic<T><<<blocks, kThreads, codes_bytes(a), stream>>>(a, scale, g, gs, label,
                                                                     grad);
    PDC_LAUNCH_CHECK();
  }
}

template <typename T>
void launch_memberships(const Rows<T>& a, T* out, cudaStream_t stream, unsigned int max_blocks) {
  if (a.n == 0) return;
  const unsigned int blocks = blocks_for(a.n, max_blocks);
  const int64_t smem = Tile<T>::kBytes + codes_bytes(a);
  if (a.m <= kMaxWidth) {
    with_width(a.m, [&](auto w) {
      constexpr int W = decltype(w)::value;
      if (a.k <= Tile<T>::kChunk) {
        memberships_registers<T, W, true><<<blocks, kThreads, smem, stream>>>(a, out);
      } else {
        memberships_registers<T, W, false><<<blocks, kThreads, smem, stream>>>(a, out);
      }
      PDC_LAUNCH_CHECK();
    });
  } else {
    memberships_generic<T><<<blocks, kThreads, codes_bytes(a), stream>>>(a, out);
    PDC_LAUNCH_CHECK();
  }
}

// GEMM epilogues for the rows of `a` (a tile), dots (a.n x a.k, contiguous); a.inv_cn global.
template <typename T>
void launch_assign_epilogue(const Rows<T>& a, const T* dots, T scale, T* dist, int64_t* label,
                            cudaStream_t stream, unsigned int max_blocks) {
  if (a.n == 0) return;
  assign_epilogue<T><<<blocks_for(a.n, max_blocks), kThreads, Tile<T>::kBytes, stream>>>(
      a, dots, scale, dist, label);
  PDC_LAUNCH_CHECK();
}

template <typename T>
void launch_memberships_epilogue(const Rows<T>& a, T* out, cudaStream_t stream,
                                 unsigned int max_blocks) {
  if (a.n == 0) return;
  memberships_epilogue<T><<<blocks_for(a.n, max_blocks), kThreads, Tile<T>::kBytes, stream>>>(
      a, out);
  PDC_LAUNCH_CHECK();
}

}  // namespace simplex_cuda
}  // namespace pydeepclust
