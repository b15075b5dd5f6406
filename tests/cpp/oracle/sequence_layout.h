// sequence_layout.h — where each query row and each key of a sequence lives in the ABI tensors.
//
// The layouts (dense, varlen, paged; seqused_k and leftpad_k on top) only decide addresses. They
// are resolved here into explicit per-row addresses, so the attention math never sees a layout.
#pragma once

#include <cstdint>
#include <vector>

#include "flashplus/flashplus.h"
#include "support/ref_array.h"

namespace oracle {

// The leading indices of one row: {b, s} of a dense (b, s, h, d) tensor, {t} of a varlen
// (total, h, d) tensor, or {block, row} of a paged (num_blocks, page_size, h, d) tensor.
struct RowAddress {
  int64_t lead[2] = {0, 0};
  int count = 1;
};

inline RowAddress dense_row(int64_t batch, int64_t row) { return {{batch, row}, 2}; }
inline RowAddress packed_row(int64_t token) { return {{token, 0}, 1}; }
// Row `row` of the sequence whose page list is row `sequence` of block_table.
RowAddress paged_row(const flashplus_tensor& block_table, int64_t page_size, int64_t sequence,
                     int64_t row);

struct SequenceRows {
  std::vector<RowAddress> queries;  // query row i of the sequence
  std::vector<RowAddress> keys;     // key j, counted after leftpad (key 0 is row leftpad)
};

// The sequences of a flashplus_fwd / flashplus_bwd call. Absent optional tensors have data NULL.
std::vector<SequenceRows> locate_sequences(const flashplus_tensor& q, const flashplus_tensor& k,
                                           const flashplus_tensor& cu_seqlens_q,
                                           const flashplus_tensor& cu_seqlens_k,
                                           const flashplus_tensor& seqused_k,
                                           const flashplus_tensor& leftpad_k,
                                           const flashplus_tensor& block_table);

// Rows (count, d) of one head of a (..., h, d) tensor.
std::vector<double> gather_rows(const flashplus_tensor& tensor, const std::vector<RowAddress>& rows,
                                int64_t head);

// The same from a RefArray shaped like the tensor (e.g. a cache after the oracle's append).
std::vector<double> gather_rows(const fptest::RefArray& array, const std::vector<RowAddress>& rows,
                                int64_t head);

// Writes (or adds) rows (count, d) into one head of a RefArray shaped like the ABI tensor.
void scatter_rows(fptest::RefArray& dest, const std::vector<RowAddress>& rows, int64_t head,
                  const std::vector<double>& values, bool accumulate);

}  // namespace oracle
