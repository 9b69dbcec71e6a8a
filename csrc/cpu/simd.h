// Run-time choice of instruction set for the CPU kernels. A hot loop is written once,
// as an always-inline function template `name<T>(const Args<T>&, int64_t begin, int64_t end)`;
// PDC_CLONES(name, Args) compiles it again for AVX2 + FMA and for AVX-512, and
// PDC_PICK_CLONE(name, T) returns the widest version this CPU runs (the baseline x86-64 or
// non-x86 build where no clone is compiled or none is supported).
#pragma once

#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define PDC_X86_CLONES 1
#define PDC_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PDC_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define PDC_CLONES(name, Args)                                                          \
  template <typename T>                                                                 \
  PDC_TARGET_AVX2 void name##_avx2(const Args<T>& a, int64_t begin, int64_t end) {      \
    name<T>(a, begin, end);                                                             \
  }                                                                                     \
  template <typename T>                                                                 \
  PDC_TARGET_AVX512 void name##_avx512(const Args<T>& a, int64_t begin, int64_t end) {  \
    name<T>(a, begin, end);                                                             \
  }
#define PDC_PICK_CLONE(name, T) \
  ::pydeepclust::pick_clone<decltype(&name<T>)>(&name<T>, &name##_avx2<T>, &name##_avx512<T>)
#else
#define PDC_X86_CLONES 0
#define PDC_CLONES(name, Args)
#define PDC_PICK_CLONE(name, T) (&name<T>)
#endif

namespace pydeepclust {

#if PDC_X86_CLONES
inline bool have_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

inline bool have_avx512() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return have_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq");
  }();
  return yes;
}

template <typename Fn>
Fn pick_clone(Fn base, Fn avx2, Fn avx512) {
  return have_avx512() ? avx512 : (have_avx2() ? avx2 : base);
}
#endif

}  // namespace pydeepclust
