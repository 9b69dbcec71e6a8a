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

// The rectangular form: rows 0 .. kRows - 1 of the problem, offset kOffset, against all kN
// rows as columns; per row (cut term, degree, grad_x row, grad_z row), and per column
// (grad of its x, grad of its z) by a reduction over the rows.
constexpr int kRows = 13, kOffset = 7;
constexpr int kRowOut = 2 + kD + kK, kColOut = kD + kK;

__host__ __device__ void rect_row_values(const double* x, const double* z, double c, int i,
                                         double* out) {
  const double* xi = x + (kOffset + i) * kD;
  const double* zi = z + (kOffset + i) * kK;
  double degree = 0, s_sq = 0, sz[kK] = {0, 0, 0}, wsum = 0, wx[kD] = {0, 0, 0, 0, 0, 0};
  for (int j = 0; j < kN; ++j) {
    const double s = rb::is_self_pair(i, j, kOffset, true)
                         ? 0.0
                         : rb::affinity(rb::sq_dist(xi, x + j * kD, kD), c);
    rb::accumulate_pair(s, z + j * kK, kK, &degree, sz);
    double q = 0;
    for (int t = 0; t < kK; ++t) q += z[j * kK + t] * z[j * kK + t];
    s_sq += s * q;
    const double w = rb::rect_pair_weight(s, rb::sq_dist(zi, z + j * kK, kK), 1.0, 0.1 * i);
    wsum += w;
    for (int t = 0; t < kD; ++t) wx[t] += w * x[j * kD + t];
  }
  out[0] = rb::rect_row_cut_term(degree, s_sq, zi, sz, kK);
  out[1] = degree;
  rb::rect_grad_x_row(xi, wsum, wx, kD, c, out + 2);
  rb::rect_grad_z_row(degree, zi, sz, kK, 1.0, out + 2 + kD);
}

__host__ __device__ void rect_col_values(const double* x, const double* z, double c, int j,
                                         double* out) {
  const double* xj = x + j * kD;
  const double* zj = z + j * kK;
  double col = 0, stz[kK] = {0, 0, 0}, wsum = 0, wx[kD] = {0, 0, 0, 0, 0, 0};
  for (int i = 0; i < kRows; ++i) {
    const double* xi = x + (kOffset + i) * kD;
    const double* zi = z + (kOffset + i) * kK;
    const double s = rb::is_self_pair(i, j, kOffset, true)
                         ? 0.0
                         : rb::affinity(rb::sq_dist(xi, xj, kD), c);
    rb::accumulate_pair(s, zi, kK, &col, stz);
    const double w = rb::rect_pair_weight(s, rb::sq_dist(zi, zj, kK), 1.0, 0.1 * i);
    wsum += w;
    for (int t = 0; t < kD; ++t) wx[t] += w * xi[t];
  }
  rb::rect_grad_x_row(xj, wsum, wx, kD, c, out);
  rb::rect_grad_z_row(col, zj, stz, kK, 1.0, out + kD);
}

__global__ void rect_kernel(const double* x, const double* z, double c, double* rows,
                            double* cols) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < kRows) rect_row_values(x, z, c, t, rows + t * kRowOut);
  if (t < kN) rect_col_values(x, z, c, t, cols + t * kColOut);
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
  std::vector<double> rows(kRows * kRowOut), cols(kN * kColOut);
  double *drows, *dcols;
  cudaMalloc(&drows, rows.size() * sizeof(double));
  cudaMalloc(&dcols, cols.size() * sizeof(double));
  rect_kernel<<<1, 64>>>(dx, dz, c, drows, dcols);
  CHECK(cudaMemcpy(rows.data(), drows, rows.size() * sizeof(double), cudaMemcpyDeviceToHost) ==
        cudaSuccess);
  CHECK(cudaMemcpy(cols.data(), dcols, cols.size() * sizeof(double), cudaMemcpyDeviceToHost) ==
        cudaSuccess);
  double host_row[kRowOut], host_col[kColOut];
  for (int i = 0; i < kRows; ++i) {
    rect_row_values(x.data(), z.data(), c, i, host_row);
    for (int t = 0; t < kRowOut; ++t) CHECK_NEAR(rows[i * kRowOut + t], host_row[t], 1e-12);
  }
  for (int j = 0; j < kN; ++j) {
    rect_col_values(x.data(), z.data(), c, j, host_col);
    for (int t = 0; t < kColOut; ++t) CHECK_NEAR(cols[j * kColOut + t], host_col[t], 1e-12);
  }
  cudaFree(drows);
  cudaFree(dcols);
  cudaFree(dx);
  cudaFree(dz);
  cudaFree(dout);
  return pdc_test::report("device_rbf");
}
