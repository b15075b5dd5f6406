// fragment_layout_sm80.cuh — views of mma.sync m16n8k16 accumulator fragments.
//
// A thread's share of one 16x8 fp32 accumulator tile is 4 values: (row r, cols c, c+1) and
// (row r + 8, cols c, c+1), i.e. CuTe value mode (2 cols, 2 rows). Row-wise work (softmax, masks)
// wants those as a (rows, cols) matrix; P @ V wants the fp32 scores of S = Q K^T reused as the A
// operand of the next MMA, whose 8 values per thread are exactly two neighbouring n8 accumulator
// tiles. Both are pure re-views of the same registers: nothing moves.
#pragma once

#include <cute/tensor.hpp>

namespace flashplus {
namespace kernels {

// ((2 cols, 2 rows), MMA_M, MMA_N) -> ((2 rows, MMA_M), (2 cols, MMA_N)).
template <typename Layout>
__device__ __forceinline__ constexpr auto rowcol_layout(Layout layout) {
  using namespace cute;
  static_assert(decltype(rank(layout))::value == 3);
  static_assert(decltype(rank<0>(layout))::value == 2);
  return make_layout(make_layout(get<0, 1>(layout), get<1>(layout)),
                     make_layout(get<0, 0>(layout), get<2>(layout)));
}

template <typename Tensor>
__device__ __forceinline__ auto rowcol_view(Tensor&& t) {
  return cute::make_tensor(t.data(), rowcol_layout(t.layout()));
}

// ((2, 2), MMA_M, MMA_N) accumulator -> ((2, 2, 2), MMA_M, MMA_N / 2) A operand of m16n8k16.
template <typename Layout>
__device__ __forceinline__ constexpr auto acc_as_a_operand_layout(Layout layout) {
  using namespace cute;
  static_assert(decltype(size<2>(layout))::value % 2 == 0);
  auto divided = logical_divide(layout, Shape<Underscore, Underscore, _2>{});
  return make_layout(make_layout(get<0>(divided), get<2, 0>(divided)), get<1>(divided),
                     get<2, 1>(divided));
}

}  // namespace kernels
}  // namespace flashplus
