// The simplex math compiled by nvcc, on the device, against the host. Exits 77 (CTest:
// skipped) without a GPU.
//
//  1. simplex::row_assign in a one-thread-per-row kernel equals the host result.
//  2. The kernels of csrc/cuda/cosine_simplex_kernels.cuh (no torch) through their
//     launchers: every width bucket of the register path (m = 1 .. 64), the generic
//     fallback (m > 64), codes in shared memory and in global memory (too large, or
//     forced), the GEMM epilogues on dots summed in reverse order, contiguous / padded /
//     strided rows, memberships staged (k <= one chunk) and not, n = 0, 1, 31, 33, 129,
//     1000 and a grid capped at 2 blocks (grid-stride loops), zero / NaN / inf /
//     overflowing / tiny / tied / on-code rows. Compared with the host per-row functions:
//     exact for labels (rows with a clear margin, special rows) and the NaN pattern, to
//     rounding for values (the device contracts a * b + c into FMAs; the GEMM path sums in
//     another order).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "check.h"
#include "pydeepclust/simplex.h"

#define PDC_LAUNCH_CHECK() CHECK(cudaGetLastError() == cudaSuccess)
#include "../cuda/cosine_simplex_kernels.cuh"

namespace sx = pydeepclust::simplex;
namespace sc = pydeepclust::simplex_cuda;

__global__ void assign_rows(const double* e, const double* codes, const double* inv_cn, int n,
                            int k, int m, double* dist, int64_t* label) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) sx::row_assign(e + i * m, 1, codes, inv_cn, k, m, 1.0, dist + i, label + i);
}

void test_row_assign_kernel() {
  const int n = 64, k = 4, m = 3;
  std::vector<double> e(n * m), codes = {1, 0, 0, -1.0 / 3, 0.9428090415820634, 0,
                                          -1.0 / 3, -0.4714045207910317, 0.816496580927726,
                                          -1.0 / 3, -0.4714045207910317, -0.816496580927726};
  std::vector<double> inv_cn(k, 1.0);
  for (int i = 0; i < n * m; ++i) e[i] = std::sin(0.37 * i + 0.1) * (i % 5);
  double *de, *dc, *di, *dd;
  int64_t* dl;
  cudaMalloc(&de, e.size() * sizeof(double));
  cudaMalloc(&dc, codes.size() * sizeof(double));
  cudaMalloc(&di, inv_cn.size() * sizeof(double));
  cudaMalloc(&dd, n * sizeof(double));
  cudaMalloc(&dl, n * sizeof(int64_t));
  cudaMemcpy(de, e.data(), e.size() * sizeof(double), cudaMemcpyHostToDevice);
  cudaMemcpy(dc, codes.data(), codes.size() * sizeof(double), cudaMemcpyHostToDevice);
  cudaMemcpy(di, inv_cn.data(), inv_cn.size() * sizeof(double), cudaMemcpyHostToDevice);
  assign_rows<<<1, 64>>>(de, dc, di, n, k, m, dd, dl);
  std::vector<double> dist(n);
  std::vector<int64_t> label(n);
  CHECK(cudaMemcpy(dist.data(), dd, n * sizeof(double), cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaMemcpy(label.data(), dl, n * sizeof(int64_t), cudaMemcpyDeviceToHost);
  for (int i = 0; i < n; ++i) {
    double hd;
    int64_t hl;
    sx::row_assign(e.data() + i * m, 1, codes.data(), inv_cn.data(), k, m, 1.0, &hd, &hl);
    CHECK(hl == label[i]);
    CHECK_NEAR(hd, dist[i], 1e-14);
  }
  cudaFree(de);
  cudaFree(dc);
  cudaFree(di);
  cudaFree(dd);
  cudaFree(dl);
}

// ---------------------------------------------------------------- the op kernels

// A device buffer of `count` elements (at least one), optionally filled from the host.
template <typename T>
struct Buffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit Buffer(size_t n) : count(n) { CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)) == cudaSuccess); }
  explicit Buffer(const std::vector<T>& host) : Buffer(host.size()) {
    if (!host.empty()) {
      CHECK(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) ==
            cudaSuccess);
    }
  }
  ~Buffer() { cudaFree(ptr); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::vector<T> get() const {
    std::vector<T> host(count);
    if (count) {
      CHECK(cudaMemcpy(host.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost) ==
            cudaSuccess);
    }
    return host;
  }
  // Poison with a NaN pattern (bytes 0xff), so that elements a kernel misses show.
  void poison() { CHECK(cudaMemset(ptr, 0xff, std::max<size_t>(count, 1) * sizeof(T)) == cudaSuccess); }
};

// dots[i * k + c] = dot(row i, code c), summed from the last column down (not index order,
// as a GEMM's sums are not).
template <typename T>
__global__ void dots_reversed(const T* e, int64_t rs, int64_t es, int64_t n, const T* codes,
                              int64_t k, int64_t m, T* dots) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n * k;
       t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t i = t / k, c = t - (t / k) * k;
    T s = T(0);
    for (int64_t j = m - 1; j >= 0; --j) s += e[i * rs + j * es] * codes[c * m + j];
    dots[t] = s;
  }
}

struct Lcg {
  uint64_t state;
  double next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return double(state >> 11) / double(1ULL << 53) * 2 - 1;
  }
};

template <typename T>
bool same_or_both_nan(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

template <typename T>
bool close(T a, T b, double tol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(double(a) - double(b)) <= tol * (1 + std::fabs(double(b)));
}

struct Case {
  int64_t n, k, m;
  int64_t es, pad;        // element stride; row stride m * es + pad
  bool force_global;      // codes and norms from global memory even when they fit
  unsigned int max_blocks;
};

template <typename T>
void run_case(const Case& cs) {
  const int64_t n = cs.n, k = cs.k, m = cs.m, es = cs.es, rs = m * es + cs.pad;
  const double tol = sizeof(T) == 4 ? 2e-4 : 1e-10;  // values; GEMM order and FMAs
  const T scale = T(1.25);
  Lcg rng{uint64_t(1000003 * n + 1009 * k + 17 * m + es)};
  std::vector<T> codes(k * m), inv_cn(k);
  for (auto& v : codes) v = T(rng.next());
  if (k > 1) {
    for (int64_t j = 0; j < m; ++j) codes[m + j] = codes[j];  // codes 0 and 1 tie
  }
  for (int64_t c = 0; c < k; ++c) inv_cn[c] = sx::inv_row_norm(codes.data() + c * m, m);

  // rows, with special ones at fixed places
  std::vector<T> e(std::max<int64_t>(n * rs, 1), T(99));
  auto at = [&](int64_t i, int64_t j) -> T& { return e[i * rs + j * es]; };
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) at(i, j) = T(rng.next());
  }
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  // special: rows whose label does not depend on rounding (zero, non-finite, overflowing,
  // underflowing); rows 6 and 7 (on codes) are compared like the others, by their margin
  std::vector<char> special(n, 0);
  auto mark = [&](int64_t i) { return i < n ? (special[i] = 1, true) : false; };
  if (mark(1)) for (int64_t j = 0; j < m; ++j) at(1, j) = T(0);
  if (mark(2)) at(2, m / 2) = nan;
  if (mark(3)) at(3, m - 1) = -inf;
  if (mark(5)) for (int64_t j = 0; j < m; ++j) at(5, j) = std::sqrt(std::numeric_limits<T>::max()) * 2;
  if (n > 6) for (int64_t j = 0; j < m; ++j) at(6, j) = codes[j] * T(2);  // on codes 0 = 1
  if (n > 7) for (int64_t j = 0; j < m; ++j) at(7, j) = codes[(k - 1) * m + j];
  if (mark(8)) for (int64_t j = 0; j < m; ++j) at(8, j) = std::numeric_limits<T>::min() * T(rng.next());
  if (n > 9 && mark(n - 1)) at(n - 1, 0) = inf;  // the last row

  // host reference: the per-row functions
  std::vector<T> ref_dist(n), ref_mem(n * k), ref_grad(n * m), g(2 * n + 1);
  std::vector<int64_t> ref_label(n);
  std::vector<char> clear(n, 1);
  for (auto& v : g) v = T(rng.next());
  for (int64_t i = 0; i < n; ++i) {
    const T* row = e.data() + i * rs;
    sx::row_assign(row, es, codes.data(), inv_cn.data(), k, m, scale, &ref_dist[i], &ref_label[i]);
    sx::row_distances(row, es, codes.data(), inv_cn.data(), k, m, ref_mem.data() + i * k, 1);
    sx::memberships_from_distances(ref_mem.data() + i * k, 1, k);
    sx::row_assign_grad(row, es, codes.data(), inv_cn.data(), m, ref_label[i], scale, g[2 * i],
                        ref_grad.data() + i * m, 1);
    // a clear label: the best cosine beats every other code's (but its duplicate) by 1e-3
    const T norm = sx::row_norm(row, es, m);
    if (ref_label[i] >= 0 && norm > T(0)) {
      const int64_t b = ref_label[i];
      const double best = sx::dot_with_code(row, es, codes.data() + b * m, m) * inv_cn[b] / norm;
      for (int64_t c = 0; c < k; ++c) {
        const bool twin = (c <= 1 && b <= 1);
        const double cc = sx::dot_with_code(row, es, codes.data() + c * m, m) * inv_cn[c] / norm;
        if (c != b && !twin && best - cc < 1e-3) clear[i] = 0;
      }
    }
  }

  Buffer<T> de(e), dc(codes), dn(k), dist(n), grad(n * m), mem(n * k), dots(n * k), dg(g);
  Buffer<int64_t> label(n), dlabel(ref_label);
  sc::launch_code_norms(dc.ptr, k, m, dn.ptr, 0);
  const bool global = cs.force_global || !sc::codes_fit<T>(k, m);
  sc::Rows<T> a{de.ptr, rs, es, n, dc.ptr, global ? dn.ptr : nullptr, k, m};
  sc::Rows<T> ag = a;  // the GEMM epilogues read global norms
  ag.inv_cn = dn.ptr;

  auto check_assign = [&](const char* path) {
    const auto d = dist.get();
    const auto l = label.get();
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool ok_l = (!clear[i] && !special[i] && ref_label[i] >= 0) || l[i] == ref_label[i];
      if (!ok_l || !close(d[i], ref_dist[i], tol)) {
        if (bad++ < 3) {
          std::printf("  %s n=%lld k=%lld m=%lld es=%lld row %lld: label %lld (host %lld), "
                      "dist %.9g (host %.9g)\n", path, (long long)n, (long long)k, (long long)m,
                      (long long)es, (long long)i, (long long)l[i], (long long)ref_label[i],
                      double(d[i]), double(ref_dist[i]));
        }
      }
    }
    CHECK(bad == 0);
  };
  auto check_memberships = [&](const char* path) {
    const auto out = mem.get();
    int bad = 0;
    for (int64_t t = 0; t < n * k; ++t) {
      if (!close(out[t], ref_mem[t], tol) && bad++ < 3) {
        std::printf("  %s n=%lld k=%lld m=%lld: membership [%lld, %lld] %.9g (host %.9g)\n", path,
                    (long long)n, (long long)k, (long long)m, (long long)(t / k),
                    (long long)(t % k), double(out[t]), double(ref_mem[t]));
      }
    }
    CHECK(bad == 0);
  };

  // registers (m <= 64) or generic
  dist.poison();
  label.poison();
  sc::launch_assign<T>(a, scale, dist.ptr, label.ptr, 0, cs.max_blocks);
  check_assign(m <= sc::kMaxWidth ? "registers" : "generic");

  mem.poison();
  sc::launch_memberships<T>(a, mem.ptr, 0, cs.max_blocks);
  check_memberships(m <= sc::kMaxWidth ? "registers" : "generic");

  for (int64_t gs : {int64_t(2), int64_t(0)}) {  // per-row and expanded upstream gradients
    grad.poison();
    sc::launch_backward<T>(a, scale, dg.ptr, gs, dlabel.ptr, grad.ptr, 0, cs.max_blocks);
    const auto out = grad.get();
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<T> ref(m);
      sx::row_assign_grad(e.data() + i * rs, es, codes.data(), inv_cn.data(), m, ref_label[i],
                          scale, g[i * gs], ref.data(), 1);
      // the gradient's two terms have the size |g| scale / ||e|| and may cancel: rounding
      // errors scale with them
      const double norm = sx::row_norm(e.data() + i * rs, es, m);
      const double size = norm > 0 && std::isfinite(norm) ? std::fabs(g[i * gs]) * scale / norm : 0;
      for (int64_t j = 0; j < m; ++j) {
        if (!close(out[i * m + j], ref[j], tol * (1 + size)) && bad++ < 3) {
          std::printf("  backward gs=%lld n=%lld k=%lld m=%lld: grad [%lld, %lld] %.9g (host "
                      "%.9g)\n", (long long)gs, (long long)n, (long long)k, (long long)m,
                      (long long)i, (long long)j, double(out[i * m + j]), double(ref[j]));
        }
      }
    }
    CHECK(bad == 0);
  }

  // GEMM epilogues, on dots summed in reverse order
  if (n > 0) {
    dots_reversed<T><<<64, 128>>>(de.ptr, rs, es, n, dc.ptr, k, m, dots.ptr);
    CHECK(cudaGetLastError() == cudaSuccess);
  }
  dist.poison();
  label.poison();
  sc::launch_assign_epilogue<T>(ag, dots.ptr, scale, dist.ptr, label.ptr, 0, cs.max_blocks);
  check_assign("gemm");
  if (n > 0) {
    CHECK(cudaMemcpy(mem.ptr, dots.ptr, n * k * sizeof(T), cudaMemcpyDeviceToDevice) ==
          cudaSuccess);
  }
  sc::launch_memberships_epilogue<T>(ag, mem.ptr, 0, cs.max_blocks);
  check_memberships("gemm");
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

template <typename T>
void test_op_kernels() {
  const unsigned int many = 1024;
  std::vector<Case> cases;
  // every width bucket (m = 1 .. 64 across 4, 8, 16, 32, 64), k = m + 1 (the simplex codes)
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 49, 63, 64}) {
    cases.push_back({1000, m + 1, m, 1, 0, false, many});
  }
  // generic (m > 64), padded and strided rows
  cases.push_back({1000, 3, 65, 1, 0, false, many});
  cases.push_back({777, 12, 100, 2, 3, false, many});
  cases.push_back({500, 9, 8, 1, 5, false, many});    // rs = m + 5
  cases.push_back({500, 10, 9, 3, 1, false, many});   // es = 3
  cases.push_back({500, 50, 49, 2, 0, false, many});  // es = 2, W = 64
  // memberships not staged (k above one chunk), k = 1 and 2
  cases.push_back({300, 40, 4, 1, 0, false, many});
  cases.push_back({300, 1, 6, 1, 0, false, many});
  cases.push_back({300, 2, 1, 1, 0, false, many});
  // codes in global memory: forced, and too large for shared memory
  cases.push_back({600, 10, 9, 1, 0, true, many});
  cases.push_back({600, 200, 40, 1, 0, false, many});
  cases.push_back({600, 65, 64, 1, 0, false, many});
  cases.push_back({600, 70, 70, 1, 0, false, many});
  // wide codes (the GEMM path's shapes)
  cases.push_back({1000, 100, 99, 1, 0, false, many});
  // n = 0, 1, around a warp and a block, and a grid of 2 blocks looping over 5000 rows
  for (int64_t n : {0, 1, 31, 33, 129}) cases.push_back({n, 10, 9, 1, 0, false, many});
  cases.push_back({1, 50, 49, 1, 0, false, many});
  cases.push_back({5000, 10, 9, 1, 0, false, 2});
  cases.push_back({5000, 33, 32, 2, 1, false, 2});
  cases.push_back({5000, 12, 70, 1, 0, false, 2});
  for (const auto& c : cases) run_case<T>(c);
}

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("device_simplex: no CUDA device, skipped\n");
    return 77;
  }
  test_row_assign_kernel();
  test_op_kernels<float>();
  test_op_kernels<double>();
  return pdc_test::report("device_simplex");
}
