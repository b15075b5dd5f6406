// validate.cpp — see validate.h. One section per entry point, sharing the sequence-layout checks.
#include "validate.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "tensor_checks.h"

namespace flashplus {
namespace {

constexpr int kMaxHeadDim = 256;

std::string str(const std::ostringstream& os) { return os.str(); }

RowsView rows_view(const flashplus_tensor& t) {
  RowsView view;
  view.data = t.data;
  view.dtype = static_cast<flashplus_dtype>(t.dtype);
  if (t.ndim == 4) {  // (b, s, h, d)
    view.batch_stride = t.strides[0];
    view.row_stride = t.strides[1];
    view.head_stride = t.strides[2];
  } else {  // (total, h, d)
    view.batch_stride = 0;
    view.row_stride = t.strides[0];
    view.head_stride = t.strides[1];
  }
  return view;
}

RowStatsView stats_view(const flashplus_tensor& t) {
  RowStatsView view;
  view.data = static_cast<float*>(t.data);
  if (t.ndim == 3) {  // (b, h, s)
    view.batch_stride = t.strides[0];
    view.head_stride = t.strides[1];
    view.row_stride = t.strides[2];
  } else {  // (h, total)
    view.batch_stride = 0;
    view.head_stride = t.strides[0];
    view.row_stride = t.strides[1];
  }
  return view;
}

void check_finite(float value, const char* name) {
  if (!std::isfinite(value)) fail(std::string(name) + " must be finite");
}

// Score modifiers shared by all entry points.
ScoreMods make_mods(float softmax_scale, float softcap, int32_t is_causal, int32_t window_left,
                    int32_t window_right, const flashplus_tensor& alibi, const flashplus_tensor& q,
                    int64_t batch, int64_t h_q) {
  std::ostringstream os;
  check_finite(softmax_scale, "softmax_scale");
  check_finite(softcap, "softcap");
  if (softcap < 0.f) {
    os << "softcap must be >= 0 (0 disables it), got " << softcap;
    fail(str(os));
  }
  if (window_left < -1) {
    os << "window_left must be >= -1 (-1 = unbounded), got " << window_left;
    fail(str(os));
  }
  if (window_right < -1) {
    os << "window_right must be >= -1 (-1 = unbounded), got " << window_right;
    fail(str(os));
  }
  ScoreMods mods;
  mods.softmax_scale = softmax_scale;
  mods.softcap = softcap;
  mods.is_causal = is_causal != 0;
  mods.window_left = window_left;
  mods.window_right = is_causal ? 0 : window_right;
  if (present(alibi)) {
    check_well_formed(alibi, "alibi_slopes");
    check_dtype(alibi, "alibi_slopes", FLASHPLUS_DTYPE_FLOAT32);
    check_same_device(alibi, "alibi_slopes", q, "q");
    if (alibi.ndim == 1) {
      check_size(alibi, "alibi_slopes", 0, h_q, "h_q");
      mods.alibi_batch_stride = 0;
      mods.alibi_head_stride = alibi.strides[0];
    } else if (alibi.ndim == 2) {
      check_size(alibi, "alibi_slopes", 0, batch, "batch");
      check_size(alibi, "alibi_slopes", 1, h_q, "h_q");
      mods.alibi_batch_stride = alibi.strides[0];
      mods.alibi_head_stride = alibi.strides[1];
    } else {
      fail("alibi_slopes must be (h_q) or (b, h_q), got shape " + shape_string(alibi));
    }
    mods.alibi_slopes = static_cast<const float*>(alibi.data);
  }
  return mods;
}

DropoutParams make_dropout(float p, uint64_t seed, uint64_t offset) {
  if (!(p >= 0.f && p < 1.f)) {
    std::ostringstream os;
    os << "dropout_p must be in [0, 1), got " << p;
    fail(str(os));
  }
  DropoutParams d;
  d.p = p;
  d.stream = DropoutStream::make(seed, offset, p);
  return d;
}

void check_head_dims(int64_t d, int64_t h_q, int64_t h_k) {
  std::ostringstream os;
  if (d < 1 || d > kMaxHeadDim) {
    os << "head dim (q.size(-1)) must be in 1.." << kMaxHeadDim << ", got " << d;
    fail(str(os));
  }
  if (h_k < 1 || h_q < 1) {
    os << "h_q (" << h_q << ") and h_k (" << h_k << ") must be >= 1";
    fail(str(os));
  }
  if (h_q % h_k != 0) {
    os << "h_q (" << h_q << ") must be a multiple of h_k (" << h_k << ")";
    fail(str(os));
  }
}

// A float operand (q, k, v, out, dout, ...) on q's device with q's dtype.
void check_operand(const flashplus_tensor& t, const char* name, const flashplus_tensor& q) {
  if (!present(t)) fail(std::string(name) + " is required (data is NULL)");
  check_well_formed(t, name);
  check_float_dtype(t, name);
  check_same_dtype(t, name, q, "q");
  check_same_device(t, name, q, "q");
}

void check_same_shape(const flashplus_tensor& t, const char* name, const flashplus_tensor& ref,
                      const char* ref_name) {
  bool same = t.ndim == ref.ndim;
  for (int i = 0; same && i < t.ndim; ++i) same = t.sizes[i] == ref.sizes[i];
  if (!same) {
    fail(std::string(name) + " must have the shape of " + ref_name + " " + shape_string(ref) +
         ", got " + shape_string(t));
  }
}

// A written operand: q's dtype and device, the shape of `ref`, no broadcast strides.
void check_output(const flashplus_tensor& t, const char* name, const flashplus_tensor& q,
                  const flashplus_tensor& ref, const char* ref_name) {
  check_operand(t, name, q);
  check_same_shape(t, name, ref, ref_name);
  check_writable(t, name);
}

// fp32 (b, h, s) dense or (h, total) varlen.
void check_stats(const flashplus_tensor& t, const char* name, const flashplus_tensor& q,
                 bool varlen, int64_t batch, int64_t h_q, int64_t rows) {
  if (!present(t)) fail(std::string(name) + " is required (data is NULL)");
  check_well_formed(t, name);
  check_dtype(t, name, FLASHPLUS_DTYPE_FLOAT32);
  check_same_device(t, name, q, "q");
  if (varlen) {
    check_ndim(t, name, 2, "(h_q, total_q) for varlen");
    check_size(t, name, 0, h_q, "h_q");
    check_size(t, name, 1, rows, "total_q");
  } else {
    check_ndim(t, name, 3, "(b, h_q, s_q)");
    check_size(t, name, 0, batch, "batch");
    check_size(t, name, 1, h_q, "h_q");
    check_size(t, name, 2, rows, "s_q");
  }
}

const int32_t* index_data(const flashplus_tensor& t) {
  return static_cast<const int32_t*>(t.data);
}

// cu_seqlens: [0] == 0, non-decreasing, [b] == total (or <= total when only lengths matter).
void check_cu_seqlens_contents(const flashplus_tensor& t, const char* name, int64_t batch,
                               int64_t total, bool total_must_match, const char* total_name) {
  const int32_t* cu = index_data(t);
  std::ostringstream os;
  if (cu[0] != 0) {
    os << name << " must be int32, non-decreasing, " << name << "[0] == 0; got " << name
       << "[0] = " << cu[0];
    fail(str(os));
  }
  for (int64_t i = 0; i < batch; ++i) {
    if (cu[i + 1] < cu[i]) {
      os << name << " must be int32, non-decreasing, " << name << "[0] == 0; got " << name << "["
         << i + 1 << "] = " << cu[i + 1] << " < " << name << "[" << i << "] = " << cu[i];
      fail(str(os));
    }
  }
  if (total_must_match ? cu[batch] != total : cu[batch] > total) {
    os << name << "[" << batch << "] (" << cu[batch] << ") must "
       << (total_must_match ? "equal " : "not exceed ") << total_name << " (" << total << ")";
    fail(str(os));
  }
}

// Sequence layout of q and k/v: dense / varlen / paged, seqused_k, leftpad_k, max_seqlen.
struct LayoutInputs {
  const flashplus_tensor* q;             // (b, s, h, d) or (total, h, d)
  const flashplus_tensor* k;             // dense, varlen or paged
  const char* k_name;                    // "k" or "k_cache"
  const flashplus_tensor* cu_seqlens_q;  // may be absent
  const flashplus_tensor* cu_seqlens_k;
  const flashplus_tensor* seqused_k;     // "seqused_k" or "cache_seqlens"
  const char* seqused_name;
  int32_t seqused_extra;                 // KV-cache: s_new appended after cache_seqlens
  const flashplus_tensor* leftpad_k;
  const char* leftpad_name;
  const flashplus_tensor* block_table;
  const flashplus_tensor* cache_batch_idx;  // KV-cache only
  int64_t batch;                            // -1: take from q
  int32_t max_seqlen_q, max_seqlen_k;       // varlen only
};

SeqLayout make_layout(const LayoutInputs& in, bool read_contents, int64_t& h_k_out) {
  const flashplus_tensor& q = *in.q;
  const flashplus_tensor& k = *in.k;
  const bool varlen = present(*in.cu_seqlens_q);
  const bool paged = in.block_table && present(*in.block_table);
  std::ostringstream os;
  SeqLayout seqs;

  if (varlen) {
    check_ndim(q, "q", 3, "(total_q, h_q, d) when cu_seqlens_q is given");
    if (!present(*in.cu_seqlens_k)) fail("cu_seqlens_k is required when cu_seqlens_q is given");
  } else {
    check_ndim(q, "q", 4, "(b, s_q, h_q, d)");
    if (present(*in.cu_seqlens_k)) fail("cu_seqlens_k is given without cu_seqlens_q");
  }
  int64_t batch = varlen ? in.cu_seqlens_q->sizes[0] - 1 : q.sizes[0];
  if (varlen) {
    check_well_formed(*in.cu_seqlens_q, "cu_seqlens_q");
    check_same_device(*in.cu_seqlens_q, "cu_seqlens_q", q, "q");
    if (in.cu_seqlens_q->ndim != 1 || in.cu_seqlens_q->sizes[0] < 1)
      fail("cu_seqlens_q must be a non-empty int32 vector (b + 1)");
    batch = in.cu_seqlens_q->sizes[0] - 1;
    check_index_vector(*in.cu_seqlens_q, "cu_seqlens_q", batch + 1);
    check_well_formed(*in.cu_seqlens_k, "cu_seqlens_k");
    check_same_device(*in.cu_seqlens_k, "cu_seqlens_k", q, "q");
    check_index_vector(*in.cu_seqlens_k, "cu_seqlens_k", batch + 1);
  }
  seqs.batch = static_cast<int32_t>(batch);
  if (batch > INT32_MAX / 2) fail("batch is too large");

  int64_t capacity = 0;  // logical key rows available to one sequence
  if (paged) {
    const flashplus_tensor& bt = *in.block_table;
    check_well_formed(bt, "block_table");
    check_dtype(bt, "block_table", FLASHPLUS_DTYPE_INT32);
    check_same_device(bt, "block_table", q, "q");
    check_ndim(bt, "block_table", 2, "(b, max_blocks_per_seq)");
    check_size(bt, "block_table", 0, batch, "batch");
    check_ndim(k, in.k_name, 4, "paged (num_blocks, page_size, h_k, d) when block_table is given");
    if (k.sizes[1] < 1) fail(std::string("page_size (") + in.k_name + ".size(1)) must be >= 1 for a paged K/V");
    if (in.cache_batch_idx && present(*in.cache_batch_idx))
      fail("cache_batch_idx cannot be combined with block_table (a paged cache is indexed by it)");
    seqs.block_table = index_data(bt);
    seqs.block_table_batch_stride = bt.strides[0];
    seqs.page_size = static_cast<int32_t>(k.sizes[1]);
    seqs.max_blocks_per_seq = static_cast<int32_t>(bt.sizes[1]);
    capacity = bt.sizes[1] * k.sizes[1];
  } else if (varlen) {
    check_ndim(k, in.k_name, 3, "(total_k, h_k, d) when cu_seqlens_k is given");
    capacity = k.sizes[0];
  } else {
    check_ndim(k, in.k_name, 4, "(b, s_k, h_k, d)");
    if (!(in.cache_batch_idx && present(*in.cache_batch_idx))) {
      if (k.sizes[0] < batch) {
        os << in.k_name << ".size(0) (" << k.sizes[0] << ") must be >= batch (" << batch << ")";
        fail(str(os));
      }
    }
    capacity = k.sizes[1];
  }
  if (capacity > INT32_MAX) fail("the key sequence capacity exceeds 2^31 - 1 rows");
  h_k_out = k.sizes[k.ndim - 2];
  seqs.total_q = q.sizes[0];
  seqs.kv_entries = k.sizes[0];
  seqs.kv_capacity = capacity;

  if (varlen) {
    if (in.max_seqlen_q < 0 || in.max_seqlen_k < 0) {
      os << "max_seqlen_q (" << in.max_seqlen_q << ") and max_seqlen_k (" << in.max_seqlen_k
         << ") must be >= 0";
      fail(str(os));
    }
    seqs.max_seqlen_q = in.max_seqlen_q;
    seqs.max_seqlen_k = in.max_seqlen_k;
    seqs.cu_seqlens_q = index_data(*in.cu_seqlens_q);
    seqs.cu_seqlens_k = index_data(*in.cu_seqlens_k);
  } else {
    if (q.sizes[1] > INT32_MAX) fail("s_q exceeds 2^31 - 1");
    seqs.max_seqlen_q = static_cast<int32_t>(q.sizes[1]);
    seqs.max_seqlen_k = static_cast<int32_t>(capacity);
  }

  if (present(*in.seqused_k)) {
    check_well_formed(*in.seqused_k, in.seqused_name);
    check_same_device(*in.seqused_k, in.seqused_name, q, "q");
    check_index_vector(*in.seqused_k, in.seqused_name, batch);
    seqs.seqused_k = index_data(*in.seqused_k);
  }
  seqs.seqused_k_extra = in.seqused_extra;
  if (in.leftpad_k && present(*in.leftpad_k)) {
    check_well_formed(*in.leftpad_k, in.leftpad_name);
    check_same_device(*in.leftpad_k, in.leftpad_name, q, "q");
    check_index_vector(*in.leftpad_k, in.leftpad_name, batch);
    seqs.leftpad_k = index_data(*in.leftpad_k);
  }
  if (in.cache_batch_idx && present(*in.cache_batch_idx)) {
    check_well_formed(*in.cache_batch_idx, "cache_batch_idx");
    check_same_device(*in.cache_batch_idx, "cache_batch_idx", q, "q");
    check_index_vector(*in.cache_batch_idx, "cache_batch_idx", batch);
    seqs.cache_batch_idx = index_data(*in.cache_batch_idx);
  }

  if (!read_contents) return seqs;

  // Contents: every index the backends will follow is proven in range here.
  if (varlen) {
    check_cu_seqlens_contents(*in.cu_seqlens_q, "cu_seqlens_q", batch, q.sizes[0], true, "total_q");
    check_cu_seqlens_contents(*in.cu_seqlens_k, "cu_seqlens_k", batch, paged ? INT32_MAX : k.sizes[0],
                              !paged, "total_k");
  }
  int32_t longest_q = 0, longest_k = 0;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t sq = varlen ? seqs.cu_seqlens_q[i + 1] - seqs.cu_seqlens_q[i] : q.sizes[1];
    int64_t length = capacity;
    if (varlen) length = seqs.cu_seqlens_k[i + 1] - seqs.cu_seqlens_k[i];
    if (varlen && paged && length > capacity) {
      os << "sequence " << i << " has " << length << " keys (cu_seqlens_k) but block_table holds "
         << capacity << " rows (max_blocks_per_seq * page_size)";
      fail(str(os));
    }
    int64_t end = length;
    if (seqs.seqused_k) {
      end = static_cast<int64_t>(seqs.seqused_k[i]) + in.seqused_extra;
      if (seqs.seqused_k[i] < 0 || end > length) {
        os << in.seqused_name << "[" << i << "] = " << seqs.seqused_k[i];
        if (in.seqused_extra) os << " plus " << in.seqused_extra << " new keys";
        os << " must be in [0, " << length << "] (the rows available to sequence " << i << ")";
        fail(str(os));
      }
    }
    const int64_t start = seqs.leftpad_k ? seqs.leftpad_k[i] : 0;
    if (start < 0 || start > end) {
      os << in.leftpad_name << "[" << i << "] = " << start << " must be in [0, " << end
         << "] (the end of sequence " << i << "'s keys)";
      fail(str(os));
    }
    if (seqs.cache_batch_idx) {
      const int32_t entry = seqs.cache_batch_idx[i];
      if (entry < 0 || entry >= k.sizes[0]) {
        os << "cache_batch_idx entry " << i << " = " << entry << " must be in [0, " << k.sizes[0]
           << ") (k_cache.size(0))";
        fail(str(os));
      }
    }
    if (paged) {
      const int64_t used_blocks = (end + seqs.page_size - 1) / seqs.page_size;
      const int64_t num_blocks = k.sizes[0];
      for (int64_t blk = 0; blk < used_blocks; ++blk) {
        const int32_t page = seqs.block_table[i * seqs.block_table_batch_stride + blk];
        if (page < 0 || page >= num_blocks) {
          os << "block_table entry " << page << " (row " << i << ", column " << blk << ") must be in [0, "
             << num_blocks << ") (num_blocks = " << in.k_name << ".size(0))";
          fail(str(os));
        }
      }
    }
    longest_q = std::max<int32_t>(longest_q, static_cast<int32_t>(sq));
    longest_k = std::max<int32_t>(longest_k, static_cast<int32_t>(end - start));
  }
  if (varlen) {
    if (longest_q > in.max_seqlen_q) {
      os << "max_seqlen_q (" << in.max_seqlen_q << ") must be >= the longest query sequence ("
         << longest_q << ")";
      fail(str(os));
    }
    if (longest_k > in.max_seqlen_k) {
      os << "max_seqlen_k (" << in.max_seqlen_k << ") must be >= the longest key sequence ("
         << longest_k << ")";
      fail(str(os));
    }
  }
  return seqs;
}

// out may be exactly out_partials[0] (element-wise read-before-write); any other overlap would let
// one row's write clobber a partial another row still has to read.
bool same_view(const flashplus_tensor& x, const flashplus_tensor& y) {
  if (x.data != y.data || x.ndim != y.ndim || x.dtype != y.dtype) return false;
  for (int i = 0; i < x.ndim; ++i)
    if (x.sizes[i] != y.sizes[i] || x.strides[i] != y.strides[i]) return false;
  return true;
}

bool byte_ranges_overlap(const flashplus_tensor& x, const flashplus_tensor& y) {
  int64_t xlo, xhi, ylo, yhi;
  element_extent(x, xlo, xhi);
  element_extent(y, ylo, yhi);
  const char* xb = static_cast<const char*>(x.data);
  const char* yb = static_cast<const char*>(y.data);
  const char* x0 = xb + xlo * static_cast<int64_t>(dtype_size(x.dtype));
  const char* x1 = xb + (xhi + 1) * static_cast<int64_t>(dtype_size(x.dtype));
  const char* y0 = yb + ylo * static_cast<int64_t>(dtype_size(y.dtype));
  const char* y1 = yb + (yhi + 1) * static_cast<int64_t>(dtype_size(y.dtype));
  return x0 < y1 && y0 < x1;
}

void check_combine_aliasing(const flashplus_combine_args& a) {
  for (int32_t i = 0; i < a.num_partials; ++i) {
    if (byte_ranges_overlap(a.out, a.out_partials[i]) && !(i == 0 && same_view(a.out, a.out_partials[i])))
      fail("out overlaps out_partials[" + std::to_string(i) +
           "]; only out == out_partials[0] (same data and strides) may alias");
    if (present(a.lse) && byte_ranges_overlap(a.lse, a.lse_partials[i]) &&
        !(i == 0 && same_view(a.lse, a.lse_partials[i])))
      fail("lse overlaps lse_partials[" + std::to_string(i) +
           "]; only lse == lse_partials[0] (same data and strides) may alias");
  }
}

void check_kv_operand_shape(const flashplus_tensor& t, const char* name, const flashplus_tensor& k) {
  check_same_shape(t, name, k, "k");
}

// Fields every attention problem shares (forward, backward, KV-cache), from the fields every
// args struct shares.
template <typename Problem, typename Args>
void fill_attention_common(Problem& p, const Args& a, int64_t batch, int64_t h_q, int64_t h_k, int64_t d) {
  p.device = {a.q.device_type, a.q.device_index};
  p.h_q = static_cast<int32_t>(h_q);
  p.h_k = static_cast<int32_t>(h_k);
  p.head_dim = static_cast<int32_t>(d);
  p.mods = make_mods(a.softmax_scale, a.softcap, a.is_causal, a.window_left, a.window_right,
                     a.alibi_slopes, a.q, batch, h_q);
  p.stream = a.stream;
}

// fill_attention_common plus dropout, for the args structs that carry it (forward, backward).
template <typename Problem, typename Args>
void fill_attention_with_dropout(Problem& p, const Args& a, int64_t batch, int64_t h_q, int64_t h_k, int64_t d) {
  fill_attention_common(p, a, batch, h_q, h_k, d);
  p.dropout = make_dropout(a.dropout_p, a.philox_seed, a.philox_offset);
}

}  // namespace

template <typename Args>
Args copy_args(const Args* args, const char* struct_name) {
  if (args == nullptr) fail(std::string("args must not be NULL (") + struct_name + ")");
  uint32_t size = 0;
  std::memcpy(&size, args, sizeof(size));
  if (size != sizeof(Args)) {
    std::ostringstream os;
    os << struct_name << ".struct_size must be sizeof(" << struct_name << ") = " << sizeof(Args)
       << " for ABI version " << FLASHPLUS_ABI_VERSION << ", got " << size
       << " (call " << struct_name << "_init, or rebuild against this flashplus.h)";
    fail(str(os));
  }
  Args local;
  std::memcpy(&local, args, sizeof(Args));
  return local;
}

template flashplus_fwd_args copy_args(const flashplus_fwd_args*, const char*);
template flashplus_bwd_args copy_args(const flashplus_bwd_args*, const char*);
template flashplus_kvcache_args copy_args(const flashplus_kvcache_args*, const char*);
template flashplus_combine_args copy_args(const flashplus_combine_args*, const char*);

// ------------------------------------------------------------------------------------------------
FwdProblem validate_fwd(const flashplus_fwd_args& a, bool read_contents) {
  std::ostringstream os;
  if (!present(a.q)) fail("q is required (data is NULL)");
  check_well_formed(a.q, "q");
  check_float_dtype(a.q, "q");
  check_operand(a.k, "k", a.q);
  check_operand(a.v, "v", a.q);
  check_kv_operand_shape(a.v, "v", a.k);

  LayoutInputs in{&a.q, &a.k, "k", &a.cu_seqlens_q, &a.cu_seqlens_k, &a.seqused_k, "seqused_k", 0,
                  &a.leftpad_k, "leftpad_k", &a.block_table, nullptr, -1, a.max_seqlen_q,
                  a.max_seqlen_k};
  // Shape checks first (read_contents = false), contents after all shapes are known good.
  int64_t h_k = 0;
  make_layout(in, false, h_k);
  const bool varlen = present(a.cu_seqlens_q);
  const int64_t h_q = a.q.sizes[a.q.ndim - 2];
  const int64_t d = a.q.sizes[a.q.ndim - 1];
  check_head_dims(d, h_q, h_k);
  check_size(a.k, "k", a.k.ndim - 1, d, "the head dim of q");
  const int64_t batch = varlen ? a.cu_seqlens_q.sizes[0] - 1 : a.q.sizes[0];
  const int64_t q_rows = varlen ? a.q.sizes[0] : a.q.sizes[1];
  if (!varlen && !present(a.block_table)) check_size(a.k, "k", 0, batch, "q.size(0) (batch)");

  check_output(a.out, "out", a.q, a.q, "q");
  check_stats(a.softmax_lse, "softmax_lse", a.q, varlen, batch, h_q, q_rows);
  check_writable(a.softmax_lse, "softmax_lse");

  FwdProblem p;
  fill_attention_with_dropout(p, a, batch, h_q, h_k, d);
  if (a.num_splits < 0) {
    os << "num_splits must be >= 0 (0 = heuristic), got " << a.num_splits;
    fail(str(os));
  }
  p.num_splits = a.num_splits;
  p.seqs = make_layout(in, read_contents, h_k);

  if (present(a.s_dmask)) {
    check_well_formed(a.s_dmask, "s_dmask");
    check_same_device(a.s_dmask, "s_dmask", a.q, "q");
    if (a.s_dmask.dtype != a.q.dtype && a.s_dmask.dtype != FLASHPLUS_DTYPE_FLOAT32)
      fail(std::string("s_dmask must be float32 or q's dtype (") + dtype_name(a.q.dtype) + "), got " +
           dtype_name(a.s_dmask.dtype));
    check_ndim(a.s_dmask, "s_dmask", 4, "(b, h_q, max_s_q, max_s_k)");
    check_size(a.s_dmask, "s_dmask", 0, batch, "batch");
    check_size(a.s_dmask, "s_dmask", 1, h_q, "h_q");
    check_size(a.s_dmask, "s_dmask", 2, p.seqs.max_seqlen_q, "max_s_q");
    check_size(a.s_dmask, "s_dmask", 3, p.seqs.max_seqlen_k, "max_s_k");
    check_writable(a.s_dmask, "s_dmask");
    p.s_dmask = a.s_dmask.data;
    p.s_dmask_dtype = static_cast<flashplus_dtype>(a.s_dmask.dtype);
    for (int i = 0; i < 4; ++i) p.s_dmask_strides[i] = a.s_dmask.strides[i];
  }
  p.q = rows_view(a.q);
  p.k = rows_view(a.k);
  p.v = rows_view(a.v);
  p.out = rows_view(a.out);
  p.lse = stats_view(a.softmax_lse);
  return p;
}

// ------------------------------------------------------------------------------------------------
BwdProblem validate_bwd(const flashplus_bwd_args& a, bool read_contents) {
  if (!present(a.q)) fail("q is required (data is NULL)");
  check_well_formed(a.q, "q");
  check_float_dtype(a.q, "q");
  check_operand(a.k, "k", a.q);
  check_operand(a.v, "v", a.q);
  check_kv_operand_shape(a.v, "v", a.k);
  const flashplus_tensor absent{};
  LayoutInputs in{&a.q, &a.k, "k", &a.cu_seqlens_q, &a.cu_seqlens_k, &absent, "seqused_k", 0, nullptr,
                  "leftpad_k", nullptr, nullptr, -1, a.max_seqlen_q, a.max_seqlen_k};
  int64_t h_k = 0;
  make_layout(in, false, h_k);
  const bool varlen = present(a.cu_seqlens_q);
  const int64_t h_q = a.q.sizes[a.q.ndim - 2];
  const int64_t d = a.q.sizes[a.q.ndim - 1];
  check_head_dims(d, h_q, h_k);
  check_size(a.k, "k", a.k.ndim - 1, d, "the head dim of q");
  const int64_t batch = varlen ? a.cu_seqlens_q.sizes[0] - 1 : a.q.sizes[0];
  const int64_t q_rows = varlen ? a.q.sizes[0] : a.q.sizes[1];
  if (!varlen) check_size(a.k, "k", 0, batch, "q.size(0) (batch)");

  check_operand(a.dout, "dout", a.q);
  check_same_shape(a.dout, "dout", a.q, "q");
  check_operand(a.out, "out", a.q);
  check_same_shape(a.out, "out", a.q, "q");
  check_output(a.dq, "dq", a.q, a.q, "q");
  check_output(a.dk, "dk", a.q, a.k, "k");
  check_output(a.dv, "dv", a.q, a.v, "v");
  check_stats(a.softmax_lse, "softmax_lse", a.q, varlen, batch, h_q, q_rows);
  check_stats(a.softmax_d, "softmax_d", a.q, varlen, batch, h_q, q_rows);
  check_writable(a.softmax_d, "softmax_d");

  BwdProblem p;
  fill_attention_with_dropout(p, a, batch, h_q, h_k, d);
  p.deterministic = a.deterministic != 0;
  p.seqs = make_layout(in, read_contents, h_k);
  p.dout = rows_view(a.dout);
  p.q = rows_view(a.q);
  p.k = rows_view(a.k);
  p.v = rows_view(a.v);
  p.out = rows_view(a.out);
  p.dq = rows_view(a.dq);
  p.dk = rows_view(a.dk);
  p.dv = rows_view(a.dv);
  p.lse = stats_view(a.softmax_lse);
  p.softmax_d = stats_view(a.softmax_d);
  return p;
}

// ------------------------------------------------------------------------------------------------
KvCachePlan validate_kvcache(const flashplus_kvcache_args& a, bool read_contents) {
  std::ostringstream os;
  if (!present(a.q)) fail("q is required (data is NULL)");
  check_well_formed(a.q, "q");
  check_float_dtype(a.q, "q");
  check_ndim(a.q, "q", 4, "(b, s_q, h_q, d)");
  check_operand(a.k_cache, "k_cache", a.q);
  check_operand(a.v_cache, "v_cache", a.q);
  check_same_shape(a.v_cache, "v_cache", a.k_cache, "k_cache");
  check_writable(a.k_cache, "k_cache");
  check_writable(a.v_cache, "v_cache");
  const int64_t batch = a.q.sizes[0];
  const int64_t s_q = a.q.sizes[1];
  const int64_t h_q = a.q.sizes[2];
  const int64_t d = a.q.sizes[3];
  check_ndim(a.k_cache, "k_cache", 4, "(b_cache, s_cache, h_k, d) or paged (num_blocks, page_size, h_k, d)");
  const int64_t h_k = a.k_cache.sizes[2];
  check_head_dims(d, h_q, h_k);
  check_size(a.k_cache, "k_cache", 3, d, "the head dim of q");

  int64_t s_new = 0;
  if (present(a.k_new) != present(a.v_new)) fail("k_new and v_new (the new keys and values) must be given together");
  if (present(a.k_new)) {
    check_operand(a.k_new, "k_new", a.q);
    check_operand(a.v_new, "v_new", a.q);
    check_ndim(a.k_new, "k_new", 4, "(b, s_new, h_k, d)");
    check_size(a.k_new, "k_new", 0, batch, "batch");
    check_size(a.k_new, "k_new", 2, h_k, "h_k");
    check_size(a.k_new, "k_new", 3, d, "the head dim of q");
    check_same_shape(a.v_new, "v_new", a.k_new, "k_new");
    if (!present(a.cache_seqlens)) fail("cache_seqlens is required when k_new and v_new are appended");
    s_new = a.k_new.sizes[1];
    if (s_new > INT32_MAX / 2) fail("k.size(1) (s_new) is too large");
  }
  check_output(a.out, "out", a.q, a.q, "q");
  if (present(a.softmax_lse)) {
    check_stats(a.softmax_lse, "softmax_lse", a.q, false, batch, h_q, s_q);
    check_writable(a.softmax_lse, "softmax_lse");
  }
  if (a.num_splits < 0) {
    os << "num_splits must be >= 0 (0 = heuristic), got " << a.num_splits;
    fail(str(os));
  }

  const flashplus_tensor absent{};
  LayoutInputs in{&a.q, &a.k_cache, "k_cache", &absent, &absent, &a.cache_seqlens, "cache_seqlens",
                  static_cast<int32_t>(s_new), &a.cache_leftpad, "cache_leftpad", &a.block_table,
                  &a.cache_batch_idx, batch, 0, 0};
  int64_t h_k_layout = 0;
  make_layout(in, false, h_k_layout);

  KvCachePlan plan;
  FwdProblem& f = plan.attention;
  fill_attention_common(f, a, batch, h_q, h_k, d);
  f.num_splits = a.num_splits;
  f.q = rows_view(a.q);
  f.k = rows_view(a.k_cache);
  f.v = rows_view(a.v_cache);
  f.out = rows_view(a.out);
  if (present(a.softmax_lse)) f.lse = stats_view(a.softmax_lse);

  KvAppendProblem& ap = plan.append;
  ap.device = f.device;
  ap.batch = static_cast<int32_t>(batch);
  ap.s_q = static_cast<int32_t>(s_q);
  ap.s_new = static_cast<int32_t>(s_new);
  ap.h_q = f.h_q;
  ap.h_k = f.h_k;
  ap.head_dim = f.head_dim;
  ap.q = f.q;
  ap.k_cache = f.k;
  ap.v_cache = f.v;
  ap.stream = a.stream;
  if (present(a.k_new)) {
    ap.k_new = rows_view(a.k_new);
    ap.v_new = rows_view(a.v_new);
  }

  if (present(a.rotary_cos) != present(a.rotary_sin))
    fail("rotary_cos and rotary_sin must be given together");
  if (present(a.rotary_cos)) {
    check_well_formed(a.rotary_cos, "rotary_cos");
    check_well_formed(a.rotary_sin, "rotary_sin");
    check_same_device(a.rotary_cos, "rotary_cos", a.q, "q");
    check_same_device(a.rotary_sin, "rotary_sin", a.q, "q");
    check_same_dtype(a.rotary_cos, "rotary_cos", a.q, "q");
    check_same_dtype(a.rotary_sin, "rotary_sin", a.q, "q");
    check_ndim(a.rotary_cos, "rotary_cos", 2, "(s_ro, rotary_dim / 2)");
    check_same_shape(a.rotary_sin, "rotary_sin", a.rotary_cos, "rotary_cos");
    if (a.rotary_cos.strides[0] != a.rotary_sin.strides[0])
      fail("rotary_sin must have the row stride of rotary_cos");
    const int64_t rotary_dim = 2 * a.rotary_cos.sizes[1];
    if (rotary_dim < 2 || rotary_dim > d) {
      os << "rotary_dim (2 * rotary_cos.size(1) = " << rotary_dim << ") must be in [2, head dim "
         << d << "]";
      fail(str(os));
    }
    if (!present(a.cache_seqlens)) fail("cache_seqlens is required with rotary_cos/rotary_sin");
    ap.rotary_cos = a.rotary_cos.data;
    ap.rotary_sin = a.rotary_sin.data;
    ap.rotary_row_stride = a.rotary_cos.strides[0];
    ap.rotary_dim = static_cast<int32_t>(rotary_dim);
    ap.rotary_seqlen = static_cast<int32_t>(std::min<int64_t>(a.rotary_cos.sizes[0], INT32_MAX));
    ap.rotary_interleaved = a.rotary_interleaved != 0;
    const bool local = f.mods.window_left >= 0 || f.mods.window_right >= 0;
    ap.rotary_q_all_rows_at_cache_end = !(a.is_causal || local);
    plan.needs_q_workspace = true;
    plan.q_workspace_elements = static_cast<size_t>(batch * s_q * h_q * d);
  }

  SeqLayout seqs = make_layout(in, read_contents, h_k_layout);
  f.seqs = seqs;
  ap.seqs = seqs;
  ap.seqs.seqused_k_extra = 0;  // the append step sees cache_seqlens before the append

  if (read_contents) {
    // Rotary positions must exist in the table; appended rows must not collide between batch
    // entries that share a cache entry.
    if (ap.rotary_dim > 0) {
      const int64_t q_rows = ap.rotary_q_all_rows_at_cache_end ? 1 : s_q;
      const int64_t rows = std::max<int64_t>(q_rows, s_new);
      for (int64_t i = 0; i < batch; ++i) {
        const int64_t last = static_cast<int64_t>(seqs.seqused_k[i]) + rows;
        if (last > ap.rotary_seqlen) {
          os << "rotary_cos has " << ap.rotary_seqlen << " rows but sequence " << i
             << " needs positions up to " << last - 1 << " (cache_seqlens + rows)";
          fail(str(os));
        }
      }
    }
    if (s_new > 0 && seqs.cache_batch_idx) {
      std::vector<char> seen(static_cast<size_t>(a.k_cache.sizes[0]), 0);
      for (int64_t i = 0; i < batch; ++i) {
        const int32_t entry = seqs.cache_batch_idx[i];
        if (seen[entry]) {
          os << "cache_batch_idx entry " << i << " = " << entry
             << " repeats an earlier entry; appending k and v needs distinct cache entries";
          fail(str(os));
        }
        seen[entry] = 1;
      }
    }
  }
  return plan;
}

// ------------------------------------------------------------------------------------------------
CombinePlan validate_combine(const flashplus_combine_args& a, bool /*read_contents*/) {
  std::ostringstream os;
  if (a.num_partials < 1) {
    os << "num_partials must be >= 1, got " << a.num_partials;
    fail(str(os));
  }
  if (a.out_partials == nullptr || a.lse_partials == nullptr)
    fail("out_partials and lse_partials must point to arrays of num_partials tensors");
  const flashplus_tensor& out = a.out;
  if (!present(out)) fail("out is required (data is NULL)");
  check_well_formed(out, "out");
  check_float_dtype(out, "out");
  check_ndim(out, "out", 4, "(b, s, h, d)");
  check_writable(out, "out");
  const int64_t b = out.sizes[0], s = out.sizes[1], h = out.sizes[2], d = out.sizes[3];
  if (d < 1 || d > 4096) fail("out.size(3) (head dim) must be in 1..4096, got " + std::to_string(d));
  CombinePlan plan;
  plan.out_views.resize(a.num_partials);
  plan.lse_views.resize(a.num_partials);
  for (int32_t i = 0; i < a.num_partials; ++i) {
    const std::string oname = "out_partials[" + std::to_string(i) + "]";
    const std::string lname = "lse_partials[" + std::to_string(i) + "]";
    const flashplus_tensor& op = a.out_partials[i];
    const flashplus_tensor& lp = a.lse_partials[i];
    if (!present(op)) fail(oname + " is required (data is NULL)");
    if (!present(lp)) fail(lname + " is required (data is NULL)");
    check_well_formed(op, oname.c_str());
    check_float_dtype(op, oname.c_str());
    check_same_device(op, oname.c_str(), out, "out");
    check_same_shape(op, oname.c_str(), out, "out");
    check_well_formed(lp, lname.c_str());
    check_dtype(lp, lname.c_str(), FLASHPLUS_DTYPE_FLOAT32);
    check_same_device(lp, lname.c_str(), out, "out");
    check_ndim(lp, lname.c_str(), 3, "(b, h, s)");
    check_size(lp, lname.c_str(), 0, b, "out.size(0)");
    check_size(lp, lname.c_str(), 1, h, "out.size(2)");
    check_size(lp, lname.c_str(), 2, s, "out.size(1)");
    plan.out_views[i] = rows_view(op);
    plan.lse_views[i] = stats_view(lp);
  }
  CombineProblem& p = plan.problem;
  if (present(a.lse)) {
    check_well_formed(a.lse, "lse");
    check_dtype(a.lse, "lse", FLASHPLUS_DTYPE_FLOAT32);
    check_same_device(a.lse, "lse", out, "out");
    check_ndim(a.lse, "lse", 3, "(b, h, s)");
    check_size(a.lse, "lse", 0, b, "out.size(0)");
    check_size(a.lse, "lse", 1, h, "out.size(2)");
    check_size(a.lse, "lse", 2, s, "out.size(1)");
    check_writable(a.lse, "lse");
    p.lse = stats_view(a.lse);
  }
  check_combine_aliasing(a);  // after every tensor is known well-formed: extents cannot overflow
  p.device = {out.device_type, out.device_index};
  p.num_partials = a.num_partials;
  p.batch = static_cast<int32_t>(b);
  p.seqlen = static_cast<int32_t>(std::min<int64_t>(s, INT32_MAX));
  p.heads = static_cast<int32_t>(std::min<int64_t>(h, INT32_MAX));
  p.head_dim = static_cast<int32_t>(d);
  if (b > INT32_MAX || s > INT32_MAX || h > INT32_MAX) fail("out has a dimension over 2^31 - 1");
  p.out = rows_view(out);
  p.stream = a.stream;
  p.out_partials = plan.out_views.data();
  p.lse_partials = plan.lse_views.data();
  return plan;
}

}  // namespace flashplus
