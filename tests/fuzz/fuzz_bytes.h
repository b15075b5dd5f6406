// fuzz_bytes.h — turns libFuzzer's byte string into decisions.
//
// Every read succeeds: past the end it returns zeros, so any input decodes to some call and the
// fuzzer can grow inputs byte by byte. Small ranges keep shapes small (fast calls, many execs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

class FuzzBytes {
 public:
  FuzzBytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }

  uint32_t u32() {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) value = (value << 8) | byte();
    return value;
  }

  uint64_t u64() { return (static_cast<uint64_t>(u32()) << 32) | u32(); }

  // Uniform-ish in [low, high] (inclusive).
  int64_t range(int64_t low, int64_t high) {
    const uint64_t span = static_cast<uint64_t>(high - low) + 1;
    return low + static_cast<int64_t>((span <= 256 ? byte() : u32()) % span);
  }

  // True with probability about percent / 100.
  bool chance(int percent) { return byte() % 100 < percent; }

  float f32() {
    const uint32_t bits = u32();
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};
