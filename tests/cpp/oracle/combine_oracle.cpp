#include "oracle/combine_oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "support/tensor_access.h"

namespace oracle {

CombineReference reference_combine(const flashplus_combine_args& a) {
  const flashplus_tensor& first = a.out_partials[0];
  const int64_t batch = first.sizes[0], seqlen = first.sizes[1], heads = first.sizes[2],
                d = first.sizes[3];
  const double infinity = std::numeric_limits<double>::infinity();
  CombineReference ref;
  ref.out = fptest::RefArray({batch, seqlen, heads, d});
  ref.lse = fptest::RefArray({batch, heads, seqlen});

  std::vector<double> partial_lse(a.num_partials);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seqlen; ++s)
      for (int64_t h = 0; h < heads; ++h) {
        double max_lse = -infinity;
        for (int p = 0; p < a.num_partials; ++p) {
          partial_lse[p] = fptest::load_element(a.lse_partials[p], {b, h, s});
          // +inf and -inf both mean "saw no key": such a partial contributes nothing.
          if (std::isfinite(partial_lse[p])) max_lse = std::max(max_lse, partial_lse[p]);
        }
        if (max_lse == -infinity) {
          ref.lse.at({b, h, s}) = infinity;
          continue;  // out stays 0
        }
        double sum = 0.0;
        for (int p = 0; p < a.num_partials; ++p)
          if (std::isfinite(partial_lse[p])) sum += std::exp(partial_lse[p] - max_lse);
        const double lse = max_lse + std::log(sum);
        ref.lse.at({b, h, s}) = lse;
        for (int p = 0; p < a.num_partials; ++p) {
          if (!std::isfinite(partial_lse[p])) continue;
          const double weight = std::exp(partial_lse[p] - lse);
          for (int64_t f = 0; f < d; ++f)
            ref.out.at({b, s, h, f}) += weight * fptest::load_element(a.out_partials[p], {b, s, h, f});
        }
      }
  return ref;
}

}  // namespace oracle
