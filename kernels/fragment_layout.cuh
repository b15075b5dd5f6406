// fragment_layout.cuh — views of tensor-core accumulator fragments, for the mma.sync m16n8k16
// (sm80) and the wgmma m64nNk16 (sm90) paths.
//
// mma.sync: a thread's share of one 16x8 fp32 accumulator tile is 4 values, (row r, cols c, c+1)
// and (row r + 8, cols c, c+1), i.e. CuTe value mode (2 cols, 2 rows).
// wgmma: a thread's share of one 64xN tile is the same pattern repeated over the N / 8 column
// groups, value mode (2 cols, 2 rows, N / 8); its rows are 16 w + lane / 4 (+ 8) of warp w of the
// warpgroup, its columns 2 (lane % 4) (+ 1) + 8 j. In both, a row's values lie in one quad of
// lanes, so row reductions (softmax) never leave the quad.
//
// Row-wise work (softmax, masks, the epilogue) wants those values as a (rows, cols) matrix; P @ V
// wants the fp32 scores of S = Q K^T reused as the A operand of the next MMA, whose registers hold
// exactly the values of two neighbouring 8-column groups. Both are pure re-views of the same
// registers: nothing moves.
#pragma once

#include <cute/tensor.hpp>

namespace flashplus {
namespace kernels {

// ((2 cols, 2 rows), MMA_M, MMA_N)           -> ((2 rows, MMA_M), (2 cols, MMA_N))         mma.sync
// ((2 cols, 2 rows, N / 8), MMA_M, MMA_N)    -> ((2 rows, MMA_M), (2 cols, N / 8, MMA_N))  wgmma
template <typename Layout>
__device__ __forceinline__ constexpr auto rowcol_layout(Layout layout) {
  using namespace cute;
  static_assert(decltype(rank(layout))::value == 3);
  if constexpr (decltype(rank<0>(layout))::value == 2) {
    return make_layout(make_layout(get<0, 1>(layout), get<1>(layout)),
                       make_layout(get<0, 0>(layout), get<2>(layout)));
  } else {
    static_assert(decltype(rank<0>(layout))::value == 3);
    return make_layout(make_layout(get<0, 1>(layout), get<1>(layout)),
                       make_layout(get<0, 0>(layout), get<0, 2>(layout), get<2>(layout)));
  }
}

template <typename Tensor>
__device__ __forceinline__ auto rowcol_view(Tensor&& t) {
  return cute::make_tensor(t.data(), rowcol_layout(t.layout()));
}

// mma.sync: ((2, 2), MMA_M, MMA_N) accumulator -> ((2, 2, 2), MMA_M, MMA_N / 2) A operand of m16n8k16.
template <typename Layout>
__device__ __forceinline__ constexpr auto acc_as_a_operand_layout(Layout layout) {
  using namespace cute;
  static_assert(decltype(size<2>(layout))::value % 2 == 0);
  auto divided = logical_divide(layout, Shape<Underscore, Underscore, _2>{});
  return make_layout(make_layout(get<0>(divided), get<2, 0>(divided)), get<1>(divided),
                     get<2, 1>(divided));
}

// wgmma: ((2, 2, N / 8), MMA_M, 1) accumulator of a 64xN tile -> ((2, 2, 2), MMA_M, N / 16) A
// operand of m64nKk16 with K = N: k-slice s holds column groups 2 s and 2 s + 1.
template <typename Layout>
__device__ __forceinline__ constexpr auto wgmma_acc_as_a_operand_layout(Layout layout) {
  using namespace cute;
  static_assert(decltype(rank<0>(layout))::value == 3 && decltype(size<2>(layout))::value == 1);
  static_assert(decltype(size<0, 2>(layout))::value % 2 == 0);
  auto groups = logical_divide(get<0, 2>(layout), _2{});  // (2, N / 16)
  return make_layout(make_layout(get<0, 0>(layout), get<0, 1>(layout), get<0>(groups)), get<1>(layout),
                     get<1>(groups));
}

}  // namespace kernels
}  // namespace flashplus
