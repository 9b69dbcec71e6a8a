// Run-time choice of instruction set for the CPU kernels: hot loops are compiled twice,
// for the baseline x86-64 target and, through a PDC_TARGET_AVX2 clone, for AVX2 + FMA;
// have_avx2() picks the clone on CPUs that have it.
#pragma once

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define PDC_AVX2_CLONES 1
#define PDC_TARGET_AVX2 __attribute__((target("avx2,fma")))
// The address of an AVX2 clone, or nullptr where none is compiled.
#define PDC_AVX2_CLONE(fn) (&fn)
#else
#define PDC_AVX2_CLONES 0
#define PDC_AVX2_CLONE(fn) nullptr
#endif

namespace pydeepclust {

inline bool have_avx2() {
#if PDC_AVX2_CLONES
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace pydeepclust
