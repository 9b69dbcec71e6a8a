// Portability macro for the torch-free math shared by the CPU and CUDA kernels.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PDC_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PDC_HOST_DEVICE inline
#endif

#if defined(__CUDACC__) || defined(__HIPCC__)
#include <math.h>
#define PDC_SQRT(x) sqrt(x)
#else
#include <cmath>
#define PDC_SQRT(x) std::sqrt(x)
#endif
