// Minimal test harness for the C++ unit tests: CHECK records a failure and
// carries on; main() returns report().
#pragma once

#include <cmath>
#include <cstdio>

namespace pdc_test {
inline int& failures() {
  static int count = 0;
  return count;
}
inline int report(const char* suite) {
  if (failures()) std::printf("%s: %d check(s) failed\n", suite, failures());
  else std::printf("%s: all checks passed\n", suite);
  return failures() ? 1 : 0;
}
}  // namespace pdc_test

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
      ++pdc_test::failures();                                                   \
    }                                                                           \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                    \
  do {                                                                           \
    const double va = (a), vb = (b);                                             \
    if (!(std::fabs(va - vb) <= (tol))) {                                        \
      std::printf("%s:%d: CHECK_NEAR failed: %s = %.17g, %s = %.17g (tol %g)\n", \
                  __FILE__, __LINE__, #a, va, #b, vb, double(tol));              \
      ++pdc_test::failures();                                                    \
    }                                                                            \
  } while (0)
