// combine_oracle.h — naive reference for flashplus_combine (LSE-weighted merge of partials).
#pragma once

#include "flashplus/flashplus.h"
#include "support/ref_array.h"

namespace oracle {

struct CombineReference {
  fptest::RefArray out;  // (b, s, h, d)
  fptest::RefArray lse;  // (b, h, s)
};

// Reads the partials as they are now: call it before the library (out may alias partial 0).
CombineReference reference_combine(const flashplus_combine_args& args);

}  // namespace oracle
