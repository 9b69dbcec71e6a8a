// CPU kernel of the low-rank Cayley retraction. The math is in cayley.h.
//
// Small matrices (a batch of many): one whole step per matrix inside
// at::parallel_for over the batch, in cache, no temporaries beyond a per-thread
// workspace. Larger matrices: the O(n p^2) Gram blocks and the final
// combination go through ATen's bmm/baddbmm (BLAS); only the 2p x 2p solve of
// cayley.h runs per matrix, again in parallel over the batch. Both per-matrix loops
// are compiled for the baseline target, AVX2 + FMA and AVX-512 (simd.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "output_cache.h"
#include "pydeepclust/cayley.h"
#include "simd.h"

namespace pydeepclust {
namespace {

constexpr const char* kOp = "cayley_retraction";
// Matrices up to this many entries take the fused per-matrix path, so that a
// matrix, its direction and the Gram blocks stay in L1; larger ones go to BLAS.
// Not tuned yet: at B = 256 of 64 x 8 the fused path is 1.4x the reference.
constexpr int64_t kFusedMaxEntries = 64 * 16;

// The pointers and sizes of one call, for the per-matrix loops below.
template <typename T>
struct BatchArgs {
  const T* x;      // X (fused) or the Gram blocks A (BLAS path)
  const T* g;      // G (fused) or P = X^T G
  const T* q;      // unused (fused) or Q = G^T G
  const T* tau;
  int64_t tau_stride, n, p;
  T* out;          // Y (fused) or K
};

// Matrices [begin, end) of the fused path: the whole step each.
template <typename T>
PDC_CPU_INLINE void retract_matrices(const BatchArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t np = a.n * a.p;
  std::vector<T> work(cayley::retract_workspace_size(a.p));
  for (int64_t b = begin; b < end; ++b)
    cayley::retract(a.x + b * np, a.g + b * np, a.n, a.p, a.tau[b * a.tau_stride], work.data(),
                    a.out + b * np);
}

// Matrices [begin, end) of the BLAS path: K from the Gram blocks.
template <typename T>
PDC_CPU_INLINE void coefficient_matrices(const BatchArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t pp = a.p * a.p;
  std::vector<T> work(cayley::workspace_size(a.p));
  for (int64_t b = begin; b < end; ++b)
    cayley::coefficients(a.x + b * pp, a.g + b * pp, a.q + b * pp, a.p, a.tau[b * a.tau_stride],
                         work.data(), a.out + 2 * b * pp);
}

PDC_CLONES(retract_matrices, BatchArgs)
PDC_CLONES(coefficient_matrices, BatchArgs)

// Runs `fn` over the batch on the intra-op threads.
template <typename T>
void for_matrices(const BatchArgs<T>& a, int64_t batch, int64_t work_per_matrix,
                  void (*fn)(const BatchArgs<T>&, int64_t, int64_t)) {
  at::parallel_for(0, batch, grain_for(work_per_matrix),
                   [&](int64_t begin, int64_t end) { fn(a, begin, end); });
}

at::Tensor retraction_fused(const at::Tensor& X, const at::Tensor& G, const at::Tensor& tau) {
  const int64_t batch = X.size(0), n = X.size(1), p = X.size(2);
  const auto Xc = X.contiguous(), Gc = G.contiguous();
  auto Y = empty_output({batch, n, p}, X.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), kOp, [&] {
    const BatchArgs<scalar_t> a{Xc.data_ptr<scalar_t>(), Gc.data_ptr<scalar_t>(), nullptr,
                                tau.data_ptr<scalar_t>(), tau.numel() == 1 ? 0 : 1, n, p,
                                Y.data_ptr<scalar_t>()};
    for_matrices<scalar_t>(a, batch, 10 * n * p * p, PDC_PICK_CLONE(retract_matrices, scalar_t));
  });
  return Y;
}

at::Tensor retraction_blas(const at::Tensor& X, const at::Tensor& G, const at::Tensor& tau) {
  const int64_t batch = X.size(0), p = X.size(2);
  const auto Xt = X.transpose(1, 2);
  const auto A = at::bmm(Xt, X).contiguous();
  const auto P = at::bmm(Xt, G).contiguous();
  const auto Q = at::bmm(G.transpose(1, 2), G).contiguous();
  auto K = at::empty({batch, 2 * p, p}, X.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), kOp, [&] {
    const BatchArgs<scalar_t> a{A.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(),
                                Q.data_ptr<scalar_t>(), tau.data_ptr<scalar_t>(),
                                tau.numel() == 1 ? 0 : 1, X.size(1), p, K.data_ptr<scalar_t>()};
    for_matrices<scalar_t>(a, batch, 8 * p * p * p,
                           PDC_PICK_CLONE(coefficient_matrices, scalar_t));
  });
  return at::baddbmm(at::bmm(X, K.narrow(1, 0, p)), G, K.narrow(1, p, p));
}

at::Tensor cayley_retraction_cpu(const at::Tensor& X, const at::Tensor& G, const at::Tensor& tau) {
  check_cayley_inputs(X, G, tau, kOp);
  const auto Xb = X.dim() == 2 ? X.unsqueeze(0) : X;
  const auto Gb = G.dim() == 2 ? G.unsqueeze(0) : G;
  const auto t = tau.contiguous();
  at::Tensor Y;
  if (X.numel() == 0) {
    Y = at::empty(Xb.sizes(), X.options());
  } else if (Xb.size(1) * Xb.size(2) <= kFusedMaxEntries) {
    Y = retraction_fused(Xb, Gb, t);
  } else {
    Y = retraction_blas(Xb, Gb, t);
  }
  return X.dim() == 2 ? Y.squeeze(0) : Y;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydeepclust, CPU, m) { m.impl("cayley_retraction", &cayley_retraction_cpu); }

}  // namespace pydeepclust
