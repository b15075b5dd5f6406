// cpu_threads.h — parallel_for over independent work items (batch x head x tile).
//
// Work items never write the same memory, so no locks are needed and results do not depend on the
// thread count or schedule. Thread count: FLASHPLUS_NUM_THREADS, else the hardware concurrency.
#pragma once

#include <cstdint>
#include <functional>

namespace flashplus {
namespace cpu {

int num_threads();
// Calls body(item) for item in [0, count), spread over num_threads() threads. The first exception
// thrown by any body is rethrown on the calling thread after all threads have joined.
void parallel_for(int64_t count, const std::function<void(int64_t)>& body);

}  // namespace cpu
}  // namespace flashplus
