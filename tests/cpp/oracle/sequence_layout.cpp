#include "oracle/sequence_layout.h"

#include "support/tensor_access.h"

namespace oracle {

using fptest::load_int;

RowAddress paged_row(const flashplus_tensor& block_table, int64_t page_size, int64_t sequence,
                     int64_t row) {
  const int64_t block = load_int(block_table, sequence, row / page_size);
  return {{block, row % page_size}, 2};
}

std::vector<SequenceRows> locate_sequences(const flashplus_tensor& q, const flashplus_tensor& k,
                                           const flashplus_tensor& cu_seqlens_q,
                                           const flashplus_tensor& cu_seqlens_k,
                                           const flashplus_tensor& seqused_k,
                                           const flashplus_tensor& leftpad_k,
                                           const flashplus_tensor& block_table) {
  const bool varlen = cu_seqlens_q.data != nullptr;
  const bool paged = block_table.data != nullptr;
  const int64_t batch = varlen ? cu_seqlens_q.sizes[0] - 1 : q.sizes[0];
  const int64_t page_size = paged ? k.sizes[1] : 0;

  std::vector<SequenceRows> sequences(batch);
  for (int64_t b = 0; b < batch; ++b) {
    SequenceRows& seq = sequences[b];
    if (varlen) {
      const int64_t begin = load_int(cu_seqlens_q, b), end = load_int(cu_seqlens_q, b + 1);
      for (int64_t t = begin; t < end; ++t) seq.queries.push_back(packed_row(t));
    } else {
      for (int64_t i = 0; i < q.sizes[1]; ++i) seq.queries.push_back(dense_row(b, i));
    }

    // Key rows [first, last) of the sequence, absolute (leftpad rows counted).
    int64_t length;
    if (varlen) length = load_int(cu_seqlens_k, b + 1) - load_int(cu_seqlens_k, b);
    else if (paged) length = block_table.sizes[1] * page_size;
    else length = k.sizes[1];
    const int64_t last = seqused_k.data ? load_int(seqused_k, b) : length;
    const int64_t first = leftpad_k.data ? load_int(leftpad_k, b) : 0;
    for (int64_t row = first; row < last; ++row) {
      if (paged) seq.keys.push_back(paged_row(block_table, page_size, b, row));
      else if (varlen) seq.keys.push_back(packed_row(load_int(cu_seqlens_k, b) + row));
      else seq.keys.push_back(dense_row(b, row));
    }
  }
  return sequences;
}

std::vector<double> gather_rows(const flashplus_tensor& tensor, const std::vector<RowAddress>& rows,
                                int64_t head) {
  const int64_t d = tensor.sizes[tensor.ndim - 1];
  std::vector<double> values(rows.size() * d);
  int64_t index[4];
  for (size_t r = 0; r < rows.size(); ++r) {
    const int lead = rows[r].count;
    for (int i = 0; i < lead; ++i) index[i] = rows[r].lead[i];
    index[lead] = head;
    for (int64_t f = 0; f < d; ++f) {
      index[lead + 1] = f;
      values[r * d + f] = fptest::load_element(tensor, index);
    }
  }
  return values;
}

std::vector<double> gather_rows(const fptest::RefArray& array, const std::vector<RowAddress>& rows,
                                int64_t head) {
  const int64_t d = array.sizes.back();
  std::vector<double> values(rows.size() * d);
  int64_t index[4];
  for (size_t r = 0; r < rows.size(); ++r) {
    const int lead = rows[r].count;
    for (int i = 0; i < lead; ++i) index[i] = rows[r].lead[i];
    index[lead] = head;
    for (int64_t f = 0; f < d; ++f) {
      index[lead + 1] = f;
      values[r * d + f] = array.values[array.flat_index(index)];
    }
  }
  return values;
}

void scatter_rows(fptest::RefArray& dest, const std::vector<RowAddress>& rows, int64_t head,
                  const std::vector<double>& values, bool accumulate) {
  const int64_t d = dest.sizes.back();
  int64_t index[4];
  for (size_t r = 0; r < rows.size(); ++r) {
    const int lead = rows[r].count;
    for (int i = 0; i < lead; ++i) index[i] = rows[r].lead[i];
    index[lead] = head;
    for (int64_t f = 0; f < d; ++f) {
      index[lead + 1] = f;
      double& slot = dest.at(index);
      slot = accumulate ? slot + values[r * d + f] : values[r * d + f];
    }
  }
}

}  // namespace oracle
