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

// RBF ops (DESIGN §3c): X (B, n, d) or (n, d); sigma with one value per batch
// element (shape (B,), or () / (1,) for an unbatched X); Z, when given, (B, n, k)
// or (n, k) with the same batch and n. Returns B (1 for an unbatched X).
inline int64_t check_rbf_inputs(const at::Tensor& X, const at::Tensor& sigma,
                                const at::Tensor* Z, const char* op) {
  check_floating(X, "X", op);
  TORCH_CHECK(X.dim() == 2 || X.dim() == 3, op, ": X must have shape (n, d) or (B, n, d), got ",
              X.sizes());
  const int64_t batch = X.dim() == 3 ? X.size(0) : 1;
  check_same_device_dtype(X, "X", sigma, "sigma", op);
  TORCH_CHECK(sigma.numel() == batch && sigma.dim() <= 1, op,
              ": sigma must hold one bandwidth per batch element (", batch, "), got shape ",
              sigma.sizes());
  if (Z != nullptr) {
    check_same_device_dtype(X, "X", *Z, "Z", op);
    TORCH_CHECK(Z->dim() == X.dim() && Z->size(-2) == X.size(-2) &&
                    (X.dim() == 2 || Z->size(0) == X.size(0)),
                op, ": Z must have shape (..., n, k) with the batch and n of X ", X.sizes(),
                ", got ", Z->sizes());
  }
  return batch;
}

}  // namespace pydeepclust

namespace pydeepclust {

// Degree-weighted kernel ops: X (B, n, d) and a per-batch bandwidth sigma (B,)
// (ignored by the linear kernel). Returns true for the RBF kernel.
inline bool check_kernel_inputs(const at::Tensor& X, const at::Tensor& sigma,
                                c10::string_view kernel, const char* op) {
  check_floating(X, "X", op);
  TORCH_CHECK(X.dim() == 3, op, ": X must have shape (B, n, d), got ", X.sizes());
  TORCH_CHECK(kernel == "rbf" || kernel == "linear", op,
              ": kernel must be 'rbf' or 'linear', got '", kernel, "'");
  const bool rbf = kernel == "rbf";
  if (rbf) {
    check_same_device_dtype(X, "X", sigma, "sigma", op);
    TORCH_CHECK(sigma.dim() == 1 && sigma.size(0) == X.size(0), op,
                ": sigma must have shape (B,) = (", X.size(0), ",), got ", sigma.sizes());
  }
  return rbf;
}

// Streaming RBF sums: A (B, n, d), Y (B, m, d), weights (B, m), sigma (B,).
inline void check_rbf_sum_inputs(const at::Tensor& A, const at::Tensor& Y,
                                 const at::Tensor& weights, const at::Tensor& sigma,
                                 const char* op) {
  check_floating(A, "X", op);
  check_same_device_dtype(A, "X", Y, "Y", op);
  check_same_device_dtype(A, "X", weights, "weights", op);
  check_same_device_dtype(A, "X", sigma, "sigma", op);
  TORCH_CHECK(A.dim() == 3 && Y.dim() == 3 && A.size(0) == Y.size(0) && A.size(2) == Y.size(2),
              op, ": X and Y must have shapes (B, n, d) and (B, m, d), got ", A.sizes(), " and ",
              Y.sizes());
  TORCH_CHECK(weights.dim() == 2 && weights.size(0) == Y.size(0) && weights.size(1) == Y.size(1),
              op, ": weights must have shape (B, m) = ", Y.sizes().slice(0, 2), ", got ",
              weights.sizes());
  TORCH_CHECK(sigma.dim() == 1 && sigma.size(0) == A.size(0), op,
              ": sigma must have shape (B,) = (", A.size(0), ",), got ", sigma.sizes());
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

// Rows X (n, d), Z (n, k) against columns Xc (m, d), Zc (m, k), or all (B, ., .); with
// zero_diagonal the rows must be the columns row_offset .. row_offset + n. Returns B.
inline int64_t check_rows_inputs(const at::Tensor& X, const at::Tensor& Z,
                                 const at::Tensor& Xc, const at::Tensor& Zc,
                                 const at::Tensor& sigma, int64_t row_offset, bool zero_diagonal,
                                 const char* op) {
  const int64_t batch = check_rbf_inputs(X, sigma, &Z, op);
  check_same_device_dtype(X, "X", Xc, "Xc", op);
  check_same_device_dtype(X, "X", Zc, "Zc", op);
  TORCH_CHECK(Xc.dim() == X.dim() && Xc.size(-1) == X.size(-1) &&
                  (X.dim() == 2 || Xc.size(0) == X.size(0)),
              op, ": Xc must have shape (..., m, d) with the batch and d of X ", X.sizes(),
              ", got ", Xc.sizes());
  TORCH_CHECK(Zc.dim() == Xc.dim() && Zc.size(-2) == Xc.size(-2) && Zc.size(-1) == Z.size(-1) &&
                  (Xc.dim() == 2 || Zc.size(0) == Xc.size(0)),
              op, ": Zc must have shape (..., m, k) with the batch and m of Xc ", Xc.sizes(),
              " and the k of Z ", Z.sizes(), ", got ", Zc.sizes());
  TORCH_CHECK(!zero_diagonal || (row_offset >= 0 && row_offset + X.size(-2) <= Xc.size(-2)), op,
              ": with zero_diagonal the rows must be columns row_offset .. row_offset + n - 1, "
              "need 0 <= row_offset and row_offset + n <= m; got row_offset = ",
              row_offset, ", n = ", X.size(-2), ", m = ", Xc.size(-2));
  return batch;
}

}  // namespace pydeepclust
