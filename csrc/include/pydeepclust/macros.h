// Portability macro for the torch-free math shared by the CPU and CUDA kernels.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PDC_HOST_DEVICE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Forced on the host as on the device: the CPU kernels call this math from AVX2 clones
// (csrc/cpu/simd.h), and a call GCC chose not to inline would run the baseline-target copy.
#define PDC_HOST_DEVICE inline __attribute__((always_inline))
#else
#define PDC_HOST_DEVICE inline
#endif
#if defined(__GNUC__)
#define PDC_CPU_INLINE inline __attribute__((always_inline))
#else
#define PDC_CPU_INLINE inline
#endif

#if defined(__CUDACC__) || defined(__HIPCC__)
#include <math.h>
#define PDC_SQRT(x) sqrt(x)
#else
#include <cmath>
#define PDC_SQRT(x) std::sqrt(x)
#endif
