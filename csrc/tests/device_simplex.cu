// The simplex math compiled by nvcc: device results must equal the host ones
// (same header, same arithmetic). Exits 77 (CTest: skipped) without a GPU.
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include "check.h"
#include "pydeepclust/simplex.h"

namespace sx = pydeepclust::simplex;

__global__ void assign_rows(const double* e, const double* codes, const double* inv_cn, int n,
                            int k, int m, double* dist, int64_t* label) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) sx::row_assign(e + i * m, 1, codes, inv_cn, k, m, 1.0, dist + i, label + i);
}

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("device_simplex: no CUDA device, skipped\n");
    return 77;
  }
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
  return pdc_test::report("device_simplex");
}
