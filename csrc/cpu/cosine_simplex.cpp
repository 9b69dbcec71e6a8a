// CPU kernels of the cosine-to-simplex ops. The forward ops work on blocks of rows
// held in SIMD lanes (simplex.h, block_assign / block_memberships: rows transposed
// into a small (m, L) buffer, each code's dot product one vectorised sweep over it),
// blocks split across threads with at::parallel_for; the backward takes the row norms
// from the same blocks and writes each gradient row whole.
// Outputs come from empty_output (output_cache.h): large ones reuse freed buffers.
// The hot loops are compiled for the baseline x86-64 target, AVX2 + FMA and AVX-512,
// picked at run time (simd.h). The math is in simplex.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../checks.h"
#include "output_cache.h"
#include "pydeepclust/simplex.h"
#include "simd.h"

namespace pydeepclust {
namespace {

constexpr const char* kAssign = "cosine_simplex_assign";

// Rows per block (SIMD lanes x a few registers): 32 floats or 16 doubles.
template <typename T>
constexpr int lanes() {
  return sizeof(T) == 4 ? 32 : 16;
}

template <typename T>
struct AssignArgs {
  const T* e;
  int64_t rs, es, n, k, m;
  const T* codes;
  const T* inv_cn;
  T scale;
  T* dist;
  int64_t* label;
  T* out;  // memberships (n x k)
};

// Blocks [b0, b1) of L rows each.
template <typename T, int L>
PDC_CPU_INLINE void assign_blocks(const AssignArgs<T>& a, int64_t b0, int64_t b1) {
  std::vector<T> et(a.m * L);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t i = b * L, rows = std::min<int64_t>(L, a.n - i);
    simplex::block_assign<T, L>(a.e + i * a.rs, a.rs, a.es, rows, a.codes, a.inv_cn, a.k, a.m,
                                a.scale, a.dist + i, a.label + i, et.data());
  }
}

template <typename T, int L>
PDC_CPU_INLINE void membership_blocks(const AssignArgs<T>& a, int64_t b0, int64_t b1) {
  std::vector<T> et(a.m * L), dk(a.k * L);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t i = b * L, rows = std::min<int64_t>(L, a.n - i);
    simplex::block_memberships<T, L>(a.e + i * a.rs, a.rs, a.es, rows, a.codes, a.inv_cn, a.k,
                                     a.m, a.out + i * a.k, a.k, et.data(), dk.data());
  }
}

template <typename T>
PDC_CPU_INLINE void assign_lanes(const AssignArgs<T>& a, int64_t b0, int64_t b1) {
  assign_blocks<T, lanes<T>()>(a, b0, b1);
}
PDC_CLONES(assign_lanes, AssignArgs)
// Row by row: for more codes than a T counts exactly (block_take holds labels as T).
template <typename T>
void assign_rows(const AssignArgs<T>& a, int64_t b0, int64_t b1) {
  constexpr int L = lanes<T>();
  for (int64_t i = b0 * L; i < std::min(b1 * L, a.n); ++i) {
    simplex::row_assign(a.e + i * a.rs, a.es, a.codes, a.inv_cn, a.k, a.m, a.scale, a.dist + i,
                        a.label + i);
  }
}
template <typename T>
PDC_CPU_INLINE void membership_lanes(const AssignArgs<T>& a, int64_t b0, int64_t b1) {
  membership_blocks<T, lanes<T>()>(a, b0, b1);
}
PDC_CLONES(membership_lanes, AssignArgs)

template <typename T>
struct GradArgs {
  const T* e;
  int64_t rs, es, n, m;
  const T* codes;
  const T* inv_cn;
  const T* g;
  int64_t gs;
  const int64_t* label;
  T scale;
  T* grad;  // n x m, contiguous
};

// Blocks [b0, b1) of L rows of the gradient (block_assign_grad).
template <typename T>
PDC_CPU_INLINE void grad_blocks(const GradArgs<T>& a, int64_t b0, int64_t b1) {
  constexpr int L = lanes<T>();
  std::vector<T> et(a.m * L);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t i = b * L, rows = std::min<int64_t>(L, a.n - i);
    simplex::block_assign_grad<T, L>(a.e + i * a.rs, a.rs, a.es, rows, a.codes, a.inv_cn, a.m,
                                     a.label + i, a.scale, a.g + i * a.gs, a.gs, a.grad + i * a.m,
                                     et.data());
  }
}
PDC_CLONES(grad_blocks, GradArgs)

// 1 / ||s_c|| of each code, by the header's function: the same sums as the CUDA kernels.
template <typename T>
std::vector<T> inverse_code_norms(const T* codes, int64_t k, int64_t m) {
  std::vector<T> inv(k);
  for (int64_t c = 0; c < k; ++c) inv[c] = simplex::inv_row_norm(codes + c * m, m);
  return inv;
}

// Runs `fn` over all row blocks on the intra-op threads.
template <typename T, typename Fn>
void for_blocks(const AssignArgs<T>& a, int64_t work_per_row, Fn fn) {
  constexpr int L = lanes<T>();
  const int64_t nblocks = (a.n + L - 1) / L;
  at::parallel_for(0, nblocks, grain_for(work_per_row * L),
                   [&](int64_t b0, int64_t b1) { fn(a, b0, b1); });
}

std::tuple<at::Tensor, at::Tensor> assign_cpu(const at::Tensor& E, const at::Tensor& codes,
                                              double scale) {
  check_simplex_inputs(E, codes, kAssign);
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});  // a view whenever the layout allows
  const auto codes_c = codes.contiguous();
  const int64_t n = rows.size(0);
  auto dist = empty_output({n}, E.options());
  auto label = empty_output({n}, E.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), kAssign, [&] {
    const auto inv_cn = inverse_code_norms(codes_c.data_ptr<scalar_t>(), k, m);
    AssignArgs<scalar_t> a{rows.data_ptr<scalar_t>(), rows.stride(0), rows.stride(1), n, k, m,
                           codes_c.data_ptr<scalar_t>(), inv_cn.data(),
                           static_cast<scalar_t>(scale), dist.data_ptr<scalar_t>(),
                           label.data_ptr<int64_t>(), nullptr};
    using Fn = void (*)(const AssignArgs<scalar_t>&, int64_t, int64_t);
    const bool exact = k < (int64_t(1) << (sizeof(scalar_t) == 4 ? 24 : 53));
    for_blocks<scalar_t, Fn>(
        a, k * m, exact ? PDC_PICK_CLONE(assign_lanes, scalar_t) : &assign_rows<scalar_t>);
  });
  const auto batch = E.sizes().slice(0, E.dim() - 1);
  return {dist.view(batch), label.view(batch)};
}

at::Tensor assign_backward_cpu(const at::Tensor& grad_dist, const at::Tensor& E,
                               const at::Tensor& codes, const at::Tensor& label, double scale) {
  check_simplex_inputs(E, codes, "cosine_simplex_assign_backward");
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const int64_t n = rows.size(0);
  // The gradient of dist.sum() is an expanded scalar (stride 0): read it through its
  // stride instead of materialising it.
  const auto g = grad_dist.reshape({n});
  const auto lab = label.reshape({n}).contiguous();
  const auto codes_c = codes.contiguous();
  auto grad = empty_output({n, m}, E.options());
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "cosine_simplex_assign_backward", [&] {
    const auto inv_cn = inverse_code_norms(codes_c.data_ptr<scalar_t>(), k, m);
    GradArgs<scalar_t> a{rows.data_ptr<scalar_t>(), rows.stride(0), rows.stride(1), n, m,
                         codes_c.data_ptr<scalar_t>(), inv_cn.data(),
                         g.data_ptr<scalar_t>(), g.stride(0), lab.data_ptr<int64_t>(),
                         static_cast<scalar_t>(scale), grad.data_ptr<scalar_t>()};
    constexpr int L = lanes<scalar_t>();
    const auto fn = PDC_PICK_CLONE(grad_blocks, scalar_t);
    at::parallel_for(0, (n + L - 1) / L, grain_for(m * L),
                     [&](int64_t b0, int64_t b1) { fn(a, b0, b1); });
  });
  return grad.view(E.sizes());
}

at::Tensor memberships_cpu(const at::Tensor& E, const at::Tensor& codes) {
  check_simplex_inputs(E, codes, "soft_memberships");
  const int64_t k = codes.size(0), m = codes.size(1);
  const auto rows = E.reshape({-1, m});
  const auto codes_c = codes.contiguous();
  const int64_t n = rows.size(0);
  auto out = empty_output({n, k}, E.options());
  AT_DISPATCH_FLOATING_TYPES(E.scalar_type(), "soft_memberships", [&] {
    const auto inv_cn = inverse_code_norms(codes_c.data_ptr<scalar_t>(), k, m);
    AssignArgs<scalar_t> a{rows.data_ptr<scalar_t>(), rows.stride(0), rows.stride(1), n, k, m,
                           codes_c.data_ptr<scalar_t>(), inv_cn.data(),
                           scalar_t(1), nullptr, nullptr, out.data_ptr<scalar_t>()};
    using Fn = void (*)(const AssignArgs<scalar_t>&, int64_t, int64_t);
    for_blocks<scalar_t, Fn>(a, k * m, PDC_PICK_CLONE(membership_lanes, scalar_t));
  });
  auto shape = E.sizes().vec();
  shape.back() = k;
  return out.view(shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CPU, m) {
  m.impl("cosine_simplex_assign", &assign_cpu);
  m.impl("cosine_simplex_assign_backward", &assign_backward_cpu);
  m.impl("soft_memberships", &memberships_cpu);
}

}  // namespace pydeepclust
