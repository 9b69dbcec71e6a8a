// The rbf.h math compiled by nvcc: per-row degrees, SZ, cut terms and X-gradient
// rows on the device must equal the host ones (same header, same arithmetic up
// to exp's last bits). Exits 77 (CTest: skipped) without a GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "check.h"
#include "pydeepclust/rbf.h"

namespace rb = pydeepclust::rbf;

constexpr int kN = 40, kD = 6, kK = 3;

// One thread per row, pair by pair (the direct form of the tiled kernels): out[i] = (cut term, degree, grad_x[0..d)).
__host__ __device__ void row_values(const double* x, const double* z, double c, int i,
                                    double* out) {
  double degree = 0, sz[kK] = {0, 0, 0}, wsum = 0, wx[kD] = {0, 0, 0, 0, 0, 0};
  for (int j = 0; j < kN; ++j) {
    if (j == i) continue;
    const double s = rb::affinity(rb::sq_dist(x + i * kD, x + j * kD, kD), c);
    rb::accumulate_pair(s, z + j * kK, kK, &degree, sz);
    const double w = rb::pair_weight(s, rb::sq_dist(z + i * kK, z + j * kK, kK), 1.0, 0.1, -0.2);
    wsum += w;
    for (int t = 0; t < kD; ++t) wx[t] += w * x[j * kD + t];
  }
  out[0] = rb::row_cut_term(degree, z + i * kK, sz, kK);
  out[1] = degree;
  rb::grad_x_row(x + i * kD, wsum, wx, kD, c, out + 2);
}

__global__ void rows_kernel(const double* x, const double* z, double c, double* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < kN) row_values(x, z, c, i, out + i * (kD + 2));
}

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("device_rbf: no CUDA device, skipped\n");
    return 77;
  }
  std::vector<double> x(kN * kD), z(kN * kK), out(kN * (kD + 2));
  for (int i = 0; i < kN * kD; ++i) x[i] = std::sin(0.37 * i + 0.1);
  for (int i = 0; i < kN * kK; ++i) z[i] = std::cos(0.91 * i);
  const double c = rb::exponent_scale(1.7);
  double *dx, *dz, *dout;
  cudaMalloc(&dx, x.size() * sizeof(double));
  cudaMalloc(&dz, z.size() * sizeof(double));
  cudaMalloc(&dout, out.size() * sizeof(double));
  cudaMemcpy(dx, x.data(), x.size() * sizeof(double), cudaMemcpyHostToDevice);
  cudaMemcpy(dz, z.data(), z.size() * sizeof(double), cudaMemcpyHostToDevice);
  rows_kernel<<<1, 64>>>(dx, dz, c, dout);
  CHECK(cudaMemcpy(out.data(), dout, out.size() * sizeof(double), cudaMemcpyDeviceToHost) ==
        cudaSuccess);
  double host[kD + 2];
  for (int i = 0; i < kN; ++i) {
    row_values(x.data(), z.data(), c, i, host);
    for (int t = 0; t < kD + 2; ++t) CHECK_NEAR(out[i * (kD + 2) + t], host[t], 1e-12);
  }
  cudaFree(dx);
  cudaFree(dz);
  cudaFree(dout);
  return pdc_test::report("device_rbf");
}
