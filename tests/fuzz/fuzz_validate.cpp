// fuzz_validate.cpp — libFuzzer target: decode bytes into arguments of one of the four entry
// points and call it for real (and sometimes as a dry run). Whatever the arguments, the library
// must not crash, read or write outside the claimed tensors (ASan), hit undefined behaviour
// (UBSan), or break the status contract: a refusal carries a message, a success an empty one.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "flashplus/flashplus.h"
#include "fuzz_bytes.h"
#include "fuzz_tensors.h"

namespace {

constexpr int32_t kFloatDtypes[3] = {FLASHPLUS_DTYPE_FLOAT16, FLASHPLUS_DTYPE_BFLOAT16,
                                     FLASHPLUS_DTYPE_FLOAT32};

// Common shape of a request, mostly consistent, sometimes not.
struct Dims {
  int64_t batch, h_q, h_k, d;
  int32_t dtype;
};

Dims draw_dims(FuzzBytes& in) {
  Dims dims;
  dims.batch = in.range(1, 3);
  dims.h_k = in.range(1, 3);
  dims.h_q = in.chance(90) ? dims.h_k * in.range(1, 3) : in.range(1, 6);
  const int64_t odd_dims[4] = {0, 255, 256, 257};
  dims.d = in.chance(94) ? in.range(1, 16) : odd_dims[in.range(0, 3)];
  dims.dtype = kFloatDtypes[in.range(0, 2)];
  return dims;
}

std::vector<int32_t> prefix_sums(const std::vector<int32_t>& lengths) {
  std::vector<int32_t> sums(lengths.size() + 1, 0);
  for (size_t i = 0; i < lengths.size(); ++i) sums[i + 1] = sums[i] + lengths[i];
  return sums;
}

float draw_probability(FuzzBytes& in) {
  if (in.chance(70)) return 0.f;
  switch (in.range(0, 4)) {
    case 0: return 1.f;
    case 1: return -0.1f;
    case 2: return std::nanf("");
    case 3: return in.f32();
    default: return static_cast<float>(in.range(1, 95)) / 100.f;
  }
}

float draw_softcap(FuzzBytes& in) {
  if (in.chance(70)) return 0.f;
  switch (in.range(0, 3)) {
    case 0: return -1.f;
    case 1: return std::nanf("");
    case 2: return in.f32();
    default: return static_cast<float>(in.range(1, 50)) / 10.f;
  }
}

float draw_scale(FuzzBytes& in, int64_t d) {
  if (in.chance(90)) return d > 0 ? 1.f / std::sqrt(static_cast<float>(d)) : 1.f;
  return in.f32();
}

int32_t draw_window(FuzzBytes& in) { return in.chance(70) ? -1 : static_cast<int32_t>(in.range(-3, 10)); }

uint32_t draw_flags(FuzzBytes& in) {
  if (in.chance(75)) return 0;
  return in.chance(80) ? FLASHPLUS_FLAG_DRY_RUN : in.u32();
}

// struct_size: mostly right, sometimes too small, zero, or claiming a newer (larger) struct.
uint32_t draw_struct_size(FuzzBytes& in, uint32_t right) {
  if (in.chance(92)) return right;
  switch (in.range(0, 3)) {
    case 0: return 0;
    case 1: return right - 4;
    case 2: return right + 16;
    default: return in.u32();
  }
}

// A sequence-length list for varlen layouts, and per-sequence values within a bound.
std::vector<int32_t> draw_lengths(FuzzBytes& in, int64_t count, int64_t max) {
  std::vector<int32_t> lengths(count);
  for (int32_t& length : lengths) length = static_cast<int32_t>(in.range(0, max));
  return lengths;
}

std::vector<int32_t> draw_within(FuzzBytes& in, const std::vector<int32_t>& bounds) {
  std::vector<int32_t> values(bounds.size());
  for (size_t i = 0; i < bounds.size(); ++i)
    values[i] = static_cast<int32_t>(in.range(-1, bounds[i] + 1));
  return values;
}

int32_t max_of(const std::vector<int32_t>& values) {
  int32_t best = 0;
  for (int32_t value : values) best = value > best ? value : best;
  return best;
}

// The status contract of every entry point.
void check_contract(flashplus_status status) {
  if (status < FLASHPLUS_STATUS_OK || status > FLASHPLUS_STATUS_INTERNAL_ERROR) __builtin_trap();
  const char* message = flashplus_last_error();
  if (message == nullptr) __builtin_trap();
  const size_t length = std::strlen(message);
  if (status != FLASHPLUS_STATUS_OK && length == 0) __builtin_trap();
  if (status == FLASHPLUS_STATUS_OK && length != 0) __builtin_trap();
  if (flashplus_status_name(status) == nullptr) __builtin_trap();
}

void fuzz_fwd(FuzzBytes& in) {
  FuzzTensors tensors(in);
  const Dims dims = draw_dims(in);
  const bool varlen = in.chance(40), paged = in.chance(25);
  // The args live on the heap at exactly their size: reading past them is an ASan error.
  auto args = std::make_unique<flashplus_fwd_args>();
  flashplus_fwd_args_init(args.get());
  flashplus_fwd_args& a = *args;

  std::vector<int32_t> lengths_q, lengths_k;
  int64_t s_q = in.range(0, 8), s_k = in.range(0, 8);
  if (varlen) {
    lengths_q = draw_lengths(in, dims.batch, 6);
    lengths_k = draw_lengths(in, dims.batch, 6);
  } else {
    lengths_k.assign(dims.batch, static_cast<int32_t>(s_k));
  }
  const std::vector<int32_t> cu_q = prefix_sums(lengths_q), cu_k = prefix_sums(lengths_k);
  const int64_t total_q = varlen ? cu_q.back() : 0, total_k = varlen ? cu_k.back() : 0;
  const int64_t max_s_q = varlen ? max_of(lengths_q) : s_q;
  int64_t max_s_k = varlen ? max_of(lengths_k) : s_k;

  a.q = varlen ? tensors.make({total_q, dims.h_q, dims.d}, dims.dtype, false)
               : tensors.make({dims.batch, s_q, dims.h_q, dims.d}, dims.dtype, false);
  if (paged) {
    const int64_t page_size = in.range(1, 4), max_blocks = in.range(1, 3);
    const int64_t num_blocks = in.range(1, dims.batch * max_blocks + 2);
    std::vector<int32_t> table(dims.batch * max_blocks);
    for (int32_t& block : table)
      block = static_cast<int32_t>(in.chance(95) ? in.range(0, num_blocks - 1) : in.range(-2, num_blocks + 2));
    a.block_table = tensors.make_index({dims.batch, max_blocks}, table, false);
    a.k = tensors.make({num_blocks, page_size, dims.h_k, dims.d}, dims.dtype, false);
    a.v = tensors.make({num_blocks, page_size, dims.h_k, dims.d}, dims.dtype, false);
    if (!varlen) {
      max_s_k = max_blocks * page_size;
      lengths_k.assign(dims.batch, static_cast<int32_t>(max_s_k));
    }
  } else if (varlen) {
    a.k = tensors.make({total_k, dims.h_k, dims.d}, dims.dtype, false);
    a.v = tensors.make({total_k, dims.h_k, dims.d}, dims.dtype, false);
  } else {
    a.k = tensors.make({dims.batch, s_k, dims.h_k, dims.d}, dims.dtype, false);
    a.v = tensors.make({dims.batch, s_k, dims.h_k, dims.d}, dims.dtype, false);
  }
  a.out = in.chance(4) ? a.q
                       : (varlen ? tensors.make({total_q, dims.h_q, dims.d}, dims.dtype, false)
                                 : tensors.make({dims.batch, s_q, dims.h_q, dims.d}, dims.dtype, false));
  a.softmax_lse = varlen ? tensors.make({dims.h_q, total_q}, FLASHPLUS_DTYPE_FLOAT32, false)
                         : tensors.make({dims.batch, dims.h_q, s_q}, FLASHPLUS_DTYPE_FLOAT32, false);
  a.s_dmask = tensors.make({dims.batch, dims.h_q, max_s_q, max_s_k},
                           in.chance(50) ? FLASHPLUS_DTYPE_FLOAT32 : dims.dtype, true);
  if (varlen) {
    a.cu_seqlens_q = tensors.make_index({dims.batch + 1}, cu_q, false);
    a.cu_seqlens_k = tensors.make_index({dims.batch + 1}, cu_k, in.chance(5));
  } else if (in.chance(3)) {
    a.cu_seqlens_k = tensors.make_index({dims.batch + 1}, cu_k, false);  // without cu_seqlens_q
  }
  const std::vector<int32_t> ends = draw_within(in, lengths_k);
  a.seqused_k = tensors.make_index({dims.batch}, ends, in.chance(75));
  a.leftpad_k = tensors.make_index({dims.batch}, draw_within(in, ends), in.chance(75));
  a.alibi_slopes = in.chance(50) ? tensors.make({dims.h_q}, FLASHPLUS_DTYPE_FLOAT32, true)
                                 : tensors.make({dims.batch, dims.h_q}, FLASHPLUS_DTYPE_FLOAT32, true);
  a.max_seqlen_q = static_cast<int32_t>(in.chance(90) ? max_s_q : in.range(-1, 10));
  a.max_seqlen_k = static_cast<int32_t>(in.chance(90) ? max_s_k : in.range(-1, 10));
  a.softmax_scale = draw_scale(in, dims.d);
  a.softcap = draw_softcap(in);
  a.is_causal = in.chance(30);
  a.window_left = draw_window(in);
  a.window_right = draw_window(in);
  a.dropout_p = draw_probability(in);
  a.philox_seed = in.u64();
  a.philox_offset = in.u64();
  a.num_splits = static_cast<int32_t>(in.range(-1, 4));
  a.flags = draw_flags(in);
  a.struct_size = draw_struct_size(in, sizeof(flashplus_fwd_args));
  check_contract(flashplus_fwd(args.get()));
}

void fuzz_bwd(FuzzBytes& in) {
  FuzzTensors tensors(in);
  const Dims dims = draw_dims(in);
  const bool varlen = in.chance(40);
  auto args = std::make_unique<flashplus_bwd_args>();
  flashplus_bwd_args_init(args.get());
  flashplus_bwd_args& a = *args;

  const int64_t s_q = in.range(0, 8), s_k = in.range(0, 8);
  const std::vector<int32_t> lengths_q = draw_lengths(in, dims.batch, 6);
  const std::vector<int32_t> lengths_k = draw_lengths(in, dims.batch, 6);
  const std::vector<int32_t> cu_q = prefix_sums(lengths_q), cu_k = prefix_sums(lengths_k);
  const std::vector<int64_t> q_shape =
      varlen ? std::vector<int64_t>{cu_q.back(), dims.h_q, dims.d}
             : std::vector<int64_t>{dims.batch, s_q, dims.h_q, dims.d};
  const std::vector<int64_t> k_shape =
      varlen ? std::vector<int64_t>{cu_k.back(), dims.h_k, dims.d}
             : std::vector<int64_t>{dims.batch, s_k, dims.h_k, dims.d};
  const std::vector<int64_t> lse_shape = varlen ? std::vector<int64_t>{dims.h_q, cu_q.back()}
                                                : std::vector<int64_t>{dims.batch, dims.h_q, s_q};
  a.dout = tensors.make(q_shape, dims.dtype, false);
  a.q = tensors.make(q_shape, dims.dtype, false);
  a.k = tensors.make(k_shape, dims.dtype, false);
  a.v = tensors.make(k_shape, dims.dtype, false);
  a.out = tensors.make(q_shape, dims.dtype, false);
  a.softmax_lse = tensors.make(lse_shape, FLASHPLUS_DTYPE_FLOAT32, false);
  a.dq = in.chance(4) ? a.q : tensors.make(q_shape, dims.dtype, false);
  a.dk = tensors.make(k_shape, dims.dtype, false);
  a.dv = in.chance(4) ? a.dk : tensors.make(k_shape, dims.dtype, false);
  a.softmax_d = tensors.make(lse_shape, FLASHPLUS_DTYPE_FLOAT32, false);
  if (varlen) {
    a.cu_seqlens_q = tensors.make_index({dims.batch + 1}, cu_q, false);
    a.cu_seqlens_k = tensors.make_index({dims.batch + 1}, cu_k, in.chance(5));
  }
  a.alibi_slopes = tensors.make({dims.h_q}, FLASHPLUS_DTYPE_FLOAT32, true);
  a.max_seqlen_q = static_cast<int32_t>(in.chance(90) ? max_of(lengths_q) : in.range(-1, 10));
  a.max_seqlen_k = static_cast<int32_t>(in.chance(90) ? max_of(lengths_k) : in.range(-1, 10));
  a.softmax_scale = draw_scale(in, dims.d);
  a.softcap = draw_softcap(in);
  a.is_causal = in.chance(30);
  a.window_left = draw_window(in);
  a.window_right = draw_window(in);
  a.dropout_p = draw_probability(in);
  a.philox_seed = in.u64();
  a.philox_offset = in.u64();
  a.deterministic = in.chance(50);
  a.flags = draw_flags(in);
  a.struct_size = draw_struct_size(in, sizeof(flashplus_bwd_args));
  check_contract(flashplus_bwd(args.get()));
}

void fuzz_kvcache(FuzzBytes& in) {
  FuzzTensors tensors(in);
  const Dims dims = draw_dims(in);
  auto args = std::make_unique<flashplus_kvcache_args>();
  flashplus_kvcache_args_init(args.get());
  flashplus_kvcache_args& a = *args;

  const int64_t s_q = in.range(0, 4), s_new = in.range(0, 4);
  const bool paged = in.chance(25);
  int64_t capacity = in.range(0, 10);
  const int64_t cache_batch = dims.batch + in.range(-1, 2);
  a.q = tensors.make({dims.batch, s_q, dims.h_q, dims.d}, dims.dtype, false);
  if (paged) {
    const int64_t page_size = in.range(1, 4), max_blocks = in.range(1, 3);
    const int64_t num_blocks = in.range(1, dims.batch * max_blocks + 2);
    capacity = page_size * max_blocks;
    std::vector<int32_t> table(dims.batch * max_blocks);
    for (int32_t& block : table)
      block = static_cast<int32_t>(in.chance(95) ? in.range(0, num_blocks - 1) : in.range(-2, num_blocks + 2));
    a.block_table = tensors.make_index({dims.batch, max_blocks}, table, false);
    a.k_cache = tensors.make({num_blocks, page_size, dims.h_k, dims.d}, dims.dtype, false);
    a.v_cache = tensors.make({num_blocks, page_size, dims.h_k, dims.d}, dims.dtype, false);
  } else {
    a.k_cache = tensors.make({cache_batch, capacity, dims.h_k, dims.d}, dims.dtype, false);
    a.v_cache = tensors.make({cache_batch, capacity, dims.h_k, dims.d}, dims.dtype, false);
  }
  a.k_new = tensors.make({dims.batch, s_new, dims.h_k, dims.d}, dims.dtype, true);
  a.v_new = a.k_new.data || in.chance(3)
                ? tensors.make({dims.batch, s_new, dims.h_k, dims.d}, dims.dtype, in.chance(3))
                : flashplus_tensor{};
  if (in.chance(40)) {
    const int64_t half = in.range(0, dims.d / 2 + 1), rows = in.range(0, capacity + s_q + 2);
    a.rotary_cos = tensors.make({rows, half}, dims.dtype, false);
    a.rotary_sin = tensors.make({rows, half}, dims.dtype, in.chance(5));
    a.rotary_interleaved = in.chance(50);
  }
  std::vector<int32_t> seqlens(dims.batch);
  for (int32_t& c : seqlens) c = static_cast<int32_t>(in.range(-1, capacity + 1));
  a.cache_seqlens = tensors.make_index({dims.batch}, seqlens, in.chance(85));
  std::vector<int32_t> entries(dims.batch);
  for (int32_t& e : entries) e = static_cast<int32_t>(in.range(-1, cache_batch));
  a.cache_batch_idx = tensors.make_index({dims.batch}, entries, true);
  a.cache_leftpad = tensors.make_index({dims.batch}, draw_within(in, seqlens), true);
  a.alibi_slopes = tensors.make({dims.batch, dims.h_q}, FLASHPLUS_DTYPE_FLOAT32, true);
  a.out = in.chance(4) ? a.q : tensors.make({dims.batch, s_q, dims.h_q, dims.d}, dims.dtype, false);
  a.softmax_lse = tensors.make({dims.batch, dims.h_q, s_q}, FLASHPLUS_DTYPE_FLOAT32, true);
  a.softmax_scale = draw_scale(in, dims.d);
  a.softcap = draw_softcap(in);
  a.is_causal = in.chance(30);
  a.window_left = draw_window(in);
  a.window_right = draw_window(in);
  a.num_splits = static_cast<int32_t>(in.range(-1, 8));
  a.flags = draw_flags(in);
  a.struct_size = draw_struct_size(in, sizeof(flashplus_kvcache_args));
  check_contract(flashplus_fwd_kvcache(args.get()));
}

void fuzz_combine(FuzzBytes& in) {
  FuzzTensors tensors(in);
  const int64_t batch = in.range(1, 3), seqlen = in.range(0, 5), heads = in.range(1, 3),
                d = in.chance(95) ? in.range(1, 16) : in.range(0, 300);
  int32_t num_partials = static_cast<int32_t>(in.chance(90) ? in.range(1, 4) : in.range(-2, 9));
  auto args = std::make_unique<flashplus_combine_args>();
  flashplus_combine_args_init(args.get());
  flashplus_combine_args& a = *args;

  // The partial arrays hold exactly num_partials entries (the contract the caller keeps).
  const size_t count = num_partials > 0 ? static_cast<size_t>(num_partials) : 0;
  std::unique_ptr<flashplus_tensor[]> outs(count ? new flashplus_tensor[count] : nullptr);
  std::unique_ptr<flashplus_tensor[]> lses(count ? new flashplus_tensor[count] : nullptr);
  for (size_t p = 0; p < count; ++p) {
    outs[p] = tensors.make({batch, seqlen, heads, d}, kFloatDtypes[in.range(0, 2)], false);
    lses[p] = tensors.make({batch, heads, seqlen}, FLASHPLUS_DTYPE_FLOAT32, false);
  }
  a.num_partials = num_partials;
  a.out_partials = in.chance(97) ? outs.get() : nullptr;
  a.lse_partials = in.chance(97) ? lses.get() : nullptr;
  const bool alias = count > 0 && in.chance(20);
  a.out = alias ? outs[0] : tensors.make({batch, seqlen, heads, d}, kFloatDtypes[in.range(0, 2)], false);
  a.lse = alias && in.chance(50) ? lses[0]
                                 : tensors.make({batch, heads, seqlen}, FLASHPLUS_DTYPE_FLOAT32, true);
  a.flags = draw_flags(in);
  a.struct_size = draw_struct_size(in, sizeof(flashplus_combine_args));
  check_contract(flashplus_combine(args.get()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // One CPU thread: faster under ASan, and a crash reproduces deterministically.
  setenv("FLASHPLUS_NUM_THREADS", "1", 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzBytes in(data, size);
  switch (in.byte() % 4) {
    case 0: fuzz_fwd(in); break;
    case 1: fuzz_bwd(in); break;
    case 2: fuzz_kvcache(in); break;
    default: fuzz_combine(in); break;
  }
  return 0;
}
