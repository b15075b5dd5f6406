#include "oracle/rotary_reference.h"

#include "support/tensor_access.h"

namespace oracle {

void rotate_row(double* row, const flashplus_tensor& cos, const flashplus_tensor& sin,
                int64_t position, bool interleaved, const Rounding& round) {
  const int64_t half = cos.sizes[1];
  for (int64_t t = 0; t < half; ++t) {
    const int64_t index[2] = {position, t};
    const double c = fptest::load_element(cos, index);
    const double s = fptest::load_element(sin, index);
    const int64_t first = interleaved ? 2 * t : t;
    const int64_t second = interleaved ? 2 * t + 1 : t + half;
    const double x = row[first], y = row[second];
    row[first] = round(x * c - y * s);
    row[second] = round(x * s + y * c);
  }
}

}  // namespace oracle
