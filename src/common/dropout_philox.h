// dropout_philox.h — the one definition of flashplus's dropout keep-mask.
//
// Why one header: the CPU backend and the CUDA kernels must drop exactly the same entries for the
// same (seed, offset), so GPU dropout can be tested bit-exactly against the CPU backend. Both
// include this file; nothing else may generate dropout bits.
//
// Stream layout. Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3")
// with key = (seed_lo, seed_hi ^ offset_hi) and a 128-bit counter
//     c0 = j >> 2        (group of four key columns)
//     c1 = i             (query row within its sequence)
//     c2 = b * h_q + h   (batch entry and query head)
//     c3 = offset_lo
// One call yields four 32-bit words: word (j & 3) decides entry (b, h, i, j). The entry is kept
// iff word <= threshold, threshold = keep_threshold(p) computed once on the host, so no float
// rounding can differ between backends. i and j count within the sequence (after leftpad), so
// dense and varlen layouts of the same data drop the same entries.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FLASHPLUS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FLASHPLUS_HOST_DEVICE inline
#endif

namespace flashplus {

struct PhiloxWords {
  uint32_t w[4];
};

FLASHPLUS_HOST_DEVICE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// Ten rounds of Philox4x32 with the published multipliers and Weyl key increments.
FLASHPLUS_HOST_DEVICE PhiloxWords philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                                uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kMul0, c0, hi0, lo0);
    philox_mulhilo(kMul1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n1 = lo1;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    const uint32_t n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return PhiloxWords{{c0, c1, c2, c3}};
}

// Largest 32-bit word that still keeps an entry: P(word <= t) = 1 - p up to 2^-32.
// Computed on the host once per call and passed to every backend unchanged.
inline uint32_t dropout_keep_threshold(float dropout_p) {
  const double keep = 1.0 - static_cast<double>(dropout_p);
  const double scaled = keep * 4294967296.0;
  if (scaled >= 4294967295.0) return 0xFFFFFFFFu;
  if (scaled <= 0.0) return 0u;
  return static_cast<uint32_t>(scaled);
}

struct DropoutStream {
  uint32_t key0, key1;   // from the seed (and the offset's high word)
  uint32_t offset_lo;
  uint32_t threshold;    // dropout_keep_threshold(p)

  static DropoutStream make(uint64_t seed, uint64_t offset, float dropout_p) {
    DropoutStream s;
    s.key0 = static_cast<uint32_t>(seed);
    s.key1 = static_cast<uint32_t>(seed >> 32) ^ static_cast<uint32_t>(offset >> 32);
    s.offset_lo = static_cast<uint32_t>(offset);
    s.threshold = dropout_keep_threshold(dropout_p);
    return s;
  }

  // The four words for columns (j & ~3) .. (j | 3) of row i of head (b * h_q + h).
  FLASHPLUS_HOST_DEVICE PhiloxWords words(uint32_t batch_head, uint32_t row, uint32_t col) const {
    return philox4x32_10(col >> 2, row, batch_head, offset_lo, key0, key1);
  }

  FLASHPLUS_HOST_DEVICE bool keep(uint32_t batch_head, uint32_t row, uint32_t col) const {
    return words(batch_head, row, col).w[col & 3u] <= threshold;
  }
};

}  // namespace flashplus
