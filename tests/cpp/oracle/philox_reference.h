// philox_reference.h — an independent Philox4x32-10 and the dropout keep-mask built on it.
//
// Written from the published algorithm (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as
// easy as 1, 2, 3", SC 2011) and the stream layout documented in src/common/dropout_philox.h,
// without including that header: if the library's generator or its layout drift, the dropout
// tests see different masks instead of reproducing the same mistake.
#pragma once

#include <array>
#include <cstdint>

namespace oracle {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// One Philox4x32 block. Each round multiplies the two even counter words by fixed odd constants;
// the high halves, xored with the odd words and the round key, become the new even words, the
// low halves the new odd words (with the pairs swapped). The key grows by the Weyl constants
// (golden ratio and sqrt(3) - 1, scaled to 2^32) between rounds.
inline PhiloxCounter philox4x32(PhiloxCounter counter, PhiloxKey key, int rounds = 10) {
  constexpr uint64_t kMultiplierA = 0xD2511F53u;  // multiplies word 0
  constexpr uint64_t kMultiplierB = 0xCD9E8D57u;  // multiplies word 2
  constexpr uint32_t kKeyStepA = 0x9E3779B9u;
  constexpr uint32_t kKeyStepB = 0xBB67AE85u;
  for (int round = 0; round < rounds; ++round) {
    if (round > 0) {
      key[0] += kKeyStepA;
      key[1] += kKeyStepB;
    }
    const uint64_t product_a = kMultiplierA * counter[0];
    const uint64_t product_b = kMultiplierB * counter[2];
    const PhiloxCounter next = {
        static_cast<uint32_t>(product_b >> 32) ^ counter[1] ^ key[0],
        static_cast<uint32_t>(product_b),
        static_cast<uint32_t>(product_a >> 32) ^ counter[3] ^ key[1],
        static_cast<uint32_t>(product_a),
    };
    counter = next;
  }
  return counter;
}

// The keep decision of dropout entry (batch_head, row, col), as the layout documents it:
// key (seed_lo, seed_hi ^ offset_hi), counter (col / 4, row, batch_head, offset_lo), word col % 4,
// kept iff word <= floor((1 - p) * 2^32) (saturated to 0xFFFFFFFF).
class DropoutMaskReference {
 public:
  DropoutMaskReference(uint64_t seed, uint64_t offset, double dropout_p)
      : key_{static_cast<uint32_t>(seed),
             static_cast<uint32_t>(seed >> 32) ^ static_cast<uint32_t>(offset >> 32)},
        offset_low_(static_cast<uint32_t>(offset)),
        threshold_(keep_threshold(dropout_p)) {}

  static uint32_t keep_threshold(double dropout_p) {
    // The float p widened to double, as the host computes it once per call.
    const double keep_fraction = 1.0 - static_cast<double>(static_cast<float>(dropout_p));
    const double scaled = keep_fraction * 4294967296.0;
    if (scaled >= 4294967295.0) return 0xFFFFFFFFu;
    if (scaled <= 0.0) return 0u;
    return static_cast<uint32_t>(scaled);
  }

  uint32_t threshold() const { return threshold_; }

  uint32_t word(uint32_t batch_head, uint32_t row, uint32_t col) const {
    const PhiloxCounter block = philox4x32({col / 4u, row, batch_head, offset_low_}, key_);
    return block[col % 4u];
  }

  bool keep(uint32_t batch_head, uint32_t row, uint32_t col) const {
    return word(batch_head, row, col) <= threshold_;
  }

 private:
  PhiloxKey key_;
  uint32_t offset_low_;
  uint32_t threshold_;
};

}  // namespace oracle
