// Tiling and launch sizes shared by the CUDA kernels that stream Gram tiles through cuBLAS
// (rbf.cu, degree_kernel.cu): tiles of rows against all columns, one elementwise kernel per
// tile, with a grid-stride loop.
#pragma once

#include <algorithm>
#include <cstdint>

namespace pydeepclust {
namespace tiling {

// Elements of a (batch, rows, cols) tile held at once: 2^25 = 128 MiB in float32, whatever the
// number of columns; at 65,536 columns that is 512 rows, still a full-speed cuBLAS product.
constexpr int64_t kTileElements = int64_t(1) << 25;
constexpr int kThreads = 256;

// Blocks of kThreads for `total` elements, capped for a grid-stride loop.
inline unsigned int grid_for(int64_t total) {
  return static_cast<unsigned int>(
      std::min<int64_t>(std::max<int64_t>((total + kThreads - 1) / kThreads, 1), 65535));
}

// Rows per tile so that a (batch, rows, cols) tile stays within kTileElements (at least one).
inline int64_t tile_rows(int64_t batch, int64_t rows, int64_t cols) {
  const int64_t fit = kTileElements / std::max<int64_t>(batch * cols, 1);
  return std::max<int64_t>(1, std::min<int64_t>(rows, fit));
}

}  // namespace tiling
}  // namespace pydeepclust
