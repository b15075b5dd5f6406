// rotary_reference.h — rotary position embedding of one row, as the KV-cache header defines it.
//
// rotary_dim = 2 * cos.size(1). Interleaved rotates feature pairs (2t, 2t + 1); the NeoX layout
// rotates (t, t + rotary_dim / 2). Features from rotary_dim on are left unchanged.
#pragma once

#include <cstdint>

#include "flashplus/flashplus.h"
#include "oracle/rounding.h"

namespace oracle {

void rotate_row(double* row, const flashplus_tensor& cos, const flashplus_tensor& sin,
                int64_t position, bool interleaved, const Rounding& round);

}  // namespace oracle
