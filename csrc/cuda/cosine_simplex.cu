// CUDA kernels of the cosine-to-simplex ops (DESIGN §3a, §7). All per-element math is in
// pydeepclust/simplex.h, shared with the CPU kernels and unit-tested bit for bit there
// (csrc/tests/test_simplex.cpp); this file (the ops) and cosine_simplex_kernels.cuh (the
// kernels and their launchers) hold indexing, staging and launches only.
//
// Paths, chosen on the host from k and m (no host synchronisation anywhere):
//
//  * Registers (m <= 64; the backward always when m <= 64): one thread per row, the row
//    loaded once into W registers, W the smallest width bucket 4, 8, 16, 32 or 64 that holds
//    m (simplex::reg_*: every code's dot from registers, the summation order of the per-row
//    functions). A warp owns 32 consecutive rows and stages them through its shared-memory
//    tile in chunks of 128 bytes of each row, so that for es == 1 a warp's global loads
//    read consecutive addresses (whole consecutive rows when the row fits one chunk);
//    outputs that one thread would write with a stride (the gradient n x m, memberships
//    n x k when k fits a chunk) go back out through the tile the same way. dist / label
//    are one element per thread, already coalesced.
//
//  * GEMM (assign and memberships, k >= 32 and m >= 32): dots = rows @ codes^T by cuBLAS
//    (at::mm_out, TF32 off) in row tiles of at most tiling::kTileElements, then an epilogue
//    kernel that stages each warp's dots (and, for ||e||^2, its rows) in chunks through the
//    tile and runs the header's nearest-code / memberships passes on them. The GEMM sums
//    the dots in its own order, not index order, so this path agrees with the others to
//    rounding, not bit for bit (labels of rows within rounding of a tie may differ).
//    Why 32: the register path costs k * W FMAs per row on CUDA cores, each reading one
//    code element from shared memory (the broadcast loads bound it, not the FMAs), while
//    the GEMM path costs ~ 2k + m extra elements of DRAM traffic per row (the dots written
//    and read back, the row read twice). With the H100's ~7e12 shared-memory loads/s
//    against ~3.3 TB/s the two meet near k * m ~ 1000, i.e. k = m = 32; below that the
//    register path wins clearly (k = m + 1 <= 32 is the common case, GenKSC's k <= 32). An
//    estimate, not a measurement: to be tuned on a GPU (an autotuned dispatch, DESIGN §7).
//
//  * Generic (m > 64, when not GEMM; the backward for m > 64): the previous one-thread-per-
//    row kernels on the per-row functions.
//
// Codes: every kernel but the GEMM epilogues copies the codes (k x m) to shared memory at
// its start and computes their inverse norms there (simplex::inv_row_norm), when they fit
// the shared-memory budget left by the tiles; otherwise one small kernel writes the inverse
// norms to global memory and the kernels read codes and norms from there (read-only
// cache). The epilogues read the global inverse norms (they need no codes).
// Shared memory per block <= 48 KiB (the limit without an opt-in): 4 warps' tiles of
// 32 x (128 B + one element) = 16.5 KiB (float) / 17 KiB (double), the rest (~31 KiB,
// (k m + k) elements) for codes and inverse norms.
//
// The kernels: cosine_simplex_kernels.cuh; this file holds the ops around them.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "cosine_simplex_kernels.cuh"
#include "tiling.cuh"

namespace pydeepclust {

namespace {

namespace sx = simplex_cuda;

// Grid cap: 16 blocks of 128 threads fill an SM's 2048 threads. (An attribute query: no
// synchronisation.)
unsigned int max_blocks() {
  int sms = 0;
  C10_CUDA_CHECK(
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
  return static_cast<unsigned int>(std::max(sms, 1)) * 16;
}

// The codes' inverse norms in global memory when the path needs them (an undefined tensor
// otherwise: the kernels compute them in shared memory).
template <typename T>
at::Tensor global_norms(const at::Tensor& codes, sx::Path path, cudaStream_t stream) {
  const int64_t k = codes.size(0), m = codes.size(1);
  if (!sx::needs_global_norms<T>(path, k, m)) return at::Tensor();
  auto inv_cn = at::empty({k}, codes.options());
  sx::launch_code_norms(codes.data_ptr<T>(), k, m, inv_cn.data_ptr<T>(), stream);
  return inv_cn;
}

template <typename T>
sx::Rows<T> rows_of(const at::Tensor& rows, const at::Tensor& codes, const at::Tensor& inv_cn) {
  return {rows.data_ptr<T>(),  rows.stride(0), rows.stride(1),
          rows.size(0),        codes.data_ptr<T>(),
          inv_cn.defined() ? inv_cn.data_ptr<T>() : nullptr,
          codes.size(0),       codes.size(1)};
}

// dots = rows @ codes^T in tiles of rows (at most tiling::kTileElements dots each), through
// cuBLAS with TF32 off (float32 dots stay float32-accurate whatever
// torch.backends.cuda.matmul.allow_tf32 says); epilogue(i0, tile_rows, dots) after each
// tile. `out`: the (n x k) tensor to write the dots into, or undefined for a scratch tile.
template <typename F>
void gemm_tiles(const at::Tensor& rows, const at::Tensor& codes, const at::Tensor& out,
                F&& epilogue) {
  const int64_t n = rows.size(0), k = codes.size(0);
  const int64_t step = tiling::tile_rows(1, n, k);
  at::Tensor scratch;
  if (!out.defined()) scratch = at::empty({step, k}, rows.options());
  const auto codes_t = codes.t();
  const at::NoTF32Guard no_tf32;
  for (int64_t i0 = 0; i0 < n; i0 += step) {
    const int64_t r = std::min(step, n - i0);
    auto dots = out.defined() ? out.narrow(0, i0, r) : scratch.narrow(0, 0, r);
    at::mm_out(dots, rows.narrow(0, i0, r), codes_t);
    epilogue(i0, r, dots);
  }
}

std::tuple<at::Tensor, at::Tensor> assign_cuda(const at::Tensor& E, const at::Tensor& codes,
                                               double scale) {
  check_simplex_inputs(E, codes, "cosine_simplex_assign");
  const c10::cuda::CUDAGuard guard(E.device());
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const int64_t n = rows.size(0);
  auto dist = at::empty({n}, E.options());
  auto label = at::empty({n}, E.options().dtype(at::kLong));
  if (n > 0) {
    const auto codes_c = codes.contiguous();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const unsigned int blocks = max_blocks();
    const sx::Path path = sx::forward_path(k, m);
    AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "cosine_simplex_assign_cuda", [&] {
      using T = scalar_t;
      const auto inv_cn = global_norms<T>(codes_c, path, stream);
      const auto a = rows_of<T>(rows, codes_c, inv_cn);
      T* d = dist.data_ptr<T>();
      int64_t* l = label.data_ptr<int64_t>();
      if (path == sx::Path::kGemm) {
        gemm_tiles(rows, codes_c, at::Tensor(), [&](int64_t i0, int64_t r, const at::Tensor& dots) {
          sx::Rows<T> t = a;
          t.e = a.e + i0 * a.rs;
          t.n = r;
          sx::launch_assign_epilogue<T>(t, dots.data_ptr<T>(), static_cast<T>(scale), d + i0,
                                        l + i0, stream, blocks);
        });
      } else {
        sx::launch_assign<T>(a, static_cast<T>(scale), d, l, stream, blocks);
      }
    });
  }
  const auto batch = E.sizes().slice(0, E.dim() - 1);
  return {dist.view(batch), label.view(batch)};
}

at::Tensor assign_backward_cuda(const at::Tensor& grad_dist, const at::Tensor& E,
                                const at::Tensor& codes, const at::Tensor& label, double scale) {
  check_simplex_inputs(E, codes, "cosine_simplex_assign_backward");
  const c10::cuda::CUDAGuard guard(E.device());
  const int64_t m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const int64_t n = rows.size(0);
  auto grad = at::empty({n, m}, E.options());
  if (n > 0) {
    // The gradient of dist.sum() is an expanded scalar (stride 0): read it through its
    // stride instead of materialising it.
    const auto g = grad_dist.reshape({n});
    const auto lab = label.reshape({n}).contiguous();
    const auto codes_c = codes.contiguous();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const sx::Path path = sx::backward_path(m);
    AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "cosine_simplex_assign_backward_cuda", [&] {
      using T = scalar_t;
      const auto inv_cn = global_norms<T>(codes_c, path, stream);
      sx::launch_backward<T>(rows_of<T>(rows, codes_c, inv_cn), static_cast<T>(scale),
                             g.data_ptr<T>(), g.stride(0), lab.data_ptr<int64_t>(),
                             grad.data_ptr<T>(), stream, max_blocks());
    });
  }
  return grad.view(E.sizes());
}

at::Tensor memberships_cuda(const at::Tensor& E, const at::Tensor& codes) {
  check_simplex_inputs(E, codes, "soft_memberships");
  const c10::cuda::CUDAGuard guard(E.device());
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const int64_t n = rows.size(0);
  auto out = at::empty({n, k}, E.options());
  if (n > 0) {
    const auto codes_c = codes.contiguous();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const unsigned int blocks = max_blocks();
    const sx::Path path = sx::forward_path(k, m);
    AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "soft_memberships_cuda", [&] {
      using T = scalar_t;
      const auto inv_cn = global_norms<T>(codes_c, path, stream);
      const auto a = rows_of<T>(rows, codes_c, inv_cn);
      if (path == sx::Path::kGemm) {
        gemm_tiles(rows, codes_c, out, [&](int64_t i0, int64_t r, const at::Tensor& dots) {
          sx::Rows<T> t = a;
          t.e = a.e + i0 * a.rs;
          t.n = r;
          sx::launch_memberships_epilogue<T>(t, dots.data_ptr<T>(), stream, blocks);
        });
      } else {
        sx::launch_memberships<T>(a, out.data_ptr<T>(), stream, blocks);
      }
    });
  }
  auto shape = E.sizes().vec();
  shape.back() = k;
  return out.view(shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CUDA, m) {
  m.impl("cosine_simplex_assign", &assign_cuda);
  m.impl("cosine_simplex_assign_backward", &assign_backward_cuda);
  m.impl("soft_memberships", &memberships_cuda);
}

}  // namespace pydeepclust
