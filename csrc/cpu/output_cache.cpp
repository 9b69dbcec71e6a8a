// A caching allocator for large CPU outputs.
//
// glibc serves allocations above 32 MiB with a fresh mmap and unmaps them on free, so every
// call that returns such a tensor faults its pages in again, each zeroed by the kernel: a
// new 36 MB tensor costs ~7 ms to write on the 2-core test machine, against 0.7 ms for the
// same write into memory already mapped. A training loop returns outputs of the same size
// every step (the simplex gradient at n = 1e6 is 36 MB), so the buffers the caller has
// freed are kept, up to a byte limit, and handed out again to a request of the same
// rounded size, already mapped. The buffers are 2 MiB aligned and advised as transparent
// huge pages, so a fresh one faults in 2 MiB at a time.
//
// Limit: PYDEEPCLUST_CPU_OUTPUT_CACHE_MB (default 512; 0 turns the cache off), read once.
#include "output_cache.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace pydeepclust {
namespace {

constexpr size_t kHuge = size_t(2) << 20;
constexpr size_t kMinBytes = size_t(4) << 20;  // below, glibc reuses freed memory itself

size_t limit_from_env() {
  const char* v = std::getenv("PYDEEPCLUST_CPU_OUTPUT_CACHE_MB");
  if (v == nullptr || *v == '\0') return size_t(512) << 20;
  char* end = nullptr;
  errno = 0;
  const long long mb = std::strtoll(v, &end, 10);
  TORCH_CHECK(end != v && *end == '\0' && errno != ERANGE && mb >= 0 &&
                  static_cast<unsigned long long>(mb) <= (SIZE_MAX >> 20),
              "PYDEEPCLUST_CPU_OUTPUT_CACHE_MB must be a whole number of MiB >= 0, got '", v,
              "'");
  return size_t(mb) << 20;
}

class OutputCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    TORCH_CHECK_WITH(OutOfMemoryError, bytes <= SIZE_MAX - kHuge,
                     "pydeepclust: cannot allocate ", bytes, " bytes for an op's output");
    // whole huge pages, at least one (a storage resized to 0 still gets a real buffer)
    const size_t size = std::max<size_t>((bytes + kHuge - 1) / kHuge, 1) * kHuge;
    void* p = take(size);
    if (p == nullptr) p = fresh(size);
    return {p, p, &OutputCache::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &OutputCache::release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  size_t release_all() {
    std::vector<void*> drop;
    size_t bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [p, size] : free_) drop.push_back(p), bytes += size;
      free_.clear();
      cached_ = 0;
    }
    for (void* p : drop) std::free(p);
    return bytes;
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  static OutputCache& get() {
    // never destroyed: tensors may be freed after static destructors have run
    static auto* cache = [] {
      auto* c = new OutputCache(limit_from_env());
#if defined(__unix__) || defined(__APPLE__)
      // a fork (DataLoader workers) while another thread holds the lock would leave the
      // child's copy locked for ever: hold it across the fork, release it on both sides
      pthread_atfork([] { get().mutex_.lock(); }, [] { get().mutex_.unlock(); },
                     [] { get().mutex_.unlock(); });
#endif
      return c;
    }();
    return *cache;
  }

 private:
  explicit OutputCache(size_t limit) : limit_(limit) {}

  static void release(void* p) { get().give(p); }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second != size) continue;
      void* p = it->first;
      free_.erase(it);
      cached_ -= size;
      live_[p] = size;
      return p;
    }
    return nullptr;
  }

  void* fresh(size_t size) {
    void* p = nullptr;
    if (posix_memalign(&p, kHuge, size) != 0) {
      release_all();  // the cache may hold what this request needs
      TORCH_CHECK_WITH(OutOfMemoryError, posix_memalign(&p, kHuge, size) == 0,
                       "pydeepclust: could not allocate ", size, " bytes for an op's output");
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, size, MADV_HUGEPAGE);  // a hint; a refusal changes nothing
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    live_[p] = size;
    return p;
  }

  // Keeps the newest buffers within the limit; frees the rest.
  void give(void* p) {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = live_.find(p);
      TORCH_INTERNAL_ASSERT(it != live_.end(), "pydeepclust output cache: unknown buffer");
      const size_t size = it->second;
      live_.erase(it);
      if (size > limit_) {
        std::free(p);  // would evict everything and still not fit
        return;
      }
      free_.emplace_front(p, size);
      cached_ += size;
      while (cached_ > limit_) {
        drop.push_back(free_.back().first);
        cached_ -= free_.back().second;
        free_.pop_back();
      }
    }
    for (void* q : drop) std::free(q);
  }

  const size_t limit_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;   // handed out: buffer -> rounded size
  std::deque<std::pair<void*, size_t>> free_;  // cached, newest first
  size_t cached_ = 0;
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const size_t bytes = size_t(c10::multiply_integers(sizes)) * options.dtype().itemsize();
  if (bytes < kMinBytes) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &OutputCache::get(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   options.dtype().toScalarType(), c10::nullopt);
}

size_t release_output_cache() { return OutputCache::get().release_all(); }

size_t output_cache_bytes() { return OutputCache::get().cached_bytes(); }

}  // namespace pydeepclust
