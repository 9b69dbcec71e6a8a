// Argument checks shared by the CPU and CUDA implementations of each op.
// The Python wrappers validate first with friendlier messages; these guard the
// raw torch.ops.pydeepclust.* entry points.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace pydeepclust {

inline void check_floating(const at::Tensor& t, const char* name, const char* op) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be float32 or float64, got ", t.scalar_type());
}

inline void check_same_device_dtype(const at::Tensor& a, const char* an, const at::Tensor& b,
                                    const char* bn, const char* op) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", an, " and ", bn,
              " must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", an, " and ", bn,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// E (..., m) and codes (k, m), k >= 1, m >= 1.
inline void check_simplex_inputs(const at::Tensor& E, const at::Tensor& codes, const char* op) {
  check_floating(E, "E", op);
  check_same_device_dtype(E, "E", codes, "codes", op);
  TORCH_CHECK(codes.dim() == 2 && codes.size(0) >= 1 && codes.size(1) >= 1, op,
              ": codes must have shape (k, m) with k, m >= 1, got ", codes.sizes());
  TORCH_CHECK(E.dim() >= 1 && E.size(-1) == codes.size(1), op,
              ": E must have shape (..., m) with m = codes.size(1) = ", codes.size(1), ", got ",
              E.sizes());
}

// Grain for at::parallel_for given the work per row, so that small inputs stay
// on one thread and large ones split into chunks of ~32768 operations (the
// grain ATen's own TensorIterator loops use).
inline int64_t grain_for(int64_t work_per_row) {
  constexpr int64_t kOpsPerChunk = 32768;
  const int64_t w = work_per_row > 0 ? work_per_row : 1;
  const int64_t g = kOpsPerChunk / w;
  return g > 0 ? g : 1;
}

}  // namespace pydeepclust

namespace pydeepclust {

// Cayley retraction: X and G (n, p) or (B, n, p) with p <= n; tau a 0-d tensor
// or one value per batch matrix (B,), all of one dtype and device.
inline void check_cayley_inputs(const at::Tensor& X, const at::Tensor& G, const at::Tensor& tau,
                                const char* op) {
  check_floating(X, "X", op);
  check_same_device_dtype(X, "X", G, "G", op);
  check_same_device_dtype(X, "X", tau, "tau", op);
  TORCH_CHECK(X.dim() == 2 || X.dim() == 3, op, ": X must have shape (n, p) or (B, n, p), got ",
              X.sizes());
  TORCH_CHECK(G.sizes() == X.sizes(), op, ": G must have the shape of X ", X.sizes(), ", got ",
              G.sizes());
  TORCH_CHECK(X.size(-1) <= X.size(-2), op, ": X (n, p) needs p <= n, got ", X.sizes());
  const bool per_batch = X.dim() == 3 && tau.dim() == 1 && tau.size(0) == X.size(0);
  TORCH_CHECK(tau.dim() == 0 || per_batch, op,
              ": tau must be a 0-d tensor or, for batched X, of shape (B,), got ", tau.sizes());
}

}  // namespace pydeepclust
