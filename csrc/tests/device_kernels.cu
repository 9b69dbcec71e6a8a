// The kernel/degree math compiled by nvcc: device results must equal the host
// ones (same header, same arithmetic). Exits 77 (CTest: skipped) without a GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "check.h"
#include "pydeepclust/kernels.h"

namespace kn = pydeepclust::kernels;

// Per entry: the RBF value from (norm_a, norm_b, dot); per degree: its inverse.
__global__ void evaluate(const double* in, int n, double gamma, double clamp_eps, double* rbf,
                         double* inv) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  rbf[i] = kn::rbf_from_sqdist(kn::sqdist_from_gram(in[3 * i], in[3 * i + 1], in[3 * i + 2]), gamma);
  inv[i] = kn::inverse_degree(in[3 * i + 2], clamp_eps);
}

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("device_kernels: no CUDA device, skipped\n");
    return 77;
  }
  const int n = 64;
  std::vector<double> in(3 * n);
  for (int i = 0; i < n; ++i) {
    in[3 * i] = 1 + (i % 7);
    in[3 * i + 1] = 2 + (i % 5);
    in[3 * i + 2] = std::sin(0.37 * i) * 3;  // dots of both signs: degrees <= 0 too
  }
  double *din, *drbf, *dinv;
  cudaMalloc(&din, in.size() * sizeof(double));
  cudaMalloc(&drbf, n * sizeof(double));
  cudaMalloc(&dinv, n * sizeof(double));
  cudaMemcpy(din, in.data(), in.size() * sizeof(double), cudaMemcpyHostToDevice);
  for (const double clamp_eps : {0.0, 0.5}) {
    evaluate<<<1, n>>>(din, n, 0.3, clamp_eps, drbf, dinv);
    std::vector<double> rbf(n), inv(n);
    CHECK(cudaMemcpy(rbf.data(), drbf, n * sizeof(double), cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaMemcpy(inv.data(), dinv, n * sizeof(double), cudaMemcpyDeviceToHost);
    for (int i = 0; i < n; ++i) {
      const double host_rbf =
          kn::rbf_from_sqdist(kn::sqdist_from_gram(in[3 * i], in[3 * i + 1], in[3 * i + 2]), 0.3);
      const double host_inv = kn::inverse_degree(in[3 * i + 2], clamp_eps);
      CHECK_NEAR(rbf[i], host_rbf, 1e-14);
      CHECK(std::isnan(host_inv) ? std::isnan(inv[i]) : std::fabs(inv[i] - host_inv) <= 1e-14);
    }
  }
  cudaFree(din);
  cudaFree(drbf);
  cudaFree(dinv);
  return pdc_test::report("device_kernels");
}
