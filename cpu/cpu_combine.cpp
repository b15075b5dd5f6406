// cpu_combine.cpp — the combine entry point on CPU: per (b, s, h) row, read every partial row and
// its LSE, then write the merged row. Reading all partials before the write is what makes
// out == out_partials[0] safe.
#include <vector>

#include "backend.h"
#include "cpu_dtype.h"
#include "cpu_merge.h"
#include "cpu_threads.h"

namespace flashplus {
namespace cpu {

Status combine(const CombineProblem& p) {
  const int n = p.num_partials, d = p.head_dim;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.seqlen * p.heads;
  constexpr int64_t kRowsPerItem = 256;
  parallel_for((rows + kRowsPerItem - 1) / kRowsPerItem, [&](int64_t item) {
    std::vector<float> lses(n), weights(n), partial(static_cast<size_t>(n) * d), merged(d);
    const int64_t end = std::min(rows, (item + 1) * kRowsPerItem);
    for (int64_t row = item * kRowsPerItem; row < end; ++row) {
      const int64_t b = row / (static_cast<int64_t>(p.seqlen) * p.heads);
      const int64_t s = (row / p.heads) % p.seqlen;
      const int64_t h = row % p.heads;
      for (int i = 0; i < n; ++i) {
        const RowStatsView& lv = p.lse_partials[i];
        lses[i] = lv.data[b * lv.batch_stride + h * lv.head_stride + s * lv.row_stride];
        const RowsView& ov = p.out_partials[i];
        load_row(element_ptr(ov.data, ov.dtype, b * ov.batch_stride + s * ov.row_stride + h * ov.head_stride), ov.dtype,
                 d, &partial[static_cast<size_t>(i) * d]);
      }
      const float lse = merge_weights(lses.data(), n, weights.data());
      for (int x = 0; x < d; ++x) {
        float v = 0.f;
        for (int i = 0; i < n; ++i)
          if (weights[i] != 0.f) v += weights[i] * partial[static_cast<size_t>(i) * d + x];
        merged[x] = v;
      }
      store_row(merged.data(), d,
                element_ptr(p.out.data, p.out.dtype, b * p.out.batch_stride + s * p.out.row_stride + h * p.out.head_stride),
                p.out.dtype);
      if (p.lse.data) p.lse.data[b * p.lse.batch_stride + h * p.lse.head_stride + s * p.lse.row_stride] = lse;
    }
  });
  return Status::ok();
}

}  // namespace cpu
}  // namespace flashplus
