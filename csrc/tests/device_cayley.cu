// The Cayley math compiled by nvcc: a whole step per matrix on the device must
// equal the host one (same header, same arithmetic). Exits 77 (CTest: skipped)
// without a GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "check.h"
#include "pydeepclust/cayley.h"

namespace cy = pydeepclust::cayley;

__global__ void retract_each(const double* X, const double* G, int batch, int n, int p,
                             double tau, double* work, double* Y) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < batch) {
    cy::retract(X + b * n * p, G + b * n * p, n, p, tau, work + b * cy::retract_workspace_size(p),
                Y + b * n * p);
  }
}

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("device_cayley: no CUDA device, skipped\n");
    return 77;
  }
  const int batch = 8, n = 9, p = 3;
  const double tau = 0.6;
  // X: the first p columns of I (orthonormal); G: smooth pseudo-random values.
  std::vector<double> X(batch * n * p, 0.0), G(batch * n * p), Y(batch * n * p);
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < p; ++j) X[b * n * p + ((j + b) % n) * p + j] = 1.0;
  for (size_t e = 0; e < G.size(); ++e) G[e] = std::sin(0.91 * e + 0.3);
  const size_t bytes = X.size() * sizeof(double);
  const size_t work_bytes = batch * cy::retract_workspace_size(p) * sizeof(double);
  double *dx, *dg, *dw, *dy;
  cudaMalloc(&dx, bytes);
  cudaMalloc(&dg, bytes);
  cudaMalloc(&dy, bytes);
  cudaMalloc(&dw, work_bytes);
  cudaMemcpy(dx, X.data(), bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(dg, G.data(), bytes, cudaMemcpyHostToDevice);
  retract_each<<<1, 32>>>(dx, dg, batch, n, p, tau, dw, dy);
  CHECK(cudaMemcpy(Y.data(), dy, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  std::vector<double> host(n * p), work(cy::retract_workspace_size(p));
  for (int b = 0; b < batch; ++b) {
    cy::retract(X.data() + b * n * p, G.data() + b * n * p, n, p, tau, work.data(), host.data());
    for (int e = 0; e < n * p; ++e) CHECK_NEAR(Y[b * n * p + e], host[e], 1e-13);
  }
  cudaFree(dx);
  cudaFree(dg);
  cudaFree(dy);
  cudaFree(dw);
  return pdc_test::report("device_cayley");
}
