// kvcache_oracle.h — naive reference for flashplus_fwd_kvcache.
//
// Computes what the cache must hold after the call (k_new / v_new appended at cache_seqlens, k_new
// rotated) and the attention of the (rotated) q over cache rows [leftpad, c + s_new). It reads the
// caches as they are before the call, so run it before the library updates them in place.
#pragma once

#include "flashplus/flashplus.h"
#include "oracle/rounding.h"
#include "support/ref_array.h"

namespace oracle {

struct KvcacheReference {
  fptest::RefArray out;      // (b, s_q, h_q, d)
  fptest::RefArray lse;      // (b, h_q, s_q)
  fptest::RefArray k_cache;  // the whole cache tensor after the append, in its logical shape
  fptest::RefArray v_cache;
};

KvcacheReference reference_kvcache(const flashplus_kvcache_args& args, const Rounding& round);

}  // namespace oracle
