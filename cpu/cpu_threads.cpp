// cpu_threads.cpp — see cpu_threads.h. Threads are spawned per call: calls are coarse (a whole
// attention), so the ~20 us spawn cost is noise, and no pool outlives the library's users.
#include "cpu_threads.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace flashplus {
namespace cpu {

int num_threads() {
  if (const char* env = std::getenv("FLASHPLUS_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return std::min(n, 1024);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

void parallel_for(int64_t count, const std::function<void(int64_t)>& body) {
  if (count <= 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), count));
  std::atomic<int64_t> next{0};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (;;) {
      const int64_t item = next.fetch_add(1);
      if (item >= count) return;
      try {
        body(item);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        next.store(count);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace cpu
}  // namespace flashplus
